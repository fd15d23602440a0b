"""Using the codes of deep autoencoders (the lecture's slide "Use of deep autoencoders": data
compression / dimension reduction, information retrieval, noise removal, manifold learning),
with the measures that go with them.

- Compression: :func:`encode_dataset` / :func:`reconstruct_dataset` apply a trained model in
  chunks; :func:`reconstruction_error` is the mean over examples of sum_i (z_i - x_i)^2, and
  :func:`compression_ratio` the ratio d / k of input to code size (Hinton & Salakhutdinov
  2006 compress 784-pixel images into 30 real numbers).
- Retrieval in code space (Hinton & Salakhutdinov 2006, document retrieval; Krizhevsky &
  Hinton 2011): :func:`nearest_neighbors` finds the k closest database codes of each query
  (Euclidean), :func:`precision_at_k` the fraction of the k retrieved items that share the
  query's label, averaged over the queries.
- :func:`knn_classify` / :func:`knn_accuracy`: the k-nearest-neighbour classifier in code
  space (majority vote, ties to the smallest label, as scikit-learn's KNeighborsClassifier).
- Noise removal: :func:`psnr`, the peak signal-to-noise ratio
  PSNR = 10 log10(MAX^2 / MSE), MSE the mean over pixels of (x - y)^2.

Neighbour searches compute squared distances ||q||^2 - 2 q.x + ||x||^2 for ``chunk_size``
queries at a time against the whole database (``jax.lax.map`` with a batch size), so memory is
chunk_size x N, not Q x N: 10,000 x 10,000 distances take 40 MB per 1,000-query chunk. They are
pure JAX functions (jit/vmap-able; ``k`` and ``chunk_size`` static).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


# ----------------------------------------------------------------------------- compression


def _float(a):
    a = jnp.asarray(a)
    return a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(jnp.float32)


def apply_in_batches(fn: Callable, x, batch_size: int = 1000):
    """fn applied to consecutive slices of ``x`` (host loop, one jit compilation for the full
    slices and at most one for the remainder), results concatenated. For whole data sets that
    do not fit one call."""
    x = jnp.asarray(x)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    jitted = jax.jit(fn)
    outs = [jitted(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    return jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *outs)


def encode_dataset(model, params, x, batch_size: int = 1000, model_state=None):
    """Codes f(x) of every example of ``x`` (the model's ``encode`` method), chunked."""
    variables = {"params": params, **(model_state or {})}
    return apply_in_batches(lambda xb: model.apply(variables, xb, method="encode"), x,
                            batch_size)


def reconstruct_dataset(model, params, x, batch_size: int = 1000, model_state=None):
    """Reconstructions g(f(x)) shaped like ``x`` (an Autoencoder's first output), chunked."""
    variables = {"params": params, **(model_state or {})}
    return apply_in_batches(lambda xb: model.apply(variables, xb)[0], x, batch_size)


def reconstruction_error(x, reconstruction):
    """Mean over examples of sum_i (z_i - x_i)^2 (the lecture's loss, per example)."""
    x, z = jnp.asarray(x), jnp.asarray(reconstruction)
    diff = jnp.reshape(z, (z.shape[0], -1)) - jnp.reshape(x, (x.shape[0], -1)).astype(z.dtype)
    return jnp.mean(jnp.sum(jnp.square(diff), axis=-1))


def compression_ratio(n_features: int, code_size: int) -> float:
    """d / k: how many input numbers each code number stands for."""
    return float(n_features) / float(code_size)


def psnr(reference, estimate, max_value: float = 1.0, per_example: bool = False):
    """Peak signal-to-noise ratio in dB, 10 log10(max_value^2 / MSE).

    MSE is the mean of (reference - estimate)^2 over all entries (a scalar), or with
    ``per_example`` over each example's entries (shape (N,)). Infinite for MSE = 0."""
    r, e = _float(reference), _float(estimate)
    sq = jnp.square(r - e.astype(r.dtype))
    mse = jnp.mean(jnp.reshape(sq, (sq.shape[0], -1)), axis=-1) if per_example else jnp.mean(sq)
    return 10.0 * jnp.log10(jnp.asarray(max_value, r.dtype) ** 2 / mse)


# ------------------------------------------------------------------------------- retrieval


def _flat(a):
    a = _float(a)
    return jnp.reshape(a, (a.shape[0], -1))


def squared_distances(queries, database):
    """||q - x||^2 for every pair, (Q, d) x (N, d) -> (Q, N), clipped at 0."""
    q, x = _flat(queries), _flat(database)
    d = (jnp.sum(jnp.square(q), -1)[:, None] - 2.0 * q @ x.T
         + jnp.sum(jnp.square(x), -1)[None, :])
    return jnp.maximum(d, 0.0)


def nearest_neighbors(queries, database, k: int, chunk_size: int = 1000,
                      exclude_self: bool = False):
    """Indices (Q, k) and squared distances (Q, k) of the ``k`` database items nearest to each
    query (Euclidean), nearest first. With ``exclude_self`` the queries are database items
    (query n is database item n; Q = N) and each is left out of its own neighbours
    (leave-one-out retrieval). Computed ``chunk_size`` queries at a time."""
    q, x = _flat(queries), _flat(database)
    n = x.shape[0]
    if not 0 < k <= n - int(exclude_self):
        raise ValueError(f"k must be in [1, {n - int(exclude_self)}], got {k}")
    if exclude_self and q.shape[0] != n:
        raise ValueError(f"exclude_self needs the queries to be the database ({n} items), "
                         f"got {q.shape[0]} queries")
    x_sq = jnp.sum(jnp.square(x), -1)

    def one(args):
        qi, i = args
        d = jnp.maximum(jnp.sum(jnp.square(qi)) - 2.0 * (x @ qi) + x_sq, 0.0)
        if exclude_self:
            d = d.at[i].set(jnp.inf)
        neg, idx = jax.lax.top_k(-d, k)
        return idx, -neg

    return jax.lax.map(one, (q, jnp.arange(q.shape[0])), batch_size=min(chunk_size, q.shape[0]))


def precision_at_k(codes, labels, k: int | Sequence[int], queries=None, query_labels=None,
                   chunk_size: int = 1000, per_query: bool = False):
    """Retrieval precision: for each query, the fraction of its k nearest database codes that
    carry its label, averaged over the queries.

    Without ``queries`` every database item is a query and is excluded from its own
    neighbours (leave-one-out). ``k`` an int gives a scalar; a sequence of ints gives one
    precision per k (one search, for the largest k). ``per_query`` returns the (Q,) or
    (len(k), Q) values instead of their mean."""
    ks = [int(k)] if np.ndim(k) == 0 else [int(v) for v in k]
    labels = jnp.asarray(labels)
    if queries is None:
        idx, _ = nearest_neighbors(codes, codes, max(ks), chunk_size, exclude_self=True)
        query_labels = labels
    else:
        if query_labels is None:
            raise ValueError("query_labels are needed with queries")
        idx, _ = nearest_neighbors(queries, codes, max(ks), chunk_size)
        query_labels = jnp.asarray(query_labels)
    hits = (labels[idx] == query_labels[:, None]).astype(jnp.float32)     # (Q, kmax)
    cumulative = jnp.cumsum(hits, axis=1)
    out = jnp.stack([cumulative[:, v - 1] / v for v in ks])               # (len(ks), Q)
    if not per_query:
        out = jnp.mean(out, axis=1)
    return out[0] if np.ndim(k) == 0 else out


def knn_classify(train_codes, train_labels, test_codes, k: int, num_classes: int,
                 chunk_size: int = 1000):
    """Majority vote of the k nearest training codes (uniform weights); ties go to the
    smallest label. Returns int32 labels (Q,)."""
    idx, _ = nearest_neighbors(test_codes, train_codes, k, chunk_size)
    votes = jax.nn.one_hot(jnp.asarray(train_labels)[idx], num_classes, dtype=jnp.int32)
    return jnp.argmax(jnp.sum(votes, axis=1), axis=-1).astype(jnp.int32)


def knn_accuracy(train_codes, train_labels, test_codes, test_labels, k: int,
                 num_classes: int, chunk_size: int = 1000):
    """Accuracy of :func:`knn_classify` on (test_codes, test_labels)."""
    pred = knn_classify(train_codes, train_labels, test_codes, k, num_classes, chunk_size)
    return jnp.mean((pred == jnp.asarray(test_labels)).astype(jnp.float32))
