# mobilenetv1 fine-tuned alone on Tiny-ImageNet from ImageNet weights: the
# student baseline (ZaberKo/GDKD configs/TL/tiny-imagenet/vanilla/mv1.yaml).
_base_ = [
    '../_base_/models/mobilenetv1_in1k-pretrained.py',
    '../_base_/tiny-imagenet_1xb64-100e.py'
]
model = dict(head=dict(num_classes=200))
