"""Curvature of a loss surface without forming the Hessian: saddle points (Dauphin et al. 2014).

The lecture: "saddle points dominate in high-Dim". Dauphin, Pascanu, Gulcehre, Cho, Ganguli &
Bengio (2014), 'Identifying and attacking the saddle point problem in high-dimensional non-convex
optimization', measure at a point w of the loss L the *index*

    alpha(w) = (number of negative eigenvalues of H) / n,      H = d^2 L / dw^2  (n x n),

and find (their figure 1, after Bray & Dean 2007) that the critical points of a network's loss
with a high loss have a large index (saddles), those with a low loss an index near 0 (minima):
"the index of critical points falls with the loss".

For n in the thousands or millions H is never formed here. Everything goes through the
Hessian-vector product, forward-over-reverse (Pearlmutter 1994; one jvp of the gradient, about
the cost of 2-3 gradients):

    H v = d/de grad L(w + e v) |_{e=0}        (:func:`hvp`, jax.jvp of jax.grad)

- extreme eigenvalues lambda_min, lambda_max: the extreme Ritz values of k Lanczos steps
  (jdl.analysis.lanczos, full reorthogonalisation), which converge to them first;
- the spectral density phi(t) = (1/n) sum_i delta(t - lambda_i) by *stochastic Lanczos
  quadrature* (SLQ; Golub & Meurant 1994, Ubaru, Chen & Saad 2017, applied to network Hessians
  by Ghorbani, Krishnan & Xiao 2019): for m Rademacher probes v_l / sqrt(n), k Lanczos steps
  from each give Ritz values theta_{l,i} and weights tau_{l,i}^2, and

      phi(t) ~= (1/m) sum_l sum_i tau_{l,i}^2 delta(t - theta_{l,i}),

  since E[v^T f(H) v] / n = tr f(H) / n for Rademacher v, each quadrature approximating
  v^T f(H) v / n (exact for polynomials of degree < 2k, and for all f when k = n);
- the index estimated from that density (:func:`index`): the weight below -threshold,

      alpha ~= (1/m) sum_l sum_i tau_{l,i}^2 [theta_{l,i} < -threshold].

  With k = n it is, for each probe, exactly v^T P_- v / n (P_- the projector on H's negative
  eigenspace), an unbiased estimate of alpha; for k < n the step function is integrated by a
  k-node quadrature, whose error shrinks as k grows (a Ritz value near 0 carries the weight of
  the eigenvalues around it). Its standard error over probes is reported with it. A network's
  Hessian has a large bulk of eigenvalues near 0 (Sagun et al. 2017), so ``threshold`` > 0
  separates clearly negative curvature from that bulk; state which one you use.

Parameters are any pytree (flattened by jax.flatten_util.ravel_pytree); the loss is a function
of the params only (close over a fixed batch: the Hessian of the full-batch loss).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jdl.analysis.lanczos import lanczos, ritz


def hvp(loss_fn: Callable, params, v):
    """H v for the Hessian H of ``loss_fn`` at ``params`` (v a pytree like params):
    jax.jvp(jax.grad(loss_fn), (params,), (v,)), forward-over-reverse."""
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def flat_hvp(loss_fn: Callable, params):
    """(matvec, n): the Hessian-vector product on flat vectors of the n parameters (the order of
    jax.flatten_util.ravel_pytree(params))."""
    flat, unravel = ravel_pytree(params)

    def matvec(v):
        return ravel_pytree(hvp(loss_fn, params, unravel(v.astype(flat.dtype))))[0]

    return matvec, flat.shape[0]


class HessianSpectrum(NamedTuple):
    """Ritz values (nodes) and Gauss-quadrature weights of m SLQ probes, shapes (m, k); the
    weights of each probe sum to 1. ``lambda_min`` / ``lambda_max``: the extreme Ritz values."""
    nodes: jax.Array
    weights: jax.Array
    lambda_min: jax.Array
    lambda_max: jax.Array


def hessian_spectrum(loss_fn: Callable, params, rng, k: int = 64,
                     num_probes: int = 1) -> HessianSpectrum:
    """The spectrum of loss_fn's Hessian at params by stochastic Lanczos quadrature: k Lanczos
    steps (full reorthogonalisation) from each of ``num_probes`` Rademacher vectors (drawn from
    ``rng``), the probes vmapped; k is capped at n. Jittable with loss_fn static."""
    if num_probes < 1 or k < 1:
        raise ValueError(f"hessian_spectrum needs k >= 1 and num_probes >= 1, got k={k}, "
                         f"num_probes={num_probes}")
    matvec, n = flat_hvp(loss_fn, params)
    dtype = ravel_pytree(params)[0].dtype
    k_probe, k_restart = jax.random.split(rng)
    probes = jax.random.rademacher(k_probe, (num_probes, n), dtype)
    run = jax.vmap(lambda v, r: lanczos(matvec, v, min(k, n), r))
    nodes, weights = ritz(run(probes, jax.random.split(k_restart, num_probes)))
    return HessianSpectrum(nodes, weights, jnp.min(nodes), jnp.max(nodes))


def extreme_eigenvalues(loss_fn: Callable, params, rng, k: int = 64):
    """(lambda_min, lambda_max) of loss_fn's Hessian at params: the extreme Ritz values of k
    Lanczos steps from one random start (exact to rounding when k = n)."""
    s = hessian_spectrum(loss_fn, params, rng, k, 1)
    return s.lambda_min, s.lambda_max


def index(spectrum: HessianSpectrum, threshold: float = 0.0):
    """(alpha, standard error): the SLQ estimate of the fraction of eigenvalues below
    -threshold, (1/m) sum_l sum_i tau_{l,i}^2 [theta_{l,i} < -threshold], and the standard error
    of that mean over the m probes (0 for one probe)."""
    if threshold < 0:
        raise ValueError(f"index threshold must be >= 0, got {threshold}")
    per_probe = jnp.sum(jnp.where(spectrum.nodes < -threshold, spectrum.weights, 0.0), axis=-1)
    m = per_probe.shape[0]
    se = jnp.std(per_probe, ddof=1) / jnp.sqrt(m) if m > 1 else jnp.zeros_like(per_probe[0])
    return jnp.mean(per_probe), se
