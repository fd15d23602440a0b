"""Data augmentation: random crops with padding and horizontal flips, drawn per example.

Random crop (Krizhevsky, Sutskever & Hinton 2012; with padding as in He et al. 2016, 'Deep
residual learning', CIFAR-10: pad 4, crop 32x32): example n of an NHWC batch is padded by
``pad`` pixels on each side of its height and width and cropped back to H x W at an offset
(a_n, b_n) drawn uniformly from {0, ..., 2 pad}^2,

    x'_n[i, j, c] = pad(x_n)[a_n + i, b_n + j, c],     0 <= i < H, 0 <= j < W,

i.e. the image is shifted by (pad - a_n, pad - b_n) pixels. Padding ``mode`` is one of jnp.pad's
'edge' (repeat the border pixels: the default, because on normalised data the background is not
0, and Fashion-MNIST's borders are background), 'constant' (zeros; on inputs normalised to zero
mean, the mean pixel) or 'reflect'.

Horizontal flip: x'_n[i, j, c] = x_n[i, W - 1 - j, c] with probability ``p`` (1/2), else x_n.

Randomness is per example: example n's draws come from ``fold_in(key, index_n)`` with
``index_n`` its GLOBAL index in the data set (``batch['index']``, which jdl.train.fit adds to
every batch), so the result does not depend on how a batch is split across devices or into
pieces. All functions are pure and work under jit and vmap.

:func:`augmented` plugs an augmentation into a gradient function: inside the compiled train
step, with a key derived from the step's rng (``fold_in(rng_t, AUGMENT_STREAM)``, rng_t =
fold_in(state.rng, step)), so a run resumed from a checkpoint draws exactly the augmentations
of the uninterrupted run, with no extra state to save.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jdl.parallel.axis import example_positions

PAD_MODES = ("edge", "constant", "reflect")
AUGMENT_STREAM = 0x61756721  # fold_in constant separating the augmentation key from dropout's


def _check_images(images, name="images"):
    if jnp.ndim(images) != 4:
        raise ValueError(f"{name} must be an NHWC batch (4 dimensions), got shape "
                         f"{jnp.shape(images)}")


def _example_keys(key, n: int, index=None):
    """fold_in(key, index_n) for each example; index defaults to the positions 0..n-1."""
    index = jnp.arange(n, dtype=jnp.int32) if index is None else jnp.asarray(index)
    if index.shape != (n,):
        raise ValueError(f"index must have shape ({n},) (one global index per example), got "
                         f"{index.shape}")
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)


def crop_offsets(key, n: int, pad: int, index=None) -> jax.Array:
    """The offsets (a_n, b_n), int32 [n, 2], each uniform on {0, ..., 2 pad}, that
    :func:`random_crop` draws for examples with global indices ``index``."""
    keys = _example_keys(key, n, index)
    return jax.vmap(lambda k: jax.random.randint(k, (2,), 0, 2 * pad + 1, jnp.int32))(keys)


def flip_draws(key, n: int, p: float = 0.5, index=None) -> jax.Array:
    """Booleans [n]: which examples :func:`random_flip` flips (each with probability p)."""
    keys = _example_keys(key, n, index)
    return jax.vmap(lambda k: jax.random.bernoulli(k, p))(keys)


def random_crop(key, images, pad: int, mode: str = "edge", index=None) -> jax.Array:
    """Pad each NHWC image by ``pad`` pixels (``mode``: see the module docstring) and crop it
    back to its size at a random offset (:func:`crop_offsets`)."""
    _check_images(images)
    if int(pad) != pad or pad < 0:
        raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")
    if pad == 0:
        return images
    n, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)
    offsets = crop_offsets(key, n, pad, index)
    crop = lambda x, o: lax.dynamic_slice(x, (o[0], o[1], 0), (h, w, c))  # noqa: E731
    return jax.vmap(crop)(padded, offsets)


def random_flip(key, images, p: float = 0.5, index=None) -> jax.Array:
    """Mirror each NHWC image left-right (its width axis) with probability ``p``."""
    _check_images(images)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    flip = flip_draws(key, images.shape[0], p, index)
    return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


def augment(key, images, pad: int = 2, flip: bool = True, mode: str = "edge",
            index=None) -> jax.Array:
    """Random crop with padding ``pad`` (key fold_in(key, 0)), then a random horizontal flip
    (key fold_in(key, 1)) when ``flip``; per-example draws from the global ``index``."""
    out = random_crop(jax.random.fold_in(key, 0), images, pad, mode, index)
    if flip:
        out = random_flip(jax.random.fold_in(key, 1), out, index=index)
    return out


def augmented(grad_fn: Callable, augment_fn: Callable, x_key: str = "x",
              index_key: str = "index") -> Callable:
    """Wrap ``grad_fn(params, model_state, batch, rng)`` to train on augmented inputs:

        key    = fold_in(rng, AUGMENT_STREAM)
        batch' = {**batch, x: augment_fn(key, batch[x], index=batch[index])}
        return grad_fn(params, model_state, batch', rng)

    ``augment_fn(key, images, index=...)`` is e.g. ``functools.partial(augment, pad=2)``. The
    index is the batch's global example indices (``batch[index_key]``, present in every batch of
    jdl.train.fit), else the examples' positions in the global batch. The augmentation thus
    runs inside the jitted step, keyed by the step's rng: a function of (state.rng, step, index),
    so resuming from a checkpoint reproduces the uninterrupted run."""
    def wrapped(params, model_state, batch, rng):
        x = batch[x_key]
        index = batch.get(index_key)
        if index is None:
            index = example_positions(x.shape[0])
        x = augment_fn(jax.random.fold_in(rng, AUGMENT_STREAM), x, index=index)
        return grad_fn(params, model_state, {**batch, x_key: x}, rng)

    return wrapped
