# resnet18 fine-tuned alone on CUB-200-2011 from ImageNet weights: the student
# baseline (ZaberKo/GDKD configs/TL/cub2011/vanilla/r18.yaml).
_base_ = [
    '../_base_/models/resnet18_in1k-pretrained.py',
    '../_base_/cub_1xb64-100e.py'
]
model = dict(head=dict(num_classes=200))
