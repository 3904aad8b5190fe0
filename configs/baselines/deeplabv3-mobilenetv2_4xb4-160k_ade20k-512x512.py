# Student-only baseline on ADE20K under mmseg's protocol: exactly mmseg's
# config (4 GPUs x 4 images, 160k iterations, lr 0.01; 34.08 val mIoU in
# mmseg's model zoo), plus best-mIoU tracking.
_base_ = 'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb4-160k_ade20k-512x512.py'  # noqa: E501
default_hooks = dict(checkpoint=dict(save_best='mIoU'))
