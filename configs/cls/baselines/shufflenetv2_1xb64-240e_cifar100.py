# shufflenetv2 trained alone on CIFAR-100: the student baseline.
_base_ = [
    '../_base_/models/cifar100_classifier.py',
    '../_base_/cifar100_1xb64-240e.py'
]
model = dict(
    backbone=dict(type='CifarShuffleNetV2'),
    head=dict(in_channels=1024))
# mdistiller/GDKD train the MobileNet and ShuffleNet students at lr 0.01
# (configs/cifar100/vanilla/{mv2,shuv1,shuv2}.yaml and every pair with them).
optim_wrapper = dict(optimizer=dict(lr=0.01))
