# Student-only baseline under mmseg's own protocol: 4 GPUs x 2 images,
# 80k iterations, lr 0.01 (exactly mmseg's config, plus best-mIoU tracking).
_base_ = 'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
default_hooks = dict(checkpoint=dict(save_best='mIoU'))
