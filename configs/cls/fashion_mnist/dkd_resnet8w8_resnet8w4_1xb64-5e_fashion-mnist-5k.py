_base_ = './_base_/distill_resnet8w8_resnet8w4_fashion-mnist-5k.py'
# The DKD defaults (alpha 1, beta 8, T=4), ramped in over the first epoch's
# 79 iterations (the CIFAR recipe ramps over 20 of 240 epochs).
model = dict(
    distill_losses=dict(head=dict(
        type='DKDLoss', alpha=1.0, beta=8.0, temperature=4.0)),
    warmup_iters=79)
