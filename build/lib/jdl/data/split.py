"""Validation splits: seeded (shuffled) or Keras-style (the last fraction, unshuffled)."""
from __future__ import annotations

import numpy as np


def train_val_split(x, y, fraction: float, seed: int | None = 0):
    """Split (x, y) into ((x_train, y_train), (x_val, y_val)) with ``round(fraction * N)`` held out.

    ``seed=None`` takes the last examples, as Keras' ``validation_split`` does; otherwise a
    permutation drawn from ``seed`` picks them, the same for the same seed on every machine.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x has {n} examples but y has {len(y)}")
    n_val = int(round(fraction * n))
    idx = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    tr, va = idx[: n - n_val], idx[n - n_val:]
    return (x[tr], y[tr]), (x[va], y[va])
