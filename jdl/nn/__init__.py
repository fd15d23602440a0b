"""Model definitions (Flax linen modules and activations); no training code lives here."""
from jdl.nn import activations, initializers
from jdl.nn.activations import ACTIVATIONS, get_activation
from jdl.nn.convnets import BNConvNet, FashionConvNet, KerasExample, LeNet5
from jdl.nn.dropout import Dropout
from jdl.nn.mlp import MLP
from jdl.nn.autoencoders import Autoencoder, VariationalAutoencoder
from jdl.nn.layers import NamedLayers
from jdl.nn.resnet import (RESNETS, BottleneckResNetBlock, ResNet, ResNet10, ResNet18, ResNet34,
                           ResNet50, ResNet101, ResNet152, ResNet200, ResNetBlock, ResNeXt50_32x4d,
                           ResNeXt101_32x8d, ResNeXt101_64x4d, WideResNet50_2, WideResNet101_2,
                           forward_macs)
from jdl.nn.recurrent import (RNN, CanonicalCell, CanonicalRNN, ElmanCell, FusedLSTM, GRUCell,
                              LSTMCell, SequenceModel)

__all__ = ["activations", "initializers", "ACTIVATIONS", "get_activation",
           "BNConvNet", "Dropout", "FashionConvNet",
           "KerasExample", "LeNet5", "MLP", "Autoencoder", "VariationalAutoencoder", "RNN",
           "CanonicalCell", "CanonicalRNN", "ElmanCell", "FusedLSTM", "GRUCell", "LSTMCell",
           "SequenceModel",
           "RESNETS", "BottleneckResNetBlock", "ResNet", "ResNet10", "ResNet18", "ResNet34",
           "ResNet50", "ResNet101", "ResNet152", "ResNet200", "ResNetBlock", "forward_macs",
           "ResNeXt50_32x4d", "ResNeXt101_32x8d", "ResNeXt101_64x4d", "WideResNet50_2",
           "WideResNet101_2", "NamedLayers"]
