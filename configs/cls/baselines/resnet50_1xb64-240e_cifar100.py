# resnet50 trained alone on CIFAR-100: the student baseline, or the teacher
# that the distillation configs load.
# mdistiller's CIFAR ResNet50 (models/cifar/resnetv2.py) is mmpretrain's
# ResNet_CIFAR: 3x3 stem at stride 1, no max-pool, four bottleneck stages.
_base_ = [
    '../_base_/models/cifar100_classifier.py',
    '../_base_/cifar100_1xb64-240e.py'
]
model = dict(
    backbone=dict(type='ResNet_CIFAR', depth=50, zero_init_residual=False),
    head=dict(in_channels=2048))
