_base_ = './_base_/distill_resnet8w8_resnet8w4_fashion-mnist-5k.py'
# The CIFAR-100 KD setting unchanged: T=4, 0.9 KD + 0.1 CE.
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_losses=dict(head=dict(type='KDLoss', temperature=4.0,
                                  loss_weight=0.9)))
