"""Scores of learnt codes and reconstructions on a whole data set (host-side figures of the
autoencoder experiments; the per-batch functions live in jdl.ae):

    summed_squared_error(x, z) = (1/N) sum_n sum_i (z_ni - x_ni)^2      (float64; the measure
                                   of Hinton & Salakhutdinov 2006's Table/Fig. 2 comparisons)
    code_scores(...)           = k-NN test accuracy (majority vote of the k nearest training
                                   codes, Euclidean) and retrieval precision@k (the fraction of a
                                   test query's k nearest training codes sharing its label,
                                   averaged over the queries), from jdl.ae's knn_accuracy and
                                   precision_at_k.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jdl import ae


def summed_squared_error(x, reconstruction) -> float:
    """Mean over examples of the summed squared error sum_i (z_i - x_i)^2, in float64 (inputs
    flattened per example; shapes must hold the same number of entries per example)."""
    x = np.asarray(x, np.float64)
    x = x.reshape(len(x), -1)
    z = np.asarray(reconstruction, np.float64).reshape(len(x), -1)
    if z.shape != x.shape:
        raise ValueError(f"reconstruction must match x ({x.shape} flattened), got {z.shape}")
    return float(np.mean(np.sum(np.square(z - x), axis=1)))


def code_scores(train_codes, train_labels, test_codes, test_labels, k: int = 10,
                precision_k: int = 10, num_classes: int = 10, chunk_size: int = 500) -> dict:
    """{'knn_accuracy', f'precision_at_{precision_k}'} of the test codes against the training
    codes (the reference set), as Python floats."""
    tr = jnp.asarray(train_codes, jnp.float32)
    te = jnp.asarray(test_codes, jnp.float32)
    acc = ae.knn_accuracy(tr, jnp.asarray(train_labels), te, jnp.asarray(test_labels), k,
                          num_classes, chunk_size=chunk_size)
    prec = ae.precision_at_k(tr, jnp.asarray(train_labels), precision_k, queries=te,
                             query_labels=jnp.asarray(test_labels), chunk_size=chunk_size)
    return {"knn_accuracy": float(acc), f"precision_at_{precision_k}": float(prec)}
