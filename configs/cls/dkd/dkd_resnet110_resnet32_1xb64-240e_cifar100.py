_base_ = '../_base_/distill/resnet110_resnet32_1xb64-240e_cifar100.py'
# Official values: ZaberKo/GDKD configs/cifar100/dkd/res110_res32.yaml
# DKD (ground-truth partition): alpha 1, beta 2, T=4, CE weight 1, the
# loss ramped in over the first 20 epochs.
model = dict(
    distill_losses=dict(head=dict(
        type='DKDLoss', alpha=1.0, beta=2.0, temperature=4.0)),
    warmup_epochs=20)
