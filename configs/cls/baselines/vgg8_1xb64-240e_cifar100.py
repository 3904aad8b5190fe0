# vgg8 trained alone on CIFAR-100: the student baseline, or the teacher
# that the distillation configs load.
_base_ = [
    '../_base_/models/cifar100_classifier.py',
    '../_base_/cifar100_1xb64-240e.py'
]
model = dict(
    backbone=dict(type='CifarVGG', arch='vgg8'),
    head=dict(in_channels=512))
