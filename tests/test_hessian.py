"""jdl.analysis: Hessian-vector products, Lanczos and the SLQ index against a dense Hessian
(jax.hessian) of a tiny MLP in float64."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jdl import analysis
from jdl.losses import cross_entropy
from jdl.nn import MLP


@pytest.fixture(autouse=True, scope="module")
def float64():
    """float64 for this module's tests only (restored afterwards)."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


@functools.lru_cache(maxsize=None)
def tiny_problem(hidden=(5,), n_in=4, n_out=3, n=24, seed=0):
    """A float64 MLP loss (cross-entropy on random data), params away from a minimum, and the
    eigenvalues of the dense Hessian there (ascending; rows of U their eigenvectors)."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(n, n_in)))
    y = jnp.asarray(rng.integers(0, n_out, n))
    model = MLP(hidden=hidden, num_outputs=n_out, activation="tanh")
    params = model.init(jax.random.PRNGKey(seed), x)["params"]
    params = jax.tree.map(lambda p: 2.0 * jnp.asarray(p, jnp.float64), params)

    def loss(p):
        return cross_entropy(model.apply({"params": p}, x), y)

    flat, unravel = ravel_pytree(params)
    H = np.asarray(jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat))
    lam, U = np.linalg.eigh(H)
    return loss, params, H, lam, U


# the softmax's invariance to a shift of all logits gives the Hessian exact zero eigenvalues
# (rounding gives them either sign): count negative eigenvalues below -ZERO
ZERO = 1e-8


def test_hvp_is_the_dense_hessian_times_v():
    loss, params, H, lam, U = tiny_problem()
    matvec, n = analysis.flat_hvp(loss, params)
    v = np.random.default_rng(1).normal(size=n)
    np.testing.assert_allclose(jax.jit(matvec)(jnp.asarray(v)), H @ v, rtol=1e-10, atol=1e-12)
    # the pytree form agrees with the flat one
    flat_v, unravel = ravel_pytree(params)
    Hv_tree = jax.jit(analysis.hvp, static_argnums=0)(loss, params, unravel(jnp.asarray(v)))
    np.testing.assert_allclose(ravel_pytree(Hv_tree)[0], H @ v, rtol=1e-10, atol=1e-12)


def test_lanczos_basis_is_orthonormal_and_tridiagonalises():
    loss, params, H, lam, U = tiny_problem()
    matvec, n = analysis.flat_hvp(loss, params)
    k = 15
    res = jax.jit(lambda v: analysis.lanczos(matvec, v, k))(jnp.ones(n))
    Q = np.asarray(res.basis)
    np.testing.assert_allclose(Q @ Q.T, np.eye(k), atol=1e-12)
    T = np.diag(res.alpha) + np.diag(res.beta, 1) + np.diag(res.beta, -1)
    np.testing.assert_allclose(Q @ H @ Q.T, T, atol=1e-10)
    np.testing.assert_allclose(Q[0], np.ones(n) / np.sqrt(n), atol=1e-14)


def test_full_lanczos_gives_every_eigenvalue_and_the_quadrature_is_exact():
    """k = n: the Ritz values are H's eigenvalues and sum_i tau_i^2 f(theta_i) = q^T f(H) q for
    the step function f = [t < 0] (the per-probe index)."""
    loss, params, H, lam, U = tiny_problem()
    assert lam[0] < -1e-3 and lam[-1] > 1e-3            # a saddle region: both signs
    matvec, n = analysis.flat_hvp(loss, params)
    q = np.random.default_rng(2).choice([-1.0, 1.0], n) / np.sqrt(n)
    theta, tau2 = analysis.ritz(jax.jit(lambda q: analysis.lanczos(matvec, q, n))(q))
    np.testing.assert_allclose(theta, lam, atol=1e-9 * np.abs(lam).max())
    np.testing.assert_allclose(np.sum(tau2), 1.0, rtol=1e-12)
    neg = lam < -ZERO
    np.testing.assert_allclose(np.sum(np.where(theta < -ZERO, tau2, 0.0)),
                               np.sum((U[:, neg].T @ q) ** 2), rtol=1e-8)


def test_extreme_eigenvalues_from_few_lanczos_steps():
    """k = 40 steps on n = 183 parameters: lambda_min and lambda_max to rtol 1e-4."""
    loss, params, H, lam, U = tiny_problem(hidden=(12, 6), n_in=6, n_out=3, n=40)
    assert lam.size == 183
    lo, hi = jax.jit(lambda p: analysis.extreme_eigenvalues(loss, p, jax.random.PRNGKey(0),
                                                             k=40))(params)
    np.testing.assert_allclose(float(hi), lam[-1], rtol=1e-4)
    np.testing.assert_allclose(float(lo), lam[0], rtol=1e-4)


def test_slq_index_estimates_the_fraction_of_negative_eigenvalues():
    """64 probes, k = n: the index within 4 standard errors of the dense count, and the standard
    error small (< 0.02)."""
    loss, params, H, lam, U = tiny_problem()
    spec = jax.jit(lambda p: analysis.hessian_spectrum(loss, p, jax.random.PRNGKey(3),
                                                       k=lam.size, num_probes=64))(params)
    assert spec.nodes.shape == (64, lam.size)
    alpha, se = analysis.index(spec, threshold=ZERO)
    true_alpha = np.mean(lam < -ZERO)
    assert 0.05 < true_alpha < 0.95
    assert 0 < float(se) < 0.02
    assert abs(float(alpha) - true_alpha) < 4 * float(se)
    alpha_t, _ = analysis.index(spec, threshold=1e-2)    # fewer below a larger threshold
    assert float(alpha_t) <= float(alpha)
    np.testing.assert_allclose(spec.lambda_min, lam[0], rtol=1e-8)
    np.testing.assert_allclose(spec.lambda_max, lam[-1], rtol=1e-8)


def test_restart_after_an_invariant_subspace():
    """A matrix with 3 distinct eigenvalues (multiplicities 3, 2, 1): the Krylov space from any
    start is 3-dimensional; with k = n = 6 the restarts recover every eigenvalue."""
    lam = np.array([-1.0, -1.0, -1.0, 0.5, 0.5, 2.0])
    U = np.linalg.qr(np.random.default_rng(4).normal(size=(6, 6)))[0]
    A = jnp.asarray(U @ np.diag(lam) @ U.T)
    res = jax.jit(lambda v: analysis.lanczos(lambda w: A @ w, v, 6))(jnp.ones(6))
    theta, _ = analysis.ritz(res)
    np.testing.assert_allclose(theta, lam, atol=1e-10)
    np.testing.assert_allclose(res.basis @ res.basis.T, np.eye(6), atol=1e-12)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="k <= n"):
        analysis.lanczos(lambda v: v, jnp.ones(3), 4)
    with pytest.raises(ValueError, match="shape"):
        analysis.lanczos(lambda v: v, jnp.ones((3, 2)), 2)
    spec = analysis.HessianSpectrum(jnp.zeros((1, 2)), jnp.ones((1, 2)) / 2, 0.0, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        analysis.index(spec, threshold=-1.0)
