# resnet50 fine-tuned alone on CUB-200-2011 from ImageNet weights: the teacher
# that the distillation configs load (ZaberKo/GDKD
# configs/TL/cub2011/vanilla/r50.yaml).
_base_ = [
    '../_base_/models/resnet50_in1k-pretrained.py',
    '../_base_/cub_1xb64-100e.py'
]
model = dict(head=dict(num_classes=200))
