# resnet18 initialised from mmpretrain's ImageNet-1k weights (69.90 top-1), as
# the transfer-learning recipes start (the official code loads torchvision's).
# Dataset configs set `head.num_classes`.
_base_ = 'mmpretrain::_base_/models/resnet18.py'
checkpoint = 'https://download.openmmlab.com/mmclassification/v0/resnet/resnet18_8xb32_in1k_20210831-fbbb1da6.pth'  # noqa: E501
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint,
                      prefix='backbone')))
