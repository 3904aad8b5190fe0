# Student-only baseline on Pascal VOC 2012 + aug under mmseg's VOC protocol
# (4 GPUs x 4 images, 40k iterations, lr 0.01, crop 512x512), plus best-mIoU
# tracking. mmseg ships no MobileNetV2 VOC config: this one derives it from
# mmseg's DeepLabV3-R101 VOC config exactly as mmseg's mobilenet_v2/ configs
# derive theirs (the dilated MobileNetV2 backbone, head input widths).
_base_ = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-40k_voc12aug-512x512.py'
model = dict(
    pretrained='mmcls://mobilenet_v2',
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        widen_factor=1.,
        strides=(1, 2, 2, 1, 1, 1, 1),
        dilations=(1, 1, 1, 2, 2, 4, 4),
        out_indices=(1, 2, 4, 6),
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    decode_head=dict(in_channels=320),
    auxiliary_head=dict(in_channels=96))
default_hooks = dict(checkpoint=dict(save_best='mIoU'))
