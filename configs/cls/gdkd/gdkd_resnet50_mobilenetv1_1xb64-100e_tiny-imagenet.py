_base_ = '../_base_/distill/resnet50_mobilenetv1_1xb64-100e_tiny-imagenet.py'
# Official values: ZaberKo/GDKD configs/TL/tiny-imagenet/r50_mv1/gdkd.yaml
# GDKD: the teacher's top-5 classes vs the rest, T=1, w0 0.5, w1 2,
# w2 2, CE weight 1, the loss ramped in over the first epoch.
model = dict(
    distill_losses=dict(head=dict(
        type='GDKDLoss', k=5, temperature=1.0, w0=0.5, w1=2.0, w2=2.0)),
    warmup_epochs=1)
