"""The model zoo: every ImageNet convnet of jdl.nn under torchvision's model name (``ZOO``) and
the 28x28x1 small forms of each family (``SMALL_ZOO``), as constructors (classes or partials):
``ZOO["vgg16_bn"](num_classes=10)``. Parameter counts and MACs are in each family's module
docstring (jdl.nn.alexnet, vgg, googlenet, resnet).
"""
from __future__ import annotations

from functools import partial

from jdl.nn.alexnet import AlexNet, AlexNetSmall, ZFNet, ZFNetSmall
from jdl.nn.googlenet import GoogLeNet, GoogLeNetSmall
from jdl.nn.resnet import RESNETS
from jdl.nn.vgg import (VGG11, VGG11BN, VGG11BNSmall, VGG11Small, VGG13, VGG13BN, VGG13BNSmall,
                        VGG13Small, VGG16, VGG16BN, VGG16BNSmall, VGG16Small, VGG19, VGG19BN,
                        VGG19BNSmall, VGG19Small)

ZOO = {"alexnet": AlexNet, "zfnet": ZFNet,
       "vgg11": VGG11, "vgg11_bn": VGG11BN, "vgg13": VGG13, "vgg13_bn": VGG13BN,
       "vgg16": VGG16, "vgg16_bn": VGG16BN, "vgg19": VGG19, "vgg19_bn": VGG19BN,
       "googlenet": GoogLeNet,
       **{k: v for k, v in RESNETS.items() if k not in ("resnet10", "resnet200")}}

# ResNet-18's small form: jdl's CIFAR stem (3x3/1, no max-pool) at a quarter of the widths
SMALL_ZOO = {"alexnet": AlexNetSmall, "zfnet": ZFNetSmall,
             "vgg11": VGG11Small, "vgg11_bn": VGG11BNSmall, "vgg13": VGG13Small,
             "vgg13_bn": VGG13BNSmall, "vgg16": VGG16Small, "vgg16_bn": VGG16BNSmall,
             "vgg19": VGG19Small, "vgg19_bn": VGG19BNSmall, "googlenet": GoogLeNetSmall,
             "resnet18": partial(RESNETS["resnet18"], num_classes=10, stem="cifar",
                                 num_filters=16)}

__all__ = ["ZOO", "SMALL_ZOO"]
