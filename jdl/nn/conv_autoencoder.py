"""A convolutional autoencoder (model definition only; objectives live in jdl.ae): the
lecture's autoencoder z = g(f(x)) with a convolutional encoder f and a mirrored decoder g
(Masci, Meier, Ciresan & Schmidhuber 2011, "Stacked convolutional auto-encoders for
hierarchical feature extraction", ICANN; the transposed convolution of Zeiler et al. 2010,
"Deconvolutional networks", CVPR).

With ``channels`` (c_1, ..., c_L), kernel k x k and images H x W x C (H, W divisible by 2^L):

    encoder:  h_0 = x,
              h_l = down(act(conv_{c_l}(h_{l-1})))     'pool':   2 x 2 max pooling after a
                                                                 unit-stride 'SAME' convolution
                                                       'stride': the convolution itself has
                                                                 stride 2 (no pooling)
              code = code_act(vec(h_L) W + c)          (H / 2^L) (W / 2^L) c_L -> code
    decoder:  g_0 = act(code W' + b') reshaped to (H / 2^L, W / 2^L, c_L),
              g_l = act(up_{c'_l}(g_{l-1})),   c' = (c_{L-1}, ..., c_1, C),   the last one
                                               with out_act instead of act
              up: 'nearest': 2 x 2 nearest-neighbour upsampling, then a unit-stride 'SAME'
                             convolution;
                  'transpose': a stride-2 transposed convolution (output twice the size).

So an L-level network halves the image L times and doubles it back L times. Inputs may come
flat (N, H W C), as (N, H, W) or as (N, H, W, C); ``__call__`` returns the reconstruction in
the input's shape and the code, like ``jdl.nn.Autoencoder`` (same methods: ``encode``,
``decode(z, logits=False)``, ``__call__(x, train=False, logits=False)``), so jdl.ae's
objectives and dataset helpers apply to it unchanged.

Parameters: ``conv_0 .. conv_{L-1}`` (encoder convolutions), ``code`` (Dense), ``expand``
(Dense, decoder input), ``up_0 .. up_{L-1}`` (decoder convolutions / transposed convolutions).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jdl.nn.activations import get_activation
from jdl.nn.convolution import Conv, max_pool
from jdl.nn.initializers import DEFAULT_KERNEL_INIT

DOWNSAMPLES = ("pool", "stride")
UPSAMPLES = ("nearest", "transpose")


def upsample_nearest(x, factor: int = 2):
    """(N, H, W, C) -> (N, factor H, factor W, C), each pixel repeated factor x factor times."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder (see the module docstring).

    Attributes: image_shape (H, W, C), channels (c_1, ..., c_L), code (code size),
    kernel_size (k), downsample ('pool' | 'stride'), upsample ('nearest' | 'transpose'),
    activation (hidden layers), code_activation (default 'linear'), output_activation
    (default 'sigmoid', for data in [0, 1]), kernel_init."""
    image_shape: Sequence[int] = (28, 28, 1)
    channels: Sequence[int] = (32, 64)
    code: int = 30
    kernel_size: int = 3
    downsample: str = "pool"
    upsample: str = "nearest"
    activation: Any = "relu"
    code_activation: Any = "linear"
    output_activation: Any = "sigmoid"
    kernel_init: Callable = DEFAULT_KERNEL_INIT

    def __post_init__(self):
        if len(tuple(self.image_shape)) != 3 or any(int(s) <= 0 for s in self.image_shape):
            raise ValueError(f"image_shape must be (H, W, C) positive, got {self.image_shape}")
        if not self.channels or any(int(c) <= 0 for c in self.channels):
            raise ValueError(f"channels must be a non-empty tuple of positive sizes, got "
                             f"{self.channels}")
        if int(self.code) <= 0 or int(self.kernel_size) <= 0:
            raise ValueError(f"code and kernel_size must be positive, got {self.code} and "
                             f"{self.kernel_size}")
        h, w, _ = (int(s) for s in self.image_shape)
        f = 2 ** len(tuple(self.channels))
        if h % f or w % f:
            raise ValueError(f"image_shape {tuple(self.image_shape)}: H and W must be divisible "
                             f"by 2^len(channels) = {f}")
        if self.downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {self.downsample!r}")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {self.upsample!r}")
        for a in (self.activation, self.code_activation, self.output_activation):
            get_activation(a)
        super().__post_init__()

    def setup(self):
        k = (int(self.kernel_size),) * 2
        stride = (2, 2) if self.downsample == "stride" else (1, 1)
        self.convs = [Conv(int(c), k, strides=stride, kernel_init=self.kernel_init,
                           name=f"conv_{i}") for i, c in enumerate(self.channels)]
        self.code_layer = nn.Dense(int(self.code), kernel_init=self.kernel_init, name="code")
        h, w, c = (int(s) for s in self.image_shape)
        f = 2 ** len(tuple(self.channels))
        self._bottom = (h // f, w // f, int(self.channels[-1]))
        self.expand = nn.Dense(self._bottom[0] * self._bottom[1] * self._bottom[2],
                               kernel_init=self.kernel_init, name="expand")
        outs = [int(v) for v in reversed(tuple(self.channels)[:-1])] + [c]
        if self.upsample == "transpose":
            self.ups = [nn.ConvTranspose(n, k, strides=(2, 2), padding="SAME",
                                         kernel_init=self.kernel_init, name=f"up_{i}")
                        for i, n in enumerate(outs)]
        else:
            self.ups = [Conv(n, k, kernel_init=self.kernel_init, name=f"up_{i}")
                        for i, n in enumerate(outs)]

    def _images(self, x):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        shape = tuple(int(s) for s in self.image_shape)
        if x.size != x.shape[0] * shape[0] * shape[1] * shape[2]:
            raise ValueError(f"ConvAutoencoder: inputs must hold {shape} per example, got "
                             f"shape {x.shape}")
        return jnp.reshape(x, (x.shape[0],) + shape)

    def encode(self, x):
        act = get_activation(self.activation)
        h = self._images(x)
        for conv in self.convs:
            h = act(conv(h))
            if self.downsample == "pool":
                h = max_pool(h, (2, 2))
        return get_activation(self.code_activation)(self.code_layer(
            jnp.reshape(h, (h.shape[0], -1))))

    def decode(self, z, logits: bool = False):
        act, out_act = get_activation(self.activation), get_activation(self.output_activation)
        g = act(self.expand(jnp.asarray(z)))
        g = jnp.reshape(g, (g.shape[0],) + self._bottom)
        for i, up in enumerate(self.ups):
            g = up(g) if self.upsample == "transpose" else up(upsample_nearest(g))
            if i < len(self.ups) - 1:
                g = act(g)
        return g if logits else out_act(g)

    def __call__(self, x, train: bool = False, logits: bool = False):
        code = self.encode(x)
        out = self.decode(code, logits=logits)
        return jnp.reshape(out, jnp.shape(x)), code
