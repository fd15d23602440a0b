"""VGG networks (Simonyan & Zisserman 2015, 'Very deep convolutional networks for large-scale
image recognition', ICLR), configurations A, B, D, E = VGG-11, 13, 16, 19, with or without batch
normalisation (Ioffe & Szegedy 2015) after each convolution, as torchvision has them.

Five stages of 3x3/1 'same' convolutions (+ BN) + ReLU, each followed by a 2x2/2 max-pool; stage s
has ``widths[s]`` filters (64, 128, 256, 512, 512) and ``stages[s]`` convolutions:

    VGG-11 (1, 1, 2, 2, 2)   VGG-13 (2, 2, 2, 2, 2)   VGG-16 (2, 2, 3, 3, 3)   VGG-19 (2, 2, 4, 4, 4)

then an adaptive average pool to 7x7 (an identity at 224x224), flatten (h, w, c), fc6 4096 +
ReLU + dropout 0.5, fc7 4096 + ReLU + dropout 0.5, fc8 (logits). Parameters at 224x224x3, 1000
classes (as torchvision), and multiply-adds of one forward pass:

    VGG-11 132,863,336 (7.61 G)   VGG-11-BN 132,868,840
    VGG-13 133,047,848 (11.3 G)   VGG-13-BN 133,053,736
    VGG-16 138,357,544 (15.5 G)   VGG-16-BN 138,365,992
    VGG-19 143,667,240 (19.6 G)   VGG-19-BN 143,678,248

Batch norm: epsilon 1e-5 and running averages s <- 0.9 s + 0.1 s_batch (PyTorch's momentum 0.1),
synchronised over ``axis_name`` under jdl.parallel's pmap (see jdl.nn.resnet). Initialisation as
torchvision: convs He normal fan-out, dense layers normal(0, 0.01), biases 0.

Small inputs (``VGG11Small`` ... ``VGG19BNSmall``): the same five stages and pools at a quarter
of the widths (16, 32, 64, 128, 128), 28x28 images zero-padded to 32x32 (as LeNet-5) so that the
five pools give 16, 8, 4, 2, 1, adaptive pool to 1x1 and 256-unit fc6/fc7. Per 28x28x1 image:

    VGG11Small 678,218 params, 9.7 M MACs      VGG13Small 689,786 params, 14.4 M MACs
    VGG16Small 1,021,882 params, 19.7 M MACs   VGG19Small 1,353,978 params, 25.0 M MACs
    (batch norm adds 2 parameters per filter: VGG16BNSmall 1,023,994)

Cutting (jdl.nn.layers): output_layer one of 'conv{s}_{i}' (after its BN and ReLU), 'pool{s}'
(after stage s's max-pool; 'pool5' also after the adaptive pool: what fc6 flattens), 'fc6',
'fc7' (after the ReLU, before the dropout), 'fc8' (logits).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jdl.nn.batch_axis import BATCH_AXIS, sync_axis
from jdl.nn.convolution import max_pool
from jdl.nn.dropout import Dropout
from jdl.nn.layers import NamedLayers, conv_layer
from jdl.nn.pooling import adaptive_avg_pool
from jdl.nn.validate import check_rate

# torchvision's VGG init: kaiming_normal_(mode='fan_out', nonlinearity='relu'), normal(0, 0.01)
CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
DENSE_INIT = nn.initializers.normal(0.01)


class VGG(NamedLayers, nn.Module):
    """VGG (module docstring). ``stages``: convolutions per stage; ``widths``: filters per
    stage; ``batch_norm``; ``hidden``: fc6/fc7 units; ``pool_size``: the adaptive pool's
    output; ``pad_to``: zero-pad smaller inputs to pad_to x pad_to first (None: never)."""
    stages: Sequence[int] = (2, 2, 3, 3, 3)
    num_classes: int = 1000
    batch_norm: bool = False
    widths: Sequence[int] = (64, 128, 256, 512, 512)
    hidden: int = 4096
    pool_size: tuple[int, int] = (7, 7)
    pad_to: int | None = None
    dropout_rate: float = 0.5
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    axis_name: str | None = BATCH_AXIS
    conv_init: Callable = CONV_INIT
    dense_init: Callable = DENSE_INIT
    output_layer: str | None = None

    def __post_init__(self):
        check_rate("dropout_rate", self.dropout_rate)
        if len(self.stages) != len(self.widths) or any(int(n) < 1 for n in self.stages):
            raise ValueError(f"stages (convs per stage, >= 1) and widths must have the same "
                             f"length, got stages={self.stages}, widths={self.widths}")
        super().__post_init__()

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        names = []
        for s, n in enumerate(self.stages, 1):
            names += [f"conv{s}_{i}" for i in range(1, n + 1)] + [f"pool{s}"]
        return tuple(names) + ("fc6", "fc7", "fc8")

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.pad_to is not None:
            ph, pw = max(self.pad_to - x.shape[1], 0), max(self.pad_to - x.shape[2], 0)
            x = jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        for s, (n, f) in enumerate(zip(self.stages, self.widths), 1):
            for i in range(1, n + 1):
                x = conv_layer(f, 3, 1, 1, self.conv_init, f"conv{s}_{i}")(x)
                if self.batch_norm:
                    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                     epsilon=self.bn_epsilon, axis_name=sync_axis(self.axis_name),
                                     name=f"bn{s}_{i}")(x)
                x = nn.relu(x)
                if self.reached(f"conv{s}_{i}"):
                    return x
            x = max_pool(x, (2, 2), strides=(2, 2))
            if s == len(self.stages):
                x = adaptive_avg_pool(x, self.pool_size)
            if self.reached(f"pool{s}"):
                return x
        x = x.reshape((x.shape[0], -1))
        for name in ("fc6", "fc7"):
            x = nn.relu(nn.Dense(self.hidden, kernel_init=self.dense_init, name=name)(x))
            if self.reached(name):
                return x
            x = Dropout(self.dropout_rate)(x, deterministic=not train)
        return nn.Dense(self.num_classes, kernel_init=self.dense_init, name="fc8")(x)


VGG_STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
VGG11 = partial(VGG, stages=VGG_STAGES[11])
VGG13 = partial(VGG, stages=VGG_STAGES[13])
VGG16 = partial(VGG, stages=VGG_STAGES[16])
VGG19 = partial(VGG, stages=VGG_STAGES[19])
VGG11BN = partial(VGG11, batch_norm=True)
VGG13BN = partial(VGG13, batch_norm=True)
VGG16BN = partial(VGG16, batch_norm=True)
VGG19BN = partial(VGG19, batch_norm=True)

_SMALL = dict(num_classes=10, widths=(16, 32, 64, 128, 128), hidden=256, pool_size=(1, 1),
              pad_to=32)
VGG11Small = partial(VGG11, **_SMALL)
VGG13Small = partial(VGG13, **_SMALL)
VGG16Small = partial(VGG16, **_SMALL)
VGG19Small = partial(VGG19, **_SMALL)
VGG11BNSmall = partial(VGG11BN, **_SMALL)
VGG13BNSmall = partial(VGG13BN, **_SMALL)
VGG16BNSmall = partial(VGG16BN, **_SMALL)
VGG19BNSmall = partial(VGG19BN, **_SMALL)
