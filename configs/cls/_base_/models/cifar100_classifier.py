# A CIFAR-100 classifier for the backbones of gdkd_seg.cls: global average
# pooling and one linear layer, as mdistiller's CIFAR models end. Set
# `backbone` and `head.in_channels`. (The linear layer keeps mmpretrain's
# Normal(std=0.01) init; mdistiller uses PyTorch's default for ResNet/WRN.)
model = dict(
    type='ImageClassifier',
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
