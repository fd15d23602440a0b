"""Model definitions (Flax linen modules and activations); no training code lives here."""
from jdl.nn import activations, initializers
from jdl.nn.activations import ACTIVATIONS, get_activation
from jdl.nn.convnets import BNConvNet, FashionConvNet, KerasExample, LeNet5
from jdl.nn.delays import DelayedStep
from jdl.nn.dropout import Dropout
from jdl.nn.mlp import MLP
from jdl.nn.autoencoders import Autoencoder, VariationalAutoencoder
from jdl.nn.conv_autoencoder import ConvAutoencoder
from jdl.nn.layers import NamedLayers
from jdl.nn.resnet import (RESNETS, BottleneckResNetBlock, ResNet, ResNet10, ResNet18, ResNet34,
                           ResNet50, ResNet101, ResNet152, ResNet200, ResNetBlock, ResNeXt50_32x4d,
                           ResNeXt101_32x8d, ResNeXt101_64x4d, WideResNet50_2, WideResNet101_2,
                           forward_macs)
from jdl.nn.alexnet import AlexNet, AlexNetSmall, ZFNet, ZFNetSmall, local_response_norm
from jdl.nn.googlenet import GoogLeNet, GoogLeNetOutputs, GoogLeNetSmall
from jdl.nn.pooling import adaptive_avg_pool, lp_pool, max_pool_padded
from jdl.nn.vgg import (VGG, VGG11, VGG11BN, VGG11BNSmall, VGG11Small, VGG13, VGG13BN,
                        VGG13BNSmall, VGG13Small, VGG16, VGG16BN, VGG16BNSmall, VGG16Small, VGG19,
                        VGG19BN, VGG19BNSmall, VGG19Small)
from jdl.nn.zoo import SMALL_ZOO, ZOO
from jdl.nn.recurrent import (RNN, CanonicalCell, CanonicalRNN, ElmanCell, FusedLSTM, GRUCell,
                              LSTMCell, SequenceModel)

__all__ = ["activations", "initializers", "ACTIVATIONS", "get_activation",
           "BNConvNet", "DelayedStep", "Dropout", "FashionConvNet",
           "KerasExample", "LeNet5", "MLP", "Autoencoder", "VariationalAutoencoder", "ConvAutoencoder",
           "RNN",
           "CanonicalCell", "CanonicalRNN", "ElmanCell", "FusedLSTM", "GRUCell", "LSTMCell",
           "SequenceModel",
           "RESNETS", "BottleneckResNetBlock", "ResNet", "ResNet10", "ResNet18", "ResNet34",
           "ResNet50", "ResNet101", "ResNet152", "ResNet200", "ResNetBlock", "forward_macs",
           "ResNeXt50_32x4d", "ResNeXt101_32x8d", "ResNeXt101_64x4d", "WideResNet50_2",
           "WideResNet101_2", "NamedLayers",
           "AlexNet", "AlexNetSmall", "ZFNet", "ZFNetSmall", "local_response_norm",
           "GoogLeNet", "GoogLeNetOutputs", "GoogLeNetSmall",
           "adaptive_avg_pool", "lp_pool", "max_pool_padded",
           "VGG", "VGG11", "VGG11BN", "VGG11BNSmall", "VGG11Small", "VGG13", "VGG13BN",
           "VGG13BNSmall", "VGG13Small", "VGG16", "VGG16BN", "VGG16BNSmall", "VGG16Small",
           "VGG19", "VGG19BN", "VGG19BNSmall", "VGG19Small", "SMALL_ZOO", "ZOO"]
