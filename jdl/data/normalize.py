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
