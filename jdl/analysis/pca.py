"""Principal component analysis, the linear baseline of the lecture's autoencoders ("a linear
autoencoder with k hidden units learns the span of the first k principal components"; Bourlard
& Kamp 1988; Hinton & Salakhutdinov 2006 compare their deep autoencoder with PCA).

For training rows x_1 .. x_N in R^d, the mean m = (1/N) sum_n x_n and the covariance

    C = (1 / (N - 1)) sum_n (x_n - m)(x_n - m)^T = U diag(lambda) U^T,   lambda_1 >= ... >= lambda_d,

the code of x on the first k principal axes (the rows u_1 .. u_k of ``components``) and its
reconstruction, the orthogonal projection onto the affine subspace m + span(u_1 .. u_k):

    encode(x, k) = U_k (x - m),          reconstruct(x, k) = m + U_k^T U_k (x - m),

which minimises the summed squared reconstruction error over all rank-k affine maps
(Eckart & Young 1936). Computed in float64 on the host (numpy's eigh), as a baseline for
the figures of experiments/ae_fashion.py.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class PCA:
    """PCA fitted on a training set: its mean (d,) and the eigenvectors of the covariance
    matrix as rows (d, d), by decreasing eigenvalue (``variances``, the lambda_i)."""
    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray

    def _check(self, n_components: int) -> int:
        d = len(self.mean)
        if not 0 <= int(n_components) <= d:
            raise ValueError(f"n_components must be in [0, {d}], got {n_components}")
        return int(n_components)

    def encode(self, x, n_components: int) -> np.ndarray:
        """U_k (x - m): coordinates of x - mean on the first ``n_components`` principal axes
        (rows of ``x`` flattened per example), float64 (N, k)."""
        k = self._check(n_components)
        x = np.asarray(x, np.float64)
        return (x.reshape(len(x), -1) - self.mean) @ self.components[:k].T

    def reconstruct(self, x, n_components: int) -> np.ndarray:
        """m + U_k^T U_k (x - m): the projection of x onto the affine subspace
        mean + span(first n_components axes), float64 (N, d)."""
        k = self._check(n_components)
        return self.encode(x, k) @ self.components[:k] + self.mean

    def explained_variance_ratio(self, n_components: int) -> float:
        """sum_{i <= k} lambda_i / sum_i lambda_i."""
        k = self._check(n_components)
        total = float(np.sum(self.variances))
        return float(np.sum(self.variances[:k])) / total if total > 0 else 1.0


def fit_pca(x) -> PCA:
    """PCA of the rows of ``x`` (N, d; higher-rank inputs are flattened per example) by the
    eigendecomposition of their covariance matrix (float64). The eigenvectors' signs are fixed
    so that each one's largest-magnitude component is positive."""
    x = np.asarray(x, np.float64)
    if x.ndim < 2 or len(x) < 2:
        raise ValueError(f"fit_pca needs x of shape (N >= 2, d), got {x.shape}")
    x = x.reshape(len(x), -1)
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / (len(x) - 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order].T
    sign = np.sign(vectors[np.arange(len(vectors)), np.argmax(np.abs(vectors), axis=1)])
    return PCA(mean=mean, components=vectors * sign[:, None],
               variances=np.maximum(values, 0.0))
