"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, 'ImageNet classification with deep
convolutional neural networks', NIPS) as torchvision has it, and ZFNet (Zeiler & Fergus 2014,
'Visualizing and understanding convolutional networks', ECCV) as the lecture states it: AlexNet
with conv1 7x7 stride 2 instead of 11x11 stride 4, and 512, 1024, 512 filters in conv3-5
instead of 384, 384, 256.

torchvision's AlexNet is the single-tower variant of Krizhevsky's 'one weird trick' paper
(2014), the one whose ImageNet weights people have: 64, 192, 384, 256, 256 filters where the
2012 paper has two GPU towers of 48+48, 128+128, 192+192, 192+192, 128+128, and no local
response normalisation. Layers (224x224x3 input, 1000 classes; 'pad' each side):

    layer   op                                  output        params
    conv1   conv 11x11/4 pad 2, 64, ReLU        55x55x64      23,296
    pool1   max 3x3/2                           27x27x64
    conv2   conv 5x5/1 pad 2, 192, ReLU         27x27x192     307,392
    pool2   max 3x3/2                           13x13x192
    conv3   conv 3x3/1 pad 1, 384, ReLU         13x13x384     663,936
    conv4   conv 3x3/1 pad 1, 256, ReLU         13x13x256     884,992
    conv5   conv 3x3/1 pad 1, 256, ReLU         13x13x256     590,080
    pool5   max 3x3/2, adaptive avg to 6x6      6x6x256
    fc6     dropout 0.5, dense 4096, ReLU       4096          37,752,832
    fc7     dropout 0.5, dense 4096, ReLU       4096          16,781,312
    fc8     dense 1000 (logits)                 1000          4,097,000
                                                total         61,100,840 (714 M MACs)

ZFNet (same table with conv1 7x7/2 pad 2 -> 111x111x64, pool1 -> 55x55, conv2 -> 55x55,
pool2 -> 27x27, conv3-5 512/1024/512 at 27x27, pool5 13x13 -> adaptive 6x6x512) has
9,472 + 307,392 + 885,248 + 4,719,616 + 4,719,104 + 75,501,568 + 16,781,312 + 4,097,000
= 107,020,712 parameters and 8.67 G MACs at 224/1000: the other hyper-parameters are
torchvision AlexNet's, the lecture's diff only, so conv3-5 run at 27x27 (Zeiler & Fergus's own
net also strides conv2 by 2 and has 96/256 filters in conv1/conv2, giving 13x13 there).

``lrn=True`` adds the 2012 paper's local response normalisation after the ReLUs of conv1 and
conv2 (before their max-pools, section 3.3):

    b[c] = a[c] / (k + alpha sum_{c' = max(0, c - n/2)}^{min(C - 1, c + n/2)} a[c']^2)^beta,

k = 2, n = 5, alpha = 1e-4, beta = 0.75 (PyTorch's LocalResponseNorm divides alpha by n: the
paper's alpha is its alpha * n). No parameters, so the counts are unchanged.

Small inputs: ``AlexNetSmall`` and ``ZFNetSmall`` keep the five convolutions, three max-pools
and three dense layers for 28x28x1 images with a 5x5/1 (AlexNet) or 3x3/1 (ZFNet: smaller
kernel and stride, as the lecture's diff) conv1, a quarter of the widths and 512-unit fc6/fc7,
and an adaptive average pool to 2x2; 28 -> pool1 13 -> pool2 6 -> pool5 2:

    AlexNetSmall  16, 48, 96, 64, 64 filters      552,890 params,   8.8 M MACs per image
    ZFNetSmall    16, 48, 128, 256, 128 filters   1,195,482 params, 27.1 M MACs per image

Cutting (jdl.nn.layers): output_layer one of conv1, pool1, conv2, pool2, conv3, conv4, conv5,
pool5 (after the max-pool and the adaptive pool), fc6, fc7 (after the ReLU, before the next
dropout), fc8 (logits). fc6's input is the NHWC flatten (h, w, c) of pool5.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import flax.linen as nn
from jax import lax

from jdl.nn.dropout import Dropout
from jdl.nn.initializers import DEFAULT_KERNEL_INIT
from jdl.nn.layers import NamedLayers, conv_layer
from jdl.nn.pooling import adaptive_avg_pool, max_pool_padded
from jdl.nn.validate import check_rate


def local_response_norm(x, n: int = 5, k: float = 2.0, alpha: float = 1e-4,
                        beta: float = 0.75):
    """Krizhevsky et al. 2012's local response normalisation across the channels (last axis) of
    NHWC ``x``: b[c] = a[c] / (k + alpha sum_{|c' - c| <= n // 2} a[c']^2)^beta, the sum
    clipped at the first and last channel."""
    sq = lax.reduce_window(x * x, 0.0, lax.add, (1, 1, 1, n), (1, 1, 1, 1),
                           [(0, 0), (0, 0), (0, 0), (n // 2, (n - 1) // 2)])
    return x / (k + alpha * sq) ** beta


class AlexNet(NamedLayers, nn.Module):
    """AlexNet / ZFNet (module docstring). ``conv1``: (kernel, stride, pad) of the first conv;
    ``features``: the five convs' filters; ``hidden``: fc6/fc7 units; ``pool_size``: the
    adaptive average pool's output before fc6; ``lrn``: the 2012 paper's local response
    normalisation after conv1 and conv2."""
    num_classes: int = 1000
    conv1: tuple[int, int, int] = (11, 4, 2)
    features: Sequence[int] = (64, 192, 384, 256, 256)
    hidden: int = 4096
    pool_size: tuple[int, int] = (6, 6)
    lrn: bool = False
    dropout_rate: float = 0.5
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    output_layer: str | None = None

    def __post_init__(self):
        check_rate("dropout_rate", self.dropout_rate)
        if len(self.features) != 5:
            raise ValueError(f"features must list the 5 convs' filters, got {self.features}")
        super().__post_init__()

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        return ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5",
                "fc6", "fc7", "fc8")

    @nn.compact
    def __call__(self, x, train: bool = False):
        k1, s1, p1 = self.conv1
        specs = ((k1, s1, p1), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1))
        for i, ((k, s, p), f) in enumerate(zip(specs, self.features)):
            x = nn.relu(conv_layer(f, k, s, p, self.kernel_init, f"conv{i + 1}")(x))
            if self.lrn and i < 2:
                x = local_response_norm(x)
            if self.reached(f"conv{i + 1}"):
                return x
            if i in (0, 1, 4):
                x = max_pool_padded(x, 3, 2)
                if i == 4:
                    x = adaptive_avg_pool(x, self.pool_size)
                if self.reached(f"pool{i + 1}"):
                    return x
        x = x.reshape((x.shape[0], -1))
        for name in ("fc6", "fc7"):
            x = Dropout(self.dropout_rate)(x, deterministic=not train)
            x = nn.relu(nn.Dense(self.hidden, kernel_init=self.kernel_init, name=name)(x))
            if self.reached(name):
                return x
        return nn.Dense(self.num_classes, kernel_init=self.kernel_init, name="fc8")(x)


ZFNet = partial(AlexNet, conv1=(7, 2, 2), features=(64, 192, 512, 1024, 512))
AlexNetSmall = partial(AlexNet, num_classes=10, conv1=(5, 1, 2), features=(16, 48, 96, 64, 64),
                       hidden=512, pool_size=(2, 2))
ZFNetSmall = partial(AlexNetSmall, conv1=(3, 1, 1), features=(16, 48, 128, 256, 128))

__all__ = ["AlexNet", "AlexNetSmall", "ZFNet", "ZFNetSmall", "local_response_norm"]
