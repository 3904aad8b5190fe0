# ResNet-18 trained alone under the ImageNet distillation recipe of the KD
# papers (see ../_base_/in1k_8xb64-100e.py).
_base_ = [
    'mmpretrain::_base_/models/resnet18.py', '../_base_/in1k_8xb64-100e.py'
]
