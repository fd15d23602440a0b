"""k-means clustering (Lloyd 1982, "Least squares quantization in PCM", IEEE Trans. Inf.
Theory 28) with k-means++ seeding (Arthur & Vassilvitskii 2007), for the lecture's
"clustering with learnt codes": k-means on pixels, on PCA codes and on autoencoder or DBN codes,
scored against the labels with jdl.analysis.clustering.

Given points x_1 .. x_N and k centres mu_1 .. mu_k, k-means minimises the inertia

    J = sum_n min_j ||x_n - mu_j||^2

by Lloyd's alternation, each step of which cannot increase J:

    assign:  a_n = argmin_j ||x_n - mu_j||^2,
    update:  mu_j = mean {x_n : a_n = j}   (a centre with no point keeps its place),

until no centre moves by more than ``tol`` (squared distance) or ``max_iter`` steps. Seeding
(k-means++): mu_1 is a uniformly drawn point, then mu_j is point n drawn with probability
proportional to D(x_n)^2, its squared distance to the nearest centre chosen so far. ``n_init``
seedings run (vmapped), and the one with the smallest final inertia is returned. Pure: the
rng key is explicit; jit-compatible with static k, n_init and max_iter.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp


class KMeansResult(NamedTuple):
    centers: jax.Array       # (k, d)
    assignments: jax.Array   # (N,) int32, the nearest centre of each point
    inertia: jax.Array       # sum_n min_j ||x_n - mu_j||^2
    iterations: jax.Array    # Lloyd steps taken by the returned run


def _sq_dist(x, centers):
    d = (jnp.sum(x * x, -1)[:, None] - 2.0 * x @ centers.T
         + jnp.sum(centers * centers, -1)[None, :])
    return jnp.maximum(d, 0.0)


def kmeans_plus_plus(x, k: int, rng):
    """k initial centres (k, d) drawn by k-means++ seeding (Arthur & Vassilvitskii 2007)."""
    x = jnp.asarray(x)
    n = x.shape[0]
    first = x[jax.random.randint(jax.random.fold_in(rng, 0), (), 0, n)]
    centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
    d2 = jnp.sum(jnp.square(x - first), -1)

    def body(j, carry):
        centers, d2 = carry
        p = jnp.where(jnp.sum(d2) > 0, d2, 1.0)
        idx = jax.random.categorical(jax.random.fold_in(rng, j), jnp.log(p))
        c = x[idx]
        return centers.at[j].set(c), jnp.minimum(d2, jnp.sum(jnp.square(x - c), -1))

    centers, _ = jax.lax.fori_loop(1, k, body, (centers, d2))
    return centers


def lloyd(x, centers, max_iter: int = 300, tol: float = 1e-8) -> KMeansResult:
    """Lloyd's iterations from ``centers`` (see the module docstring)."""
    x, centers = jnp.asarray(x), jnp.asarray(centers)
    k = centers.shape[0]

    def step(c):
        a = jnp.argmin(_sq_dist(x, c), axis=1)
        onehot = jax.nn.one_hot(a, k, dtype=x.dtype)
        counts = jnp.sum(onehot, 0)
        sums = onehot.T @ x
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], c)

    def cond(carry):
        _, shift, it = carry
        return (it < max_iter) & (shift > tol)

    def body(carry):
        c, _, it = carry
        new = step(c)
        return new, jnp.max(jnp.sum(jnp.square(new - c), -1)), it + 1

    c, _, it = jax.lax.while_loop(cond, body, (centers, jnp.asarray(jnp.inf, x.dtype),
                                               jnp.asarray(0, jnp.int32)))
    d = _sq_dist(x, c)
    a = jnp.argmin(d, axis=1).astype(jnp.int32)
    return KMeansResult(c, a, jnp.sum(jnp.min(d, axis=1)), it)


@functools.partial(jax.jit, static_argnames=("k", "n_init", "max_iter"))
def _kmeans(x, rng, k, n_init, max_iter, tol):
    def one(key):
        return lloyd(x, kmeans_plus_plus(x, k, key), max_iter, tol)

    runs = jax.vmap(one)(jax.random.split(rng, n_init))
    best = jnp.argmin(runs.inertia)
    return jax.tree.map(lambda a: a[best], runs)


def kmeans(x, k: int, rng, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-8) -> KMeansResult:
    """k-means of the rows of ``x`` (N, d; flattened per example), the best of ``n_init``
    k-means++ seedings by inertia. Returns a :class:`KMeansResult`."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    x = jnp.reshape(x, (x.shape[0], -1))
    if not 1 <= int(k) <= x.shape[0]:
        raise ValueError(f"k must be in [1, {x.shape[0]}] (the number of points), got {k}")
    if int(n_init) < 1 or int(max_iter) < 1:
        raise ValueError(f"n_init and max_iter must be >= 1, got {n_init} and {max_iter}")
    return _kmeans(x, rng, int(k), int(n_init), int(max_iter), tol)
