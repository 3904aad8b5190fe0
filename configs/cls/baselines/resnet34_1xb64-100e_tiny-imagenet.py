# resnet34 fine-tuned alone on Tiny-ImageNet from ImageNet weights: the teacher
# that the distillation configs load (ZaberKo/GDKD
# configs/TL/tiny-imagenet/vanilla/r34.yaml).
_base_ = [
    '../_base_/models/resnet34_in1k-pretrained.py',
    '../_base_/tiny-imagenet_1xb64-100e.py'
]
model = dict(head=dict(num_classes=200))
