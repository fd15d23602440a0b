"""Rotated images and their angle: a regression target that no classifier was trained on (the
lecture's transfer-learning examples 'precise localisation (position, bearing): PoseNet', Kendall,
Grimes & Cipolla 2015), on the data we have.

We regress the in-plane rotation (the bearing) of a Fashion-MNIST item rather than its position
on a larger canvas: the items are photographed upright, so the angle is well defined for every
class, and reading it needs the item's shape (a sleeve, a heel, a strap), which a classifier's
features carry; a position is found by any translation-equivariant filter, so it tests transfer
less.

``rotate(images, degrees)`` turns each image counter-clockwise (as displayed, rows down) by its
angle about the centre c = ((H - 1) / 2, (W - 1) / 2), by inverse mapping with bilinear
interpolation: output(i, j) = input(c_i + di cos t + dj sin t, c_j + dj cos t - di sin t), with
(di, dj) = (i - c_i, j - c_j), and 0 outside the input, as
scipy.ndimage.rotate(x, t, reshape=False, order=1, mode='grid-constant') computes. Pure and
jittable; ``rotated_items`` draws the angles t ~ U(-max_degrees, max_degrees) from an explicit key.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

from jdl.losses import mean_absolute_error


def _rotate_one(image, degrees):
    h, w = image.shape[:2]
    t = jnp.deg2rad(degrees)
    ci, cj = (h - 1) / 2.0, (w - 1) / 2.0
    di, dj = jnp.meshgrid(jnp.arange(h) - ci, jnp.arange(w) - cj, indexing="ij")
    src = (ci + di * jnp.cos(t) + dj * jnp.sin(t), cj + dj * jnp.cos(t) - di * jnp.sin(t))
    chan = lambda c: map_coordinates(c, src, order=1, mode="constant", cval=0.0)  # noqa: E731
    return jax.vmap(chan, in_axes=-1, out_axes=-1)(image)


def rotate(images, degrees):
    """Images (N, H, W, C) (or one (H, W, C)) turned by ``degrees`` (N,) (or a scalar)
    counter-clockwise about their centre, bilinear, zero outside; float32."""
    images = jnp.asarray(images, jnp.float32)
    degrees = jnp.asarray(degrees, jnp.float32)
    if images.ndim == 3:
        return _rotate_one(images, degrees)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) or (H, W, C), got shape {images.shape}")
    degrees = jnp.broadcast_to(degrees, images.shape[:1])
    return jax.vmap(_rotate_one)(images, degrees)


def rotated_items(images, key, max_degrees: float = 45.0):
    """(rotate(images, t), t) with t ~ U(-max_degrees, max_degrees) drawn from ``key``, one angle
    per image, in degrees (float32, shape (N,))."""
    if not 0 < max_degrees <= 180:
        raise ValueError(f"max_degrees must be in (0, 180], got {max_degrees}")
    t = jax.random.uniform(key, (len(images),), jnp.float32, -max_degrees, max_degrees)
    return rotate(images, t), t


def angle_metrics(degrees_per_unit: float):
    """metrics(outputs, batch, mask) for jdl.train.backprop/evaluate_fn when the model predicts
    the angle divided by ``degrees_per_unit`` (targets batch['y'] of shape (N, 1) in the same
    unit): {'mae_degrees': mean |output - target| * degrees_per_unit}, the error in degrees."""
    def metrics(outputs, batch, mask=None):
        return {"mae_degrees": degrees_per_unit * mean_absolute_error(outputs, batch["y"], mask)}
    return metrics
