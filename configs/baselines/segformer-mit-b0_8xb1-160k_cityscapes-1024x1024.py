# Student-only baseline under mmseg's SegFormer Cityscapes protocol: exactly
# mmseg's config (8 GPUs x 1 image, 160k iterations, AdamW lr 6e-5, crop
# 1024x1024; 76.54 val mIoU in mmseg's model zoo), plus best-mIoU tracking.
_base_ = 'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'
default_hooks = dict(checkpoint=dict(save_best='mIoU'))
