# Tiny-ImageNet transfer learning as the official classification code runs
# it (ZaberKo/GDKD configs/TL/tiny-imagenet/*): one GPU x 64 images, 100
# epochs, SGD momentum 0.9, wd 1e-3, lr 0.001 x0.1 at epochs 30/60,
# ImageNet-pretrained networks (set in the model configs), and ImageNet's
# augmentation and test crop on the 64-pixel images (random resized crop 224
# and flip; resize 256, center crop 224) as its
# mdistiller/dataset/tiny_imaganet.py. The data is mmpretrain's
# CustomDataset on the tiny-imagenet-200 folder, one subfolder per class;
# tools/dataset_converters/tiny_imagenet.py sorts the val images into theirs.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['gdkd_seg.cls'], allow_failed_imports=False)
data_preprocessor = dict(num_classes=200)
data_root = 'data/tiny-imagenet-200'
train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.001, weight_decay=1e-3))
param_scheduler = dict(milestones=[30, 60])
auto_scale_lr = dict(base_batch_size=64)
# The KD papers report the best test accuracy over training: keep it.
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='auto'))
