_base_ = '../_base_/distill/resnet32x4_shufflenetv1_1xb64-240e_cifar100.py'
# Official values: ZaberKo/GDKD configs/cifar100/gdkd/res32x4_shuv1.yaml
# GDKD: the teacher's top-5 classes vs the rest, T=4, w0 1, w1 1, w2 8,
# CE weight 1, the loss ramped in over the first 20 epochs.
model = dict(
    distill_losses=dict(head=dict(
        type='GDKDLoss', k=5, temperature=4.0, w0=1.0, w1=1.0, w2=8.0)),
    warmup_epochs=20)
