_base_ = '../_base_/distill/vgg13_vgg8_1xb64-240e_cifar100.py'
# Official values: ZaberKo/GDKD configs/cifar100/gdkd3/vgg13_vgg8.yaml
# GDKD3: the teacher's top-1 / top-2..4 / the rest, T=4, w0 1, w1 1,
# w2 6, CE weight 1, the loss ramped in over the first 20 epochs.
model = dict(
    distill_losses=dict(head=dict(
        type='GDKD3Loss', k=4, temperature=4.0, w0=1.0, w1=1.0, w2=6.0)),
    warmup_epochs=20)
