_base_ = './_base_/distill_resnet8w8_resnet8w4_fashion-mnist-5k.py'
# The official LSKD CIFAR-100 setting (ZaberKo/GDKD,
# mdistiller/engine/cfg.py): KD on z-scored logits, T=2, 9 KD + 0.1 CE.
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_losses=dict(head=dict(
        type='KDLoss', temperature=2.0, standardize='global',
        loss_weight=9.0)))
