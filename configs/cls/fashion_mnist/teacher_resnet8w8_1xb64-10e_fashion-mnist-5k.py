# The Fashion-MNIST teacher: CIFAR ResNet-8 at half width (stages of
# 8/16/32 channels, 20k parameters, 4x the student's) on the student's data
# and recipe, trained twice as long.
_base_ = './student_resnet8w4_1xb64-5e_fashion-mnist-5k.py'
model = dict(
    backbone=dict(stem_channels=8, base_channels=8),
    head=dict(in_channels=32))
param_scheduler = dict(T_max=10)
train_cfg = dict(max_epochs=10, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10))
