# mobilenetv2 trained alone on CIFAR-100: the student baseline.
# The KD papers' MobileNetV2 (width 0.5, expansion 6).
_base_ = [
    '../_base_/models/cifar100_classifier.py',
    '../_base_/cifar100_1xb64-240e.py'
]
model = dict(
    backbone=dict(type='CifarMobileNetV2'),
    head=dict(in_channels=1280))
# mdistiller/GDKD train the MobileNet and ShuffleNet students at lr 0.01
# (configs/cifar100/vanilla/{mv2,shuv1,shuv2}.yaml and every pair with them).
optim_wrapper = dict(optimizer=dict(lr=0.01))
