"""Scoring a clustering against class labels: normalised mutual information and purity (for
the lecture's "clustering with learnt codes": k-means on autoencoder or DBN codes against
clustering in input space or on PCA codes).

With N examples, classes c (``labels``) and clusters k (``clusters``), the contingency table
n_ck = #{examples of class c in cluster k}, a_c = sum_k n_ck, b_k = sum_c n_ck:

    I(C; K) = sum_ck (n_ck / N) log(N n_ck / (a_c b_k))            (mutual information, nats)
    H(C)    = -sum_c (a_c / N) log(a_c / N),  H(K) likewise
    NMI     = I(C; K) / ((H(C) + H(K)) / 2)                          (Strehl & Ghosh 2002's
              normalisation by the arithmetic mean, scikit-learn's default; 1 when both
              partitions are trivial)
    purity  = (1 / N) sum_k max_c n_ck                               (Manning, Raghavan &
              Schuetze 2008, section 16.3)

NMI is 1 for identical partitions (up to renaming) and ~0 for independent ones; purity rewards
many small clusters (it is 1 with one cluster per example), so read it with NMI and at a fixed
number of clusters. Labels are integers 0..n-1 (``num_classes`` / ``num_clusters`` static sizes,
for jit) or, without sizes, any integers (relabelled on the host).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def contingency(labels, clusters, num_classes: int | None = None,
                num_clusters: int | None = None):
    """n_ck, shape (num_classes, num_clusters). Without sizes, the labels and clusters are first
    relabelled 0..n-1 in sorted order (np.unique; not traceable)."""
    labels, clusters = _relabel(labels, num_classes), _relabel(clusters, num_clusters)
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise ValueError(f"labels and clusters must be 1-D of one length, got {labels.shape} "
                         f"and {clusters.shape}")
    n_c = num_classes if num_classes is not None else int(labels.max()) + 1
    n_k = num_clusters if num_clusters is not None else int(clusters.max()) + 1
    return jnp.zeros((n_c, n_k), jnp.float32).at[labels, clusters].add(1.0)


def _relabel(x, size):
    if size is not None:
        return jnp.asarray(x)
    return jnp.asarray(np.unique(np.asarray(x), return_inverse=True)[1].reshape(-1))


def _entropy(counts, n):
    p = counts / n
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))


def normalized_mutual_info(labels, clusters, num_classes: int | None = None,
                           num_clusters: int | None = None):
    """NMI(C; K) = I(C; K) / ((H(C) + H(K)) / 2), arithmetic normalisation (as scikit-learn's
    normalized_mutual_info_score); 1 when both partitions have a single part."""
    table = contingency(labels, clusters, num_classes, num_clusters)
    n = jnp.sum(table)
    a, b = jnp.sum(table, axis=1), jnp.sum(table, axis=0)
    outer = a[:, None] * b[None, :]
    nz = table > 0
    mi = jnp.sum(jnp.where(nz, table / n * jnp.log(jnp.where(nz, n * table, 1.0)
                                                    / jnp.where(nz, outer, 1.0)), 0.0))
    h = 0.5 * (_entropy(a, n) + _entropy(b, n))
    return jnp.where(h > 0, jnp.maximum(mi, 0.0) / jnp.where(h > 0, h, 1.0), 1.0)


def purity(labels, clusters, num_classes: int | None = None, num_clusters: int | None = None):
    """(1/N) sum_k max_c n_ck: the fraction of examples in their cluster's majority class."""
    table = contingency(labels, clusters, num_classes, num_clusters)
    return jnp.sum(jnp.max(table, axis=0)) / jnp.sum(table)
