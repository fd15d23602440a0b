"""scikit-learn's 8x8 handwritten digits (1,797 images, UCI optical recognition set).

Ships inside scikit-learn, so it needs no download: the quickstart's data set.
"""
from __future__ import annotations

import numpy as np

from jdl.data.fashion_mnist import Split
from jdl.data.split import train_val_split


def load(split: str = "train", test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Images (N, 8, 8, 1) as uint8 in 0..16 and int32 labels; a fixed, seeded train/test split."""
    from jdl.extras import require

    d = require("sklearn.datasets", "the digits data set").load_digits()
    x = d.images.astype(np.uint8)[..., None]
    y = d.target.astype(np.int32)
    (xtr, ytr), (xte, yte) = train_val_split(x, y, test_fraction, seed=seed)
    if split == "train":
        return Split(xtr, ytr)
    if split == "test":
        return Split(xte, yte)
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
