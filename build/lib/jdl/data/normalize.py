"""Input normalisation to zero mean and unit variance (LeCun et al. 1998, 'Efficient BackProp').

The statistics come from the training set only and are then applied to every split.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Normalizer(NamedTuple):
    mean: np.ndarray
    std: np.ndarray

    def __call__(self, x) -> np.ndarray:
        """x -> (x - mean) / std, as float32."""
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)


def fit_normalizer(x, per_feature: bool = False, eps: float = 1e-6) -> Normalizer:
    """Mean and standard deviation of ``x`` over examples (and over all features unless
    ``per_feature``); constant features get std 1 so they map to 0 instead of NaN."""
    x = np.asarray(x, np.float64)
    axes = 0 if per_feature else None
    mean = x.mean(axis=axes)
    std = x.std(axis=axes)
    std = np.where(std < eps, 1.0, std)
    return Normalizer(np.asarray(mean, np.float32), np.asarray(std, np.float32))


def binarize(images, threshold: float = 0.5) -> np.ndarray:
    """Binary pixels for Bernoulli-visible RBMs: 1 where intensity / 255 > ``threshold``
    (uint8 images) or value > ``threshold`` (floats in [0, 1]), as float32, one row per
    example (flattened). Salakhutdinov & Murray 2008 binarise MNIST the same way (stochastic
    binarisation is the other common choice)."""
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    return (x.reshape(x.shape[0], -1) > threshold).astype(np.float32)
