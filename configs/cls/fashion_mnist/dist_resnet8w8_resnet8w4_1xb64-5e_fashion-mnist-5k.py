_base_ = './_base_/distill_resnet8w8_resnet8w4_fashion-mnist-5k.py'
# The official DIST classification defaults (ZaberKo/GDKD,
# mdistiller/engine/cfg.py: T=4, beta 2, gamma 2, CE weight 1, no warm-up).
# The official loss multiplies both terms by T**2 and DISTLoss does not, so
# beta and gamma here are 2 * 4**2.
model = dict(
    distill_losses=dict(head=dict(
        type='DISTLoss', temperature=4.0, beta=32.0, gamma=32.0)))
