# CUB-200-2011 transfer learning as the official classification code runs it
# (ZaberKo/GDKD configs/TL/cub2011/*): one GPU x 64 images, 100 epochs, SGD
# momentum 0.9, wd 1e-3, lr 0.0025 x0.1 at epochs 40/80, ImageNet-pretrained
# networks (set in the model configs), ImageNet's augmentation and test
# crop (random resized crop 224 and flip; resize 256, center crop 224) as
# its mdistiller/dataset/cub2011.py. mmpretrain's CUB dataset reads the
# official CUB_200_2011 folder (images/, images.txt, train_test_split.txt,
# ...) unchanged.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['gdkd_seg.cls'], allow_failed_imports=False)
data_preprocessor = dict(num_classes=200)
train_dataloader = dict(
    batch_size=64,
    dataset=dict(type='CUB', data_root='data/CUB_200_2011', split='train'))
val_dataloader = dict(
    batch_size=64,
    dataset=dict(type='CUB', data_root='data/CUB_200_2011', split='test'))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.0025, weight_decay=1e-3))
param_scheduler = dict(milestones=[40, 80])
auto_scale_lr = dict(base_batch_size=64)
# The KD papers report the best test accuracy over training: keep it.
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='auto'))
