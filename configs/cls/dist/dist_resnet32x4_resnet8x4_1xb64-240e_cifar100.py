_base_ = '../_base_/distill/resnet32x4_resnet8x4_1xb64-240e_cifar100.py'
# Official values: ZaberKo/GDKD configs/cifar100/dist/res32x4_res8x4.yaml
# (mdistiller/engine/cfg.py's DIST defaults): T=4, beta 2, gamma 2, CE weight
# 1, no warm-up. The official loss multiplies both terms by T**2 and
# DISTLoss does not, so beta and gamma here are 2 * 4**2.
model = dict(
    distill_losses=dict(head=dict(
        type='DISTLoss', temperature=4.0, beta=32.0, gamma=32.0)))
