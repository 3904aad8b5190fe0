_base_ = '../_base_/distill/resnet32x4_shufflenetv1_1xb64-240e_cifar100.py'
# Official values: ZaberKo/GDKD configs/cifar100/kd/res32x4_shuv1.yaml
# (mdistiller's KD defaults): T=4, 0.9 KD + 0.1 CE.
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_losses=dict(head=dict(type='KDLoss', temperature=4.0,
                                  loss_weight=0.9)))
