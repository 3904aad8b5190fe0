_base_ = '../_base_/distill/resnet34_resnet18_8xb64-100e_in1k.py'
# Official values: ZaberKo/GDKD configs/imagenet/r34_r18/dkd.yaml
# DKD: alpha 1, beta 0.5, T=1, CE weight 1, the loss ramped in over the
# first epoch.
model = dict(
    distill_losses=dict(head=dict(
        type='DKDLoss', alpha=1.0, beta=0.5, temperature=1.0)),
    warmup_epochs=1)
