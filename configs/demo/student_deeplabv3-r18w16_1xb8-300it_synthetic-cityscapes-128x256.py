# The demo student alone, on the embedded synthetic Cityscapes-format data
# (written by tools/dataset_converters/generate_synthetic_cityscapes.py; run
# by tools/demo.py).
# Same data pipeline, dataset class and metric as the Cityscapes configs,
# shrunk to images of 128x256, crops of 64x128 and a ResNet-18 of width 16
# so that the whole demo runs on 2 CPU cores. Schedule and lr (300
# iterations of batch 8, lr 0.05) are this demo's own, chosen for that
# budget; everything else is the Cityscapes baseline's (mmseg's config).
_base_ = '../baselines/deeplabv3-r18_4xb2-80k_cityscapes-512x1024.py'
data_root = 'data/synthetic_cityscapes'
crop_size = (64, 128)
image_scale = (256, 128)
# As in mmseg: the Runner merges a top-level data_preprocessor into models
# that lack one (a distiller takes it from here too).
data_preprocessor = dict(size=crop_size)
model = dict(
    pretrained=None,  # trained from scratch: no ImageNet weights offline
    data_preprocessor=data_preprocessor,
    backbone=dict(base_channels=16),
    decode_head=dict(in_channels=128, channels=32),
    auxiliary_head=dict(in_channels=64, channels=16))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=image_scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
# One image per test batch, as in mmseg's configs: the data preprocessor
# stacks test images unpadded, so real photos of mixed sizes cannot share one.
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
max_iters = 300
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, save_best='mIoU'))
randomness = dict(seed=0)
