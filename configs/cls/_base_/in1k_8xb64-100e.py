# The ImageNet-1k recipe of the KD papers (mdistiller/GDKD configs
# imagenet/*, e.g. imagenet/vanilla/mv1.yaml): 8 GPUs x 64 = 512 images per
# step, 100 epochs, SGD momentum 0.9, wd 1e-4, lr 0.2 x0.1 at epochs
# 30/60/90, on mmpretrain's ImageNet data config (random resized crop 224 and
# flip; resize 256 and center crop 224 for testing). mmpretrain's own
# resnet*_8xb32_in1k (batch 256, lr 0.1) has the same schedule at half the
# batch.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['gdkd_seg.cls'], allow_failed_imports=False)
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=0.2))
auto_scale_lr = dict(base_batch_size=512)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='auto'))
