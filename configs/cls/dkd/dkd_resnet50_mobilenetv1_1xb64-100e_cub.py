_base_ = '../_base_/distill/resnet50_mobilenetv1_1xb64-100e_cub.py'
# Official values: ZaberKo/GDKD configs/TL/cub2011/r50_mv1/dkd.yaml
# DKD: alpha 1, beta 2, T=1, CE weight 1, the loss ramped in over the
# first epoch.
model = dict(
    distill_losses=dict(head=dict(
        type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0)),
    warmup_epochs=1)
