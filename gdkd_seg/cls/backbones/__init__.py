from .cifar_resnet import CifarResNet
from .cifar_vgg import CifarVGG
from .cifar_wrn import CifarWideResNet

__all__ = ['CifarResNet', 'CifarVGG', 'CifarWideResNet']
