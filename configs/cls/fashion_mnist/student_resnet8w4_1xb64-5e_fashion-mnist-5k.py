# The Fashion-MNIST student trained alone: CIFAR ResNet-8 at a quarter width
# (stages of 4/8/16 channels, 5k parameters) on one grey channel.
_base_ = './_base_/fashion-mnist-5k_1xb64-5e.py'
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='CifarResNet',
        depth=8,
        in_channels=1,
        stem_channels=4,
        base_channels=4),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=16,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))
