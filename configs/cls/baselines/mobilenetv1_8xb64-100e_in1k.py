# MobileNet-V1 trained alone under the ImageNet distillation recipe of the
# KD papers (see ../_base_/in1k_8xb64-100e.py; the official
# imagenet/vanilla/mv1.yaml has the same solver).
_base_ = ['../_base_/models/mobilenetv1.py', '../_base_/in1k_8xb64-100e.py']
