# resnet18 fine-tuned alone on Tiny-ImageNet from ImageNet weights: the student
# baseline (ZaberKo/GDKD configs/TL/tiny-imagenet/vanilla/r18.yaml).
_base_ = [
    '../_base_/models/resnet18_in1k-pretrained.py',
    '../_base_/tiny-imagenet_1xb64-100e.py'
]
model = dict(head=dict(num_classes=200))
