_base_ = '../_base_/distill/wrn40-2_wrn16-2_1xb64-240e_cifar100.py'
# Official values: ZaberKo/GDKD configs/cifar100/kd/wrn40_2_wrn_16_2.yaml
# (mdistiller's KD defaults): T=4, 0.9 KD + 0.1 CE.
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_losses=dict(head=dict(type='KDLoss', temperature=4.0,
                                  loss_weight=0.9)))
