# Student-only baseline under the CIRKD protocol used by the distillation
# literature (the train scripts of winycg/CIRKD): 8 GPUs x 2 images (total
# batch 16), 40k iterations, SGD lr 0.02, poly decay to 1e-4; mmseg's
# 80k config otherwise.
_base_ = 'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000,
         by_epoch=False)
]
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000, save_best='mIoU'))
# No auxiliary head: the CIRKD protocol's trainers give MobileNetV2 students
# none (winycg/CIRKD and ZaberKo/seg-gdkd, train_baseline.py and
# train_kd.py); mmseg's config has an auxiliary FCN head.
model = dict(auxiliary_head=None)
