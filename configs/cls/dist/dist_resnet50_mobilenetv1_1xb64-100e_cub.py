_base_ = '../_base_/distill/resnet50_mobilenetv1_1xb64-100e_cub.py'
# Official values: ZaberKo/GDKD configs/TL/cub2011/r50_mv1/dist.yaml
# DIST: T=1, beta 2, gamma 2, CE weight 1, no warm-up.
# The official loss multiplies both terms by T**2 and DISTLoss does not,
# so beta and gamma here are 2 * 1**2.
model = dict(
    distill_losses=dict(head=dict(
        type='DISTLoss', temperature=1.0, beta=2.0, gamma=2.0)))
