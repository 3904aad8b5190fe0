# Student-only baseline on Pascal VOC 2012 + aug (21 classes) under mmseg's
# VOC protocol: mmseg's deeplabv3_r50-d8_4xb4-40k_voc12aug-512x512 config
# (4 GPUs x 4 images, 40k iterations, lr 0.01, crop 512x512) with the
# ResNet-18-D8 model, plus best-mIoU tracking.
_base_ = [
    '../_base_/models/deeplabv3_r18-d8.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=21),
    auxiliary_head=dict(num_classes=21))
default_hooks = dict(checkpoint=dict(save_best='mIoU'))
