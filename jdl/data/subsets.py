"""Class subsets and few-label samples, for transfer learning (the lecture's 'using only a SMALL
training set'): pretrain on some classes, then learn OTHER classes from k labelled images each.

- ``class_subset(x, y, classes)``: the examples whose label is in ``classes``, relabelled
  ``classes[i] -> i`` (e.g. Fashion-MNIST's 5..9 -> 0..4), in the data's original order.
- ``per_class_sample(y, k, seed)``: indices of k examples of each class, drawn without
  replacement by a seeded generator (the same on every machine), sorted by class then drawn order.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def class_subset(x, y, classes: Sequence[int]):
    """(x[m], relabel(y[m])) for the mask m = y in ``classes``; relabel(classes[i]) = i."""
    classes = [int(c) for c in classes]
    if not classes:
        raise ValueError("classes must name at least one class, got an empty sequence")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {classes}")
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    missing = [c for c in classes if not np.any(y == c)]
    if missing:
        raise ValueError(f"classes {missing} have no examples in y (labels present: "
                         f"{sorted(np.unique(y).tolist())})")
    lookup = np.full(max(int(y.max()), max(classes)) + 1, -1, np.int32)
    lookup[classes] = np.arange(len(classes), dtype=np.int32)
    mask = np.isin(y, classes)
    return x[mask], lookup[y[mask]]


def per_class_sample(y, k: int, seed: int, num_classes: int | None = None,
                     exclude=None) -> np.ndarray:
    """Indices of ``k`` examples of each class 0..num_classes-1 (default: max(y) + 1), drawn
    without replacement with ``np.random.default_rng(seed)``; ``exclude`` (indices) are never
    drawn, e.g. a validation set. Raises ValueError naming the class that has fewer than k."""
    if k <= 0:
        raise ValueError(f"k (examples per class) must be a positive integer, got {k}")
    y = np.asarray(y)
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    allowed = np.ones(len(y), bool)
    if exclude is not None:
        allowed[np.asarray(exclude, np.int64)] = False
    rng = np.random.default_rng(seed)
    out = []
    for c in range(num_classes):
        pool = np.flatnonzero((y == c) & allowed)
        if len(pool) < k:
            raise ValueError(f"class {c} has {len(pool)} examples available, fewer than k={k}")
        out.append(rng.choice(pool, k, replace=False))
    return np.concatenate(out)
