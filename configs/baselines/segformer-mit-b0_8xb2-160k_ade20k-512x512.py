# Student-only baseline under mmseg's SegFormer ADE20K protocol: exactly
# mmseg's config (8 GPUs x 2 images, 160k iterations, AdamW lr 6e-5, crop
# 512x512; 37.41 val mIoU in mmseg's model zoo), plus best-mIoU tracking.
_base_ = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'
default_hooks = dict(checkpoint=dict(save_best='mIoU'))
