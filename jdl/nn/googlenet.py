"""GoogLeNet, Inception v1 (Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke &
Rabinovich 2015, 'Going deeper with convolutions', CVPR), as torchvision has it (batch norm after
every convolution, ported from TensorFlow's weights).

An Inception module runs four branches on the same input and concatenates them along the
channels:

    [ conv1x1(x) | conv3x3(conv1x1_reduce(x)) | conv3x3(conv1x1_reduce(x)) | conv1x1(maxpool3x3/1(x)) ]

every conv a 'BasicConv' = conv (no bias) -> batch norm (epsilon 1e-3) -> ReLU. The paper's third
branch is a 5x5 convolution; torchvision's has a 3x3 (pytorch/vision issue 906), kept here so
that its weights load. Instead of AlexNet's and VGG's big fully connected layers, global average
pooling of the last 7x7x1024 map feeds a single dense layer (after dropout 0.2): 6.6 M parameters
against AlexNet's 61 M. Max-pools are 3x3/2 (2x2/2 before stage 5) in ceil mode.

    layer        output (224x224x3 input)   1x1   3x3red  3x3  '5x5'red  '5x5'  pool proj
    conv1        7x7/2 pad 3 -> 112x112x64
    pool1        56x56x64
    conv2        1x1 -> 56x56x64
    conv3        3x3 pad 1 -> 56x56x192
    pool2        28x28x192
    inception3a  28x28x256                   64    96     128   16      32     32
    inception3b  28x28x480                   128   128    192   32      96     64
    pool3        14x14x480
    inception4a  14x14x512                   192   96     208   16      48     64
    inception4b  14x14x512                   160   112    224   24      64     64
    inception4c  14x14x512                   128   128    256   24      64     64
    inception4d  14x14x528                   112   144    288   32      64     64
    inception4e  14x14x832                   256   160    320   32      128    128
    pool4        7x7x832
    inception5a  7x7x832                     256   160    320   32      128    128
    inception5b  7x7x1024                    384   192    384   48      128    128
    pool         global average, 1024
    fc           dropout 0.2, dense 1000 (logits)

6,624,904 parameters at 224/1000 (1.50 G MACs). Auxiliary heads (``aux_logits=True``), on the
outputs of inception4a ('aux1') and inception4d ('aux2'): adaptive average pool to 4x4, BasicConv
1x1 128, flatten (h, w, c), dense 1024 + ReLU, dropout 0.7, dense num_classes; they add
3,188,968 + 3,191,016 parameters (13,004,888 in all, as torchvision with aux_logits=True). Their
parameters are created at init whatever ``train`` says, and they are evaluated in training only:
``model.apply(v, x, train=True, ...)`` then returns ``GoogLeNetOutputs(logits, aux1, aux2)``
(the same positions as torchvision's training output, whose field names 'aux_logits2',
'aux_logits1' hold the heads after inception4a and 4d, in that order); otherwise just the logits
(the paper weights each auxiliary loss by 0.3 in training).

``transform_input=True`` maps inputs normalised with ImageNet's mean/std to the [-1, 1] scaling
the ported TensorFlow weights expect, per channel c: x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5,
mean = (0.485, 0.456, 0.406), std = (0.229, 0.224, 0.225) (torchvision's pretrained default).

Small inputs (``GoogLeNetSmall``): the same modules at a quarter of every width (``width=0.25``)
for 28x28x1 images, with conv1 3x3/1 and no pool1 (``stem='small'``): 28x28 up to pool2, 14x14
for stage 3, 7x7 for stage 4, 4x4 for stage 5; 10 classes: 354,850 parameters, 22.2 M MACs per
image (aux heads, if asked for, at 4x4 from the 7x7 maps, width 32 and 256).

Cutting (jdl.nn.layers): output_layer one of conv1, pool1 (imagenet stem only), conv2, conv3,
pool2, inception3a, inception3b, pool3, inception4a ... inception4e, pool4, inception5a,
inception5b, pool (the 1024 global-average features), fc (logits); a cut model never evaluates
(or creates) the auxiliary heads.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from jdl.nn.batch_axis import BATCH_AXIS, sync_axis
from jdl.nn.dropout import Dropout
from jdl.nn.layers import NamedLayers, conv_layer
from jdl.nn.pooling import adaptive_avg_pool, max_pool_padded
from jdl.nn.validate import check_rate

# torchvision's GoogLeNet init: truncated normal, std 0.01, cut at 2 std (convs and dense)
INIT = nn.initializers.truncated_normal(0.01)

# (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) of each Inception module
INCEPTION = {
    "inception3a": (64, 96, 128, 16, 32, 32), "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64), "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64), "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128), "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STEMS = ("imagenet", "small")


class GoogLeNetOutputs(NamedTuple):
    """Training output with auxiliary heads: logits, then the heads after inception4a and 4d."""
    logits: Any
    aux1: Any
    aux2: Any


class BasicConv(nn.Module):
    """conv (no bias; PyTorch's kernel/stride/pad) -> BatchNorm -> ReLU."""
    features: int
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    norm: Callable = nn.BatchNorm
    kernel_init: Callable = INIT

    @nn.compact
    def __call__(self, x):
        x = conv_layer(self.features, self.kernel, self.stride, self.pad, self.kernel_init,
                       "conv", use_bias=False)(x)
        return nn.relu(self.norm(name="bn")(x))


class Inception(nn.Module):
    """Inception module: the four branches' outputs concatenated (module docstring)."""
    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int
    conv: Callable = BasicConv

    @nn.compact
    def __call__(self, x):
        b1 = self.conv(self.ch1x1, name="branch1")(x)
        b2 = self.conv(self.ch3x3, 3, pad=1, name="branch2")(
            self.conv(self.ch3x3red, name="branch2_reduce")(x))
        b3 = self.conv(self.ch5x5, 3, pad=1, name="branch3")(
            self.conv(self.ch5x5red, name="branch3_reduce")(x))
        b4 = self.conv(self.pool_proj, name="branch4")(max_pool_padded(x, 3, 1, 1, True))
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: adaptive avg pool 4x4, BasicConv 1x1, dense + ReLU, dropout,
    dense."""
    num_classes: int
    conv: Callable
    width: int = 128
    hidden: int = 1024
    dropout_rate: float = 0.7
    kernel_init: Callable = INIT

    @nn.compact
    def __call__(self, x, train: bool):
        x = self.conv(self.width, name="conv")(adaptive_avg_pool(x, (4, 4)))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden, kernel_init=self.kernel_init, name="fc1")(x))
        x = Dropout(self.dropout_rate)(x, deterministic=not train)
        return nn.Dense(self.num_classes, kernel_init=self.kernel_init, name="fc2")(x)


class GoogLeNet(NamedLayers, nn.Module):
    """GoogLeNet (module docstring). ``width`` multiplies every conv's filters and the aux
    heads' sizes; ``stem``: 'imagenet' (conv1 7x7/2 + pool1) or 'small' (conv1 3x3/1)."""
    num_classes: int = 1000
    aux_logits: bool = False
    transform_input: bool = False
    dropout_rate: float = 0.2
    aux_dropout_rate: float = 0.7
    width: float = 1.0
    stem: str = "imagenet"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    axis_name: str | None = BATCH_AXIS
    kernel_init: Callable = INIT
    output_layer: str | None = None

    def __post_init__(self):
        check_rate("dropout_rate", self.dropout_rate)
        check_rate("aux_dropout_rate", self.aux_dropout_rate)
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")
        super().__post_init__()

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        stem = ("conv1", "pool1") if self.stem == "imagenet" else ("conv1",)
        return stem + ("conv2", "conv3", "pool2", "inception3a", "inception3b", "pool3",
                       "inception4a", "inception4b", "inception4c", "inception4d",
                       "inception4e", "pool4", "inception5a", "inception5b", "pool", "fc")

    @nn.nowrap
    def _w(self, c: int) -> int:
        return max(1, int(c * self.width))

    @nn.compact
    def __call__(self, x, train: bool = False):
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, axis_name=sync_axis(self.axis_name))
        conv = partial(BasicConv, norm=norm, kernel_init=self.kernel_init)
        aux = self.aux_logits and self.output_layer is None and (train or self.is_initializing())
        aux_head = partial(InceptionAux, self.num_classes, conv, self._w(128), self._w(1024),
                           self.aux_dropout_rate, self.kernel_init)
        if self.transform_input:
            scale = jnp.asarray(IMAGENET_STD) / 0.5
            shift = (jnp.asarray(IMAGENET_MEAN) - 0.5) / 0.5
            x = x * scale.astype(x.dtype) + shift.astype(x.dtype)
        outputs = {}
        pool = partial(max_pool_padded, window=3, strides=2, ceil_mode=True)
        if self.stem == "imagenet":
            stem = [("conv1", conv(self._w(64), 7, 2, 3, name="conv1")), ("pool1", pool)]
        else:
            stem = [("conv1", conv(self._w(64), 3, 1, 1, name="conv1"))]
        layers = stem + [("conv2", conv(self._w(64), name="conv2")),
                         ("conv3", conv(self._w(192), 3, 1, 1, name="conv3")), ("pool2", pool)]
        for name, chans in INCEPTION.items():
            layers.append((name, Inception(*(self._w(c) for c in chans), conv=conv, name=name)))
            if name == "inception3b":
                layers.append(("pool3", pool))
            if name == "inception4e":
                layers.append(("pool4", partial(max_pool_padded, window=2, strides=2,
                                                ceil_mode=True)))
        for name, layer in layers:
            x = layer(x)
            if self.reached(name):
                return x
            if aux and name in ("inception4a", "inception4d"):
                head = "aux1" if name == "inception4a" else "aux2"
                outputs[head] = aux_head(name=head)(x, train)
        x = jnp.mean(x, axis=(1, 2))
        if self.reached("pool"):
            return x
        x = Dropout(self.dropout_rate)(x, deterministic=not train)
        x = nn.Dense(self.num_classes, kernel_init=self.kernel_init, name="fc")(x)
        if self.aux_logits and train:
            return GoogLeNetOutputs(x, outputs["aux1"], outputs["aux2"])
        return x


GoogLeNetSmall = partial(GoogLeNet, num_classes=10, width=0.25, stem="small")
