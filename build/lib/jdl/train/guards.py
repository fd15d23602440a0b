"""Checks on data and batches that fail early with a message naming what was expected and what came.

Jitted code cannot raise on values, so these run on the host before training starts: a wrong
shape or dtype, or an out-of-range label, is refused before the first step, not discovered as a
cryptic XLA error (or worse, a silently clamped gather) later.
"""
from __future__ import annotations

import chex
import jax
import numpy as np


class DataError(ValueError):
    """Input data of the wrong shape, dtype or range."""


def tree_spec(tree) -> dict:
    """``{path: (shape, dtype name)}`` for every leaf of a pytree: two trees with equal specs
    have the same structure, shapes and dtypes (used to check restored checkpoints and
    user-given initial parameters against the model's)."""
    return {jax.tree_util.keystr(k): (tuple(getattr(v, "shape", ())),
                                      str(getattr(v, "dtype", type(v).__name__)))
            for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def spec_of(data: dict) -> dict:
    """{key: (per-example shape, dtype)} of a dict of arrays with a common leading dimension."""
    return {k: (tuple(np.shape(v)[1:]), np.asarray(v).dtype if not hasattr(v, "dtype") else v.dtype)
            for k, v in data.items()}


def check_dataset(data: dict, name: str = "data", expected: dict | None = None) -> int:
    """All arrays share one leading dimension (returned); shapes/dtypes match ``expected``."""
    if not isinstance(data, dict) or not data:
        raise DataError(f"{name} must be a non-empty dict of arrays, got {type(data).__name__}")
    sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in data.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise DataError(f"{name}: arrays must share their first (example) dimension, got {sizes}")
    if expected is not None:
        got = spec_of(data)
        if set(got) != set(expected):
            raise DataError(f"{name}: expected keys {sorted(expected)}, got {sorted(got)}")
        for k in expected:
            (es, ed), (gs, gd) = expected[k], got[k]
            if es != gs:
                raise DataError(f"{name}[{k!r}]: expected per-example shape {es}, got {gs}")
            if np.dtype(ed) != np.dtype(gd):
                raise DataError(f"{name}[{k!r}]: expected dtype {np.dtype(ed)}, got {np.dtype(gd)}")
    return next(iter(sizes.values()))


def check_inputs(x, shape: tuple, name: str = "x") -> None:
    """Per-example shape must equal ``shape`` and the dtype be floating."""
    if tuple(np.shape(x)[1:]) != tuple(shape):
        raise DataError(f"{name}: expected inputs of shape (N, {', '.join(map(str, shape))}), "
                        f"got {tuple(np.shape(x))}")
    if not np.issubdtype(np.asarray(x[:1]).dtype, np.floating):
        raise DataError(f"{name}: expected floating-point inputs (normalise them first), "
                        f"got dtype {np.asarray(x[:1]).dtype}")


def check_labels(y, num_classes: int, name: str = "y") -> None:
    """Integer labels of rank 1 in [0, num_classes)."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: expected integer class labels of shape (N,), got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{name}: labels must lie in [0, {num_classes}), got range "
                        f"[{int(y.min())}, {int(y.max())}]")


def assert_batch(batch: dict, spec: dict) -> None:
    """chex-checked batch against {key: (per-example shape, dtype)}; usable inside jit (static)."""
    for k, (shape, dtype) in spec.items():
        if k not in batch:
            raise DataError(f"batch is missing {k!r}; expected keys {sorted(spec)}")
        try:
            chex.assert_shape(batch[k], (None, *shape))
            chex.assert_type(batch[k], dtype)
        except AssertionError as e:
            raise DataError(f"batch[{k!r}]: {e}") from None
