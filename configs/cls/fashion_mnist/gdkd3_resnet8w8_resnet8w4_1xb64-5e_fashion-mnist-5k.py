_base_ = './_base_/distill_resnet8w8_resnet8w4_fashion-mnist-5k.py'
# The official GDKD3 classification defaults (ZaberKo/GDKD,
# mdistiller/engine/cfg.py: top-1 / top-2..4 / rest, T=4, w0 1, w1 1, w2 8;
# not tuned for this data), ramped in over the first epoch's 79 iterations
# (the CIFAR recipe ramps over 20 of 240 epochs).
model = dict(
    distill_losses=dict(head=dict(
        type='GDKD3Loss', k=4, temperature=4.0, w0=1.0, w1=1.0, w2=8.0)),
    warmup_iters=79)
