_base_ = './_base_/distill_resnet8w8_resnet8w4_fashion-mnist-5k.py'
# The GDKD classification defaults (k=5, T=4, w0 1, w1 1, w2 8; not tuned for
# this data), ramped in over the first epoch's 79 iterations (the CIFAR
# recipe ramps over 20 of 240 epochs).
model = dict(
    distill_losses=dict(head=dict(
        type='GDKDLoss', k=5, temperature=4.0, w0=1.0, w1=1.0, w2=8.0)),
    warmup_iters=79)
