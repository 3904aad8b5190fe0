_base_ = '../_base_/distill/resnet56_resnet20_1xb64-240e_cifar100.py'
# Official values: ZaberKo/GDKD configs/cifar100/kd/res56_res20.yaml
# (mdistiller's KD defaults): T=4, 0.9 KD + 0.1 CE.
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_losses=dict(head=dict(type='KDLoss', temperature=4.0,
                                  loss_weight=0.9)))
