# resnet34 initialised from mmpretrain's ImageNet-1k weights (73.62 top-1), as
# the transfer-learning recipes start (the official code loads torchvision's).
# Dataset configs set `head.num_classes`.
_base_ = 'mmpretrain::_base_/models/resnet34.py'
checkpoint = 'https://download.openmmlab.com/mmclassification/v0/resnet/resnet34_8xb32_in1k_20210831-f257d4e6.pth'  # noqa: E501
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint,
                      prefix='backbone')))
