# The CIFAR-100 recipe of the KD literature (CRD, DKD, GDKD; mdistiller's
# configs): one GPU x 64 images, 240 epochs, SGD momentum 0.9, wd 5e-4,
# lr 0.05 x0.1 at epochs 150/180/210; random crop (pad 4) and flip, as in
# mmpretrain's CIFAR-100 data config (same normalisation as mdistiller).
_base_ = [
    'mmpretrain::_base_/datasets/cifar100_bs16.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['gdkd_seg.cls'], allow_failed_imports=False)
train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
# The KD papers report the best test accuracy over training: keep it.
default_hooks = dict(
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))
