"""Pooling layers beyond jdl.nn.convolution's max/avg: padded and ceil-mode max pooling,
adaptive average pooling (torchvision's models) and Lp pooling. NHWC throughout.

Max pooling with PyTorch's semantics (``nn.MaxPool2d(k, s, p, ceil_mode)``): the input is padded
with -inf by p on each side and the number of windows along a side of length H is

    out = floor((H + 2p - k) / s) + 1                          (ceil_mode=False)
    out = ceil((H + 2p - k) / s) + 1, minus 1 if (out - 1) s >= H + p   (ceil_mode=True)

so a ceil-mode window may hang over the bottom/right edge: that overhang is extra -inf padding.

Adaptive average pooling (``nn.AdaptiveAvgPool2d(out)``): output cell i of a side of length H
averages the input rows [floor(i H / out), ceil((i + 1) H / out)), which tile the input when
out divides H and overlap by one row otherwise; computed as a product with the (out x H)
averaging matrix along each spatial axis.

Lp pooling (Hyvarinen & Koster 2007; Boureau, Ponce & LeCun 2010, 'A theoretical analysis of
feature pooling in visual recognition'; Sermanet, Chintala & LeCun 2012) over each window W:

    y = ( (1 / |W|) sum_{i in W} |x_i|^p )^(1 / p)

a power mean: p = 1 is average pooling of |x| (exactly average pooling for x >= 0, e.g. after a
ReLU), p = 2 the root-mean-square, and y -> max_{i in W} |x_i| as p -> infinity, with
|W|^(-1/p) max |x| <= y <= max |x|. PyTorch's ``nn.LPPool2d`` omits the 1/|W| (its y is
|W|^(1/p) times this one, and it uses x^p without the absolute value). Computed as
m (mean (|x| / m)^p)^(1/p) with m the window's max |x| (0 where m = 0), stable for large p.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from jdl.nn.convolution import avg_pool, max_pool


def _pair(v, name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or any(int(a) < 0 for a in t):
        raise ValueError(f"{name} must be an int or a pair of non-negative ints, got {v!r}")
    return int(t[0]), int(t[1])


def pool_output_size(size: int, window: int, stride: int, padding: int = 0,
                     ceil_mode: bool = False) -> int:
    """Windows along a side of ``size`` inputs, as PyTorch's pooling counts them (module
    docstring)."""
    span = size + 2 * padding - window
    if span < 0:
        raise ValueError(f"pooling window {window} larger than the padded input "
                         f"{size} + 2 * {padding}")
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def max_pool_padded(x, window, strides=None, padding=0, ceil_mode: bool = False):
    """Max pooling with PyTorch's ``MaxPool2d(window, strides, padding, ceil_mode)`` semantics:
    -inf padding ``padding`` on each side, plus the ceil-mode overhang at the bottom/right."""
    (kh, kw) = _pair(window, "window")
    (sh, sw) = _pair(strides if strides is not None else window, "strides")
    (ph, pw) = _pair(padding, "padding")
    pads = []
    for axis, (size, k, s, p) in enumerate(((x.shape[1], kh, sh, ph), (x.shape[2], kw, sw, pw))):
        out = pool_output_size(size, k, s, p, ceil_mode)
        high = (out - 1) * s + k - size - p
        if high < 0:   # trailing rows no window reaches: drop them (a negative pad has no VJP)
            x = lax.slice_in_dim(x, 0, size + high, axis=axis + 1)
            high = 0
        pads.append((p, high))
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, kh, kw, 1), (1, sh, sw, 1),
                             [(0, 0), pads[0], pads[1], (0, 0)])


def adaptive_pool_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) matrix whose row i averages inputs [floor(i size / out),
    ceil((i + 1) size / out)) (PyTorch's AdaptiveAvgPool)."""
    a = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        a[i, start:end] = 1.0 / (end - start)
    return a


def adaptive_avg_pool(x, output_size):
    """``nn.AdaptiveAvgPool2d(output_size)`` on NHWC input (module docstring); an identity when
    the input already has that size, a reshape + mean when the sizes divide."""
    oh, ow = _pair(output_size, "output_size")
    n, h, w, c = x.shape
    if min(oh, ow) < 1:
        raise ValueError(f"output_size must be positive, got {output_size!r}")
    if h % oh == 0 and w % ow == 0:
        return x.reshape(n, oh, h // oh, ow, w // ow, c).mean(axis=(2, 4))
    ah = jnp.asarray(adaptive_pool_matrix(h, oh), x.dtype)
    aw = jnp.asarray(adaptive_pool_matrix(w, ow), x.dtype)
    return jnp.einsum("ih,jw,nhwc->nijc", ah, aw, x)


def lp_pool(x, p: float, window, strides=None, padding: str = "VALID"):
    """Lp pooling y = (mean_{i in W} |x_i|^p)^(1/p) over NHWC windows (module docstring);
    ``padding`` 'VALID' or 'SAME' (zeros, counted in the mean)."""
    if not p >= 1 or math.isinf(p):
        raise ValueError(f"p must be a finite number >= 1, got {p}")
    (kh, kw) = _pair(window, "window")
    (sh, sw) = _pair(strides if strides is not None else window, "strides")
    n, h, w, c = x.shape
    # patches (N, H', W', C * kh * kw), channel-major: each window's |x| values side by side
    patches = lax.conv_general_dilated_patches(
        jnp.abs(x), (kh, kw), (sh, sw), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    patches = patches.reshape(patches.shape[:3] + (c, kh * kw))
    m = lax.stop_gradient(jnp.max(patches, axis=-1, keepdims=True))
    safe = jnp.where(m > 0, m, 1.0)
    y = safe[..., 0] * jnp.mean((patches / safe) ** p, axis=-1) ** (1.0 / p)
    return jnp.where(m[..., 0] > 0, y, 0.0)


POOLS = ("max", "avg", "lp")


def pool2d(x, kind: str, window: Sequence[int], strides: Sequence[int] | None = None,
           p: float = 2.0):
    """'VALID' pooling of a named kind: 'max', 'avg' or 'lp' (Lp pooling with exponent p)."""
    if kind == "max":
        return max_pool(x, window, strides)
    if kind == "avg":
        return avg_pool(x, window, strides)
    if kind == "lp":
        return lp_pool(x, p, window, strides)
    raise ValueError(f"pool must be one of {POOLS}, got {kind!r}")


__all__ = ["POOLS", "adaptive_avg_pool", "adaptive_pool_matrix", "lp_pool", "max_pool_padded",
           "pool2d", "pool_output_size"]
