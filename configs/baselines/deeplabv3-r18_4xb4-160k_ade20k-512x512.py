# Student-only baseline on ADE20K (150 classes) under mmseg's ADE20K
# protocol: mmseg's deeplabv3_r50-d8_4xb4-160k_ade20k-512x512 config
# (4 GPUs x 4 images, 160k iterations, lr 0.01, crop 512x512) with the
# ResNet-18-D8 model, plus best-mIoU tracking.
_base_ = [
    '../_base_/models/deeplabv3_r18-d8.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
default_hooks = dict(checkpoint=dict(save_best='mIoU'))
