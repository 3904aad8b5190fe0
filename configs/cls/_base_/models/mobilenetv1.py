# MobileNet-V1 (gdkd_seg.cls.MobileNetV1, the KD literature's) for
# ImageNet-1k: global average pooling and one linear layer on its 1024
# channels.
_base_ = 'mmpretrain::_base_/models/mobilenet_v2_1x.py'
model = dict(
    backbone=dict(_delete_=True, type='MobileNetV1'),
    head=dict(in_channels=1024))
