# DeepLabV3 with a ResNet-18-D8 backbone for any data set: mmseg's
# ResNet-50-D8 model with the changes mmseg's own deeplabv3_r18-d8 Cityscapes
# config makes to it (depth, head widths, ImageNet-pretrained weights). mmseg
# ships no R18 config for Pascal VOC or ADE20K; their configs compose this
# model with mmseg's data set and schedule bases as mmseg's R50 configs do.
_base_ = 'mmseg::_base_/models/deeplabv3_r50-d8.py'
model = dict(
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
