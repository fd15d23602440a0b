"""2-D convolution and pooling layers with gradients that run fast on XLA's CPU backend.

``conv2d(x, k)`` computes, for NHWC inputs and HWIO kernels with unit stride,

    y[n, i, j, o] = sum_{a, b, c} x_pad[n, i + a, j + b, c] k[a, b, c, o]

Its gradients are the textbook ones (LeCun et al. 1998): dL/dx is the 'full' correlation of
dL/dy with the flipped kernel (XLA's own transpose rule), and

    dL/dk[a, b, c, o] = sum_{n, i, j} x_pad[n, i + a, j + b, c] dL/dy[n, i, j, o],

which is computed here, on CPU only and for the layer shapes where it measured faster
(:func:`taps_pay_off`: 3x3 kernels over >= 32 channels), as kh * kw matrix products
(N H W x C)^T (N H W x O) instead of XLA's generic kernel-gradient convolution: on the 2-core
CPU this halves the cost of that term for the lecture's Keras convnet (BUILD_NOTES.md, 'conv
kernel gradient'). The platform choice is made when the program is lowered
(``jax.lax.platform_dependent``): GPU and TPU programs use XLA's native kernel gradient, and
the CPU branch is not in them. ``max_pool`` with stride == window and divisible sizes is a
reshape + :func:`window_max`, whose gradient is wh * ww elementwise comparisons (XLA's
first-maximum rule) rather than XLA's select-and-scatter (23x slower here) or jnp.max's
tie-counting rule (4x); other cases fall back to flax's pooling.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_DN = ("NHWC", "HWIO", "NHWC")


def _pads(padding, kh, kw):
    if padding == "VALID":
        return ((0, 0), (0, 0))
    if padding == "SAME":
        return (((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2))
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")


def _conv(x, k, padding):
    kh, kw, cin, cout = k.shape
    if padding == "VALID" and x.shape[1:] == (kh, kw, cin):
        # the kernel covers the whole input (LeNet-5's C5): a full layer on the flattened
        # input, whose gradients are matrix products (XLA's 'full' correlation for dL/dx was
        # 4x slower here: BUILD_NOTES.md, sixth session, 'Profile')
        return (x.reshape(x.shape[0], -1) @ k.reshape(-1, cout)).reshape(-1, 1, 1, cout)
    return jax.lax.conv_general_dilated(x, k, (1, 1), list(_pads(padding, *k.shape[:2])),
                                        dimension_numbers=_DN)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x, kernel, padding: str = "SAME"):
    """Unit-stride 2-D cross-correlation, NHWC x HWIO -> NHWC, 'SAME' or 'VALID' padding."""
    return _conv(x, kernel, padding)


def _fwd(x, kernel, padding):
    return _conv(x, kernel, padding), (x, kernel)


def kernel_grad_taps(x, g, kernel_shape, padding):
    """dL/dk as kh * kw matrix products (N H W x C)^T (N H W x O) of shifted input windows
    with dL/dy (the module docstring's formula); the CPU formulation."""
    kh, kw, cin, cout = kernel_shape
    (ph, pw) = _pads(padding, kh, kw)
    xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0))) if padding == "SAME" else x
    ho, wo = g.shape[1], g.shape[2]
    gm = g.reshape(-1, cout)
    taps = [xp[:, a:a + ho, b:b + wo, :].reshape(-1, cin).T @ gm for a in range(kh) for b in range(kw)]
    return jnp.stack(taps).reshape(kh, kw, cin, cout)


def kernel_grad_xla(x, g, kernel_shape, padding):
    """dL/dk by XLA's own kernel-gradient convolution (the transpose rule of its conv)."""
    _, vjp_k = jax.vjp(lambda k_: _conv(x, k_, padding), jnp.zeros(kernel_shape, x.dtype))
    return vjp_k(g)[0]


def taps_pay_off(x_shape, kernel_shape) -> bool:
    """Whether :func:`kernel_grad_taps` beats XLA's kernel-gradient convolution on CPU for
    this layer: 3x3 kernels (or smaller) over >= 32 input channels on maps of >= 14x14. The
    rule is read off measurements on the 2-core AVX-512 CPU (BUILD_NOTES.md, sixth session,
    'Kernel gradient, six formulations'; milliseconds, taps / XLA): the Keras example's 26x26x32 -> 32 3x3 7.5 / 13.7,
    ResNet's 14x14x32 -> 32 12.3 / 17.6; XLA's own as fast or faster for LeNet-5's and the
    benchmark convnet's 5x5 kernels (28x28x1 -> 32: 18.1 / 5.8; 14x14x32 -> 64: 62.9 / 53.6),
    for one input channel, 16 channels (28x28x16 -> 16: 36.7 / 20.2) and 7x7 maps (7.9 / 10.9
    the other way)."""
    kh, kw, cin, _ = kernel_shape
    return kh * kw <= 9 and cin >= 32 and x_shape[1] * x_shape[2] >= 196


def _bwd(padding, res, g):
    x, k = res
    _, vjp_x = jax.vjp(lambda x_: _conv(x_, k, padding), x)
    (dx,) = vjp_x(g)
    if not taps_pay_off(x.shape, k.shape):
        return dx, kernel_grad_xla(x, g, k.shape, padding).astype(k.dtype)
    # the tap products on CPU only; XLA's native convolution gradient on GPU/TPU (chosen when
    # the program is lowered for its platform)
    dk = jax.lax.platform_dependent(
        x, g, cpu=lambda x_, g_: kernel_grad_taps(x_, g_, k.shape, padding),
        default=lambda x_, g_: kernel_grad_xla(x_, g_, k.shape, padding))
    return dx, dk.astype(k.dtype)


conv2d.defvjp(_fwd, _bwd)


class Conv(nn.Module):
    """Drop-in for ``flax.linen.Conv`` (unit stride, 'SAME'/'VALID'), same 'kernel'/'bias'
    parameters, using :func:`conv2d`. Other strides/paddings use flax's Conv unchanged."""
    features: int
    kernel_size: Sequence[int]
    padding: str = "SAME"
    strides: Sequence[int] = (1, 1)
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel_size
        if tuple(self.strides) != (1, 1) or self.padding not in ("SAME", "VALID"):
            return nn.Conv(self.features, (kh, kw), strides=self.strides, padding=self.padding,
                           use_bias=self.use_bias, kernel_init=self.kernel_init,
                           bias_init=self.bias_init, name="conv")(x)
        k = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
        y = conv2d(x, k.astype(x.dtype), self.padding)
        if self.use_bias:
            b = self.param("bias", self.bias_init, (self.features,)).astype(y.dtype)
            y = y + b.reshape(1, 1, 1, -1)   # rank-explicit (as flax's Conv)
        return y


def _pool(x, window, strides, reduce, fallback):
    """Non-overlapping windows dividing the image: a reshape + ``reduce`` over the window axes
    (elementwise gradient); anything else: flax's ``fallback`` pooling."""
    wh, ww = window
    sh, sw = strides or window
    n, h, w, c = x.shape
    if (sh, sw) == (wh, ww) and h % wh == 0 and w % ww == 0:
        return reduce(x.reshape(n, h // wh, wh, w // ww, ww, c), axis=(2, 4))
    return fallback(x, (wh, ww), strides=(sh, sw))


@jax.custom_vjp
def window_max(xr):
    """max over axes 2 and 4 of (N, H', wh, W', ww, C) windows, with the gradient of XLA's
    max pooling (select-and-scatter): dL/dy goes to the FIRST maximal element of each window
    in row-major order (ties, e.g. ReLU zeros, give it to one element, not shared), computed
    by wh * ww elementwise comparisons instead of a scatter or jnp.max's tie-counting rule."""
    return xr.max(axis=(2, 4))


def _window_max_fwd(xr):
    m = xr.max(axis=(2, 4))
    return m, (xr, m)


def _window_max_bwd(res, g):
    xr, m = res
    taken, rows = None, []
    for a in range(xr.shape[2]):
        row = []
        for b in range(xr.shape[4]):
            hit = xr[:, :, a, :, b, :] == m
            hit, taken = (hit, hit) if taken is None else (hit & ~taken, taken | hit)
            row.append(jnp.where(hit, g, jnp.zeros_like(g)))
        rows.append(jnp.stack(row, axis=3))
    return (jnp.stack(rows, axis=2).astype(xr.dtype),)


window_max.defvjp(_window_max_fwd, _window_max_bwd)


def max_pool(x, window: Sequence[int], strides: Sequence[int] | None = None):
    """Max pooling over NHWC; non-overlapping windows are a reshape + :func:`window_max`
    (elementwise gradient, XLA's tie rule)."""
    return _pool(x, window, strides, lambda v, axis: window_max(v), nn.max_pool)


def avg_pool(x, window: Sequence[int], strides: Sequence[int] | None = None):
    """Average pooling (LeNet's subsampling without its trainable coefficient)."""
    return _pool(x, window, strides, jnp.mean, nn.avg_pool)
