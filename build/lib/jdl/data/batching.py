"""Deterministic shuffling and batching from a seed.

Epoch ``e`` of a run with seed ``s`` visits the examples in the order
``numpy.random.default_rng([s, e]).permutation(N)``: the order depends only on (s, e, N), so a
run resumed at any step sees exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import numpy as np


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    check_batch_size(batch_size, n)
    return n // batch_size if drop_remainder else -(-n // batch_size)


def check_batch_size(batch_size: int, n: int | None = None) -> None:
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    if n is not None and batch_size > n:
        raise ValueError(f"batch size {batch_size} is larger than the data set ({n} examples)")


def batch_indices(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True,
                  drop_remainder: bool = True) -> np.ndarray:
    """Index array (num_batches, batch_size) for one epoch; the last partial batch is dropped."""
    nb = num_batches(n, batch_size, drop_remainder=True)
    order = epoch_permutation(n, seed, epoch) if shuffle else np.arange(n)
    return order[: nb * batch_size].reshape(nb, batch_size)


def padded_batches(n: int, batch_size: int):
    """Yield (indices, mask) covering all n examples in order with fixed-size batches: the last
    batch is padded by repeating index 0 and masked out, so evaluation compiles once."""
    check_batch_size(batch_size)
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        mask = np.ones(batch_size, np.float32)
        if len(idx) < batch_size:
            mask[len(idx):] = 0.0
            idx = np.concatenate([idx, np.zeros(batch_size - len(idx), idx.dtype)])
        yield idx, mask
