# resnet32 trained alone on CIFAR-100: the student baseline.
_base_ = [
    '../_base_/models/cifar100_classifier.py',
    '../_base_/cifar100_1xb64-240e.py'
]
model = dict(
    backbone=dict(type='CifarResNet', depth=32),
    head=dict(in_channels=64))
