# The demo teacher: the same recipe as the demo student, at full ResNet-18
# width (16x the student's parameters).
_base_ = './student_deeplabv3-r18w16_1xb8-300it_synthetic-cityscapes-128x256.py'  # noqa: E501
model = dict(
    backbone=dict(base_channels=64),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
