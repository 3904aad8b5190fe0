from .cifar_mobilenet_v2 import CifarMobileNetV2
from .cifar_resnet import CifarResNet
from .cifar_shufflenet_v1 import CifarShuffleNetV1
from .cifar_shufflenet_v2 import CifarShuffleNetV2
from .cifar_vgg import CifarVGG
from .cifar_wrn import CifarWideResNet
from .mobilenet_v1 import MobileNetV1

__all__ = [
    'CifarMobileNetV2', 'CifarResNet', 'CifarShuffleNetV1',
    'CifarShuffleNetV2', 'CifarVGG', 'CifarWideResNet', 'MobileNetV1'
]
