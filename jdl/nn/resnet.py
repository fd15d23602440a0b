"""Residual networks (He, Zhang, Ren & Sun 2016, 'Deep residual learning for image
recognition', CVPR), after flax's ``examples/imagenet/models.py``.

A residual block learns a correction F to the identity:

    y = relu(x + F(x))                      (identity shortcut, same shape)
    y = relu(BN(W_s x) + F(x))              (projection shortcut: 1x1 conv W_s with the block's
                                             stride, when F changes the width or resolution;
                                             the paper's option B)

with, for the basic block (ResNet-18/34),

    F(x) = BN(conv3x3(relu(BN(conv3x3_s(x)))))

and for the bottleneck block (ResNet-50/101/152), 4x wider at its output,

    F(x) = BN(conv1x1_4f(relu(BN(conv3x3_s,g(relu(BN(conv1x1_w(x))))))))

whose inner width is w = floor(f * width_per_group / 64) * g (torchvision's formula; w = f for
the plain ResNets, g = 1 and width_per_group = 64) and whose 3x3 convolution has g groups
(``groups``, feature_group_count: each group of w/g output channels sees only its w/g input
channels). ResNeXt (Xie, Girshick, Dollar, Tu & He 2017, 'Aggregated residual transformations
for deep neural networks', CVPR) is g = 32 (or 64) groups of width_per_group = 4 (or 8): the
'cardinality' of the block; wide ResNets (Zagoruyko & Komodakis 2016, 'Wide residual
networks', BMVC, in torchvision's bottleneck form) double the inner width, width_per_group = 128.

The stride s (2 in the first block of stages 2-4) sits on the 3x3 convolution ("ResNet v1.5",
as in torchvision and flax; the paper strides the first 1x1, same parameters). Each block's last
batch-norm scale starts at zero, so every block starts as the identity (Goyal et al. 2017,
'Accurate, large minibatch SGD'). Convolutions carry no bias (batch norm follows each).

Stems: ``'imagenet'`` is the paper's conv 7x7/2 (64) -> BN -> ReLU -> max-pool 3x3/2 for 224x224
images; ``'cifar'`` is a conv 3x3/1 -> BN -> ReLU with no pooling, for 28x28 or 32x32 images (the
paper's CIFAR-10 networks keep the 3x3 stem but use three 16/32/64 stages; here the stages are
whatever ``stage_sizes`` and ``num_filters`` say). Then global average pooling and one dense layer
to ``num_classes`` logits.

Precision: ``dtype`` is the computation dtype (e.g. ``jnp.bfloat16``); parameters are kept in
``param_dtype`` (float32) and cast at use, batch-norm statistics are reduced in float32, and the
logits are returned in float32 so the loss and its softmax run in float32. ``dtype=None`` (the
default) computes in the dtype of the inputs and parameters, float32 unless a wrapper such as
``jdl.train.mixed_precision`` casts them.

Memory: ``remat=True`` wraps each block in ``flax.linen.remat`` (jax.checkpoint): a block's
activations are recomputed in the backward pass instead of stored, trading about one extra
forward pass for activation memory. Parameter names do not depend on it.

Call: ``model.apply(variables, x, train=True, mutable=['batch_stats'])``; ``train=False`` uses the
running averages. jdl.train.backprop threads 'batch_stats' through ``model_state``. Batch norm
is synchronised over ``axis_name`` (default jdl.nn.batch_axis.BATCH_AXIS, 'batch') when that axis
is bound, i.e. under jdl.parallel's pmap: the statistics are those of the global batch, so D
devices compute what one device computes on the whole batch; elsewhere it is a plain BatchNorm
(``axis_name=None`` never synchronises).

Cutting (jdl.nn.layers): ``output_layer`` one of 'stem' (after the stem's ReLU and, for the
imagenet stem, its max-pool), 'stage{i}_block{j}' (after the block's final ReLU), 'pool' (global
average, the features the head sees), 'head' (logits); ``layer_names()`` lists them.

Parameter counts (224x224x3, 1000 classes, as torchvision): ResNet-18 11,689,512;
ResNet-34 21,797,672; ResNet-50 25,557,032; ResNet-101 44,549,160; ResNet-152 60,192,808;
ResNeXt-50 32x4d 25,028,904; ResNeXt-101 32x8d 88,791,336; ResNeXt-101 64x4d 83,455,272;
Wide ResNet-50-2 68,883,240; Wide ResNet-101-2 126,886,696.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jdl.nn.batch_axis import BATCH_AXIS, sync_axis
from jdl.nn.layers import NamedLayers

ModuleDef = Any

# He et al. 2015 ('Delving deep into rectifiers') normal init, fan-out, as torchvision's ResNet.
CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class ResNetBlock(nn.Module):
    """Basic block: y = relu(x + BN(conv3x3(relu(BN(conv3x3_s(x)))))), with a projection
    shortcut BN(conv1x1_s(x)) when the shape changes."""
    filters: int
    conv: ModuleDef
    norm: ModuleDef
    act: Callable
    strides: tuple[int, int] = (1, 1)
    groups: int = 1
    width_per_group: int = 64

    def __post_init__(self):
        if self.groups != 1 or self.width_per_group != 64:
            raise ValueError("the basic block has groups=1 and width_per_group=64 only (as "
                             f"torchvision), got groups={self.groups}, "
                             f"width_per_group={self.width_per_group}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        residual = x
        y = self.conv(self.filters, (3, 3), self.strides)(x)
        y = self.act(self.norm()(y))
        y = self.conv(self.filters, (3, 3))(y)
        y = self.norm(scale_init=nn.initializers.zeros_init())(y)
        if residual.shape != y.shape:
            residual = self.conv(self.filters, (1, 1), self.strides, name="conv_proj")(residual)
            residual = self.norm(name="norm_proj")(residual)
        return self.act(residual + y)


class BottleneckResNetBlock(nn.Module):
    """Bottleneck block: 1x1 (w) -> 3x3/s with g groups (w) -> 1x1 (4f), BN after each, ReLU
    between, w = floor(f * width_per_group / 64) * groups (w = f by default);
    y = relu(shortcut(x) + F(x)), projection shortcut BN(conv1x1_s(x)) when the shape changes."""
    filters: int
    conv: ModuleDef
    norm: ModuleDef
    act: Callable
    strides: tuple[int, int] = (1, 1)
    groups: int = 1
    width_per_group: int = 64

    @nn.compact
    def __call__(self, x):
        residual = x
        width = int(self.filters * (self.width_per_group / 64.0)) * self.groups
        y = self.act(self.norm()(self.conv(width, (1, 1))(x)))
        grouped = {} if self.groups == 1 else {"feature_group_count": self.groups}
        y = self.conv(width, (3, 3), self.strides, **grouped)(y)
        y = self.act(self.norm()(y))
        y = self.conv(self.filters * 4, (1, 1))(y)
        y = self.norm(scale_init=nn.initializers.zeros_init())(y)
        if residual.shape != y.shape:
            residual = self.conv(self.filters * 4, (1, 1), self.strides, name="conv_proj")(residual)
            residual = self.norm(name="norm_proj")(residual)
        return self.act(residual + y)


STEMS = ("imagenet", "cifar")


def torch_padded(conv: ModuleDef, features: int, kernel_size, strides=(1, 1), **kw):
    """``conv`` padded by (k - 1) // 2 on every side, as PyTorch's convolutions in torchvision's
    ResNets (unless ``padding`` is given). 'SAME' differs for stride 2 on even sizes: it pads
    (0, 1) where PyTorch pads (1, 1), so the sampled positions shift by one pixel."""
    kw.setdefault("padding", [((k - 1) // 2, (k - 1) // 2) for k in kernel_size])
    return conv(features, kernel_size, strides, **kw)


class ResNet(NamedLayers, nn.Module):
    """ResNet v1.5 (see the module docstring for the block equations).

    stage_sizes: blocks per stage, e.g. [3, 4, 6, 3]; stage i has ``num_filters * 2**i`` filters
    (x4 at a bottleneck block's output) and halves the resolution in its first block (i > 0).
    groups, width_per_group: the bottleneck's 3x3 groups and width (ResNeXt, wide ResNets).
    torch_padding: pad each conv by (k - 1) // 2 on every side as PyTorch (torchvision's
    weights give torchvision's logits); the default 'SAME' (flax's, kept for the checkpoints of
    earlier runs, same parameters) pads a stride-2 3x3 conv of an even-sized map by (0, 1).
    output_layer: cut point, one of ``layer_names()`` (module docstring, 'Cutting').
    """
    stage_sizes: Sequence[int]
    block_cls: ModuleDef
    num_classes: int = 1000
    num_filters: int = 64
    stem: str = "imagenet"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    act: Callable = nn.relu
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm
    kernel_init: Callable = CONV_INIT
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    axis_name: str | None = BATCH_AXIS
    remat: bool = False
    remat_policy: Callable | None = None
    groups: int = 1
    width_per_group: int = 64
    torch_padding: bool = False
    output_layer: str | None = None

    def __post_init__(self):
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if not self.stage_sizes or any(int(n) < 1 for n in self.stage_sizes):
            raise ValueError(f"stage_sizes must be positive block counts, got {self.stage_sizes}")
        if self.groups < 1 or self.width_per_group < 1:
            raise ValueError(f"groups and width_per_group must be positive, got "
                             f"groups={self.groups}, width_per_group={self.width_per_group}")
        super().__post_init__()

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        blocks = tuple(f"stage{i + 1}_block{j + 1}" for i, n in enumerate(self.stage_sizes)
                       for j in range(n))
        return ("stem",) + blocks + ("pool", "head")

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = partial(self.conv, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                       kernel_init=self.kernel_init)
        if self.torch_padding:
            conv = partial(torch_padded, conv)
        norm = partial(self.norm, use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, dtype=self.dtype, param_dtype=self.param_dtype,
                       axis_name=sync_axis(self.axis_name))
        if self.dtype is not None:
            x = jnp.asarray(x, self.dtype)
        if self.stem == "imagenet":
            x = conv(self.num_filters, (7, 7), (2, 2), padding=[(3, 3), (3, 3)],
                     name="conv_init")(x)
            x = self.act(norm(name="bn_init")(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        else:
            x = conv(self.num_filters, (3, 3), name="conv_init")(x)
            x = self.act(norm(name="bn_init")(x))
        if self.reached("stem"):
            return x
        block_cls = self.block_cls
        if self.remat:
            block_cls = nn.remat(block_cls, policy=self.remat_policy)
        for i, n_blocks in enumerate(self.stage_sizes):
            for j in range(n_blocks):
                strides = (2, 2) if i > 0 and j == 0 else (1, 1)
                name = f"stage{i + 1}_block{j + 1}"
                x = block_cls(self.num_filters * 2 ** i, strides=strides, conv=conv, norm=norm,
                              act=self.act, groups=self.groups,
                              width_per_group=self.width_per_group, name=name)(x)
                if self.reached(name):
                    return x
        x = jnp.mean(x, axis=(1, 2))
        if self.reached("pool"):
            return x
        x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                     name="head")(x)
        return x.astype(jnp.float32)


# ResNet-10 (one basic block per stage) is not in the paper: the smallest member, for smoke tests.
ResNet10 = partial(ResNet, stage_sizes=[1, 1, 1, 1], block_cls=ResNetBlock)
ResNet18 = partial(ResNet, stage_sizes=[2, 2, 2, 2], block_cls=ResNetBlock)
ResNet34 = partial(ResNet, stage_sizes=[3, 4, 6, 3], block_cls=ResNetBlock)
ResNet50 = partial(ResNet, stage_sizes=[3, 4, 6, 3], block_cls=BottleneckResNetBlock)
ResNet101 = partial(ResNet, stage_sizes=[3, 4, 23, 3], block_cls=BottleneckResNetBlock)
ResNet152 = partial(ResNet, stage_sizes=[3, 8, 36, 3], block_cls=BottleneckResNetBlock)
ResNet200 = partial(ResNet, stage_sizes=[3, 24, 36, 3], block_cls=BottleneckResNetBlock)
ResNeXt50_32x4d = partial(ResNet50, groups=32, width_per_group=4)
ResNeXt101_32x8d = partial(ResNet101, groups=32, width_per_group=8)
ResNeXt101_64x4d = partial(ResNet101, groups=64, width_per_group=4)
WideResNet50_2 = partial(ResNet50, width_per_group=128)
WideResNet101_2 = partial(ResNet101, width_per_group=128)

RESNETS = {"resnet10": ResNet10, "resnet18": ResNet18, "resnet34": ResNet34, "resnet50": ResNet50,
           "resnet101": ResNet101, "resnet152": ResNet152, "resnet200": ResNet200,
           "resnext50_32x4d": ResNeXt50_32x4d, "resnext101_32x8d": ResNeXt101_32x8d,
           "resnext101_64x4d": ResNeXt101_64x4d, "wide_resnet50_2": WideResNet50_2,
           "wide_resnet101_2": WideResNet101_2}


def _same(h: int, s: int) -> int:
    return math.ceil(h / s)


def forward_macs(model: ResNet, image_size: Sequence[int] = (224, 224),
                 in_channels: int = 3) -> int:
    """Multiply-accumulates of one image's forward pass through the convolutions and the dense
    head (batch norm, ReLU, pooling and additions left out, as in the usual '4.1 GFLOPs' of
    ResNet-50, which are 4.1 G multiply-adds: 8.2 GFLOPs counting a multiply-add as 2 FLOPs).
    Counted from the architecture alone, not from XLA: ResNet-50 at 224x224 gives 4.09e9."""
    bottleneck = issubclass(model.block_cls, BottleneckResNetBlock)
    h, w = image_size
    f0 = model.num_filters
    if model.stem == "imagenet":
        h, w = _same(h, 2), _same(w, 2)                 # 7x7/2, padding 3
        macs = h * w * 49 * in_channels * f0
        h, w = _same(h, 2), _same(w, 2)                 # max-pool 3x3/2, padding 1
    else:
        macs = h * w * 9 * in_channels * f0
    cin = f0
    for i, n_blocks in enumerate(model.stage_sizes):
        f = f0 * 2 ** i
        for j in range(n_blocks):
            s = 2 if i > 0 and j == 0 else 1
            ho, wo = _same(h, s), _same(w, s)
            if bottleneck:
                cout = 4 * f
                wd = int(f * (model.width_per_group / 64.0)) * model.groups
                macs += (h * w * cin * wd + ho * wo * 9 * wd * wd // model.groups
                         + ho * wo * wd * cout)
            else:
                cout = f
                macs += ho * wo * 9 * cin * f + ho * wo * 9 * f * f
            if cin != cout or s != 1:
                macs += ho * wo * cin * cout
            h, w, cin = ho, wo, cout
    return macs + cin * model.num_classes
