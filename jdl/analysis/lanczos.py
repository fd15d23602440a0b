"""The Lanczos process (Lanczos 1950) on a symmetric linear operator given only by its
matrix-vector product, with full reorthogonalisation (Golub & Van Loan, Matrix Computations,
4th ed., sections 10.1 and 10.3.1).

From a unit vector q_1, k steps build an orthonormal basis Q_k = [q_1 .. q_k] of the Krylov
space span{q_1, A q_1, ..., A^{k-1} q_1} and the tridiagonal T_k = Q_k^T A Q_k:

    w = A q_j - beta_{j-1} q_{j-1},   alpha_j = q_j . w,   w <- w - alpha_j q_j,
    w <- w - Q_j (Q_j^T w)  (twice: "twice is enough", Parlett 1980),
    beta_j = ||w||,   q_{j+1} = w / beta_j.

Without the reorthogonalisation, rounding makes the q_j lose orthogonality once a Ritz value
converges and T_k grows spurious copies of converged eigenvalues; with it Q_k stays orthonormal
to working precision (costs O(k n) a step, the basis k x n kept in memory). If beta_j falls to
rounding level the Krylov space is invariant (A has at most j distinct eigenvalues along q_1):
the process restarts from a random vector orthogonal to Q_j with beta_j = 0, so T_k stays block
tridiagonal and its eigenvalues are still eigenvalues of A; with k = n it is then exact.

The eigenvalues theta_i of T_k (Ritz values) approximate those of A, the extreme ones first
(Kaniel-Paige-Saad bounds); with T_k = S diag(theta) S^T, the weights tau_i^2 = S_{1i}^2 make
(theta_i, tau_i^2) the k-point Gauss quadrature of the spectral measure of A seen from q_1:

    q_1^T f(A) q_1  ~=  sum_i tau_i^2 f(theta_i)      (Golub & Meurant 1994/2010),

exact for polynomials f of degree < 2k, and for every f when the process spans A's spectrum.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class LanczosResult(NamedTuple):
    alpha: jax.Array      # (k,) diagonal of T_k
    beta: jax.Array       # (k - 1,) off-diagonal of T_k (0 where the process restarted)
    basis: jax.Array      # (k, n) rows q_1 .. q_k, orthonormal


def lanczos(matvec: Callable, v0, k: int, rng=None) -> LanczosResult:
    """k steps of Lanczos with full reorthogonalisation on the symmetric operator ``matvec``
    (a function of a vector of shape (n,)), from the direction of ``v0`` (shape (n,), nonzero);
    1 <= k <= n. ``rng`` draws the restart vectors after an invariant subspace (default
    PRNGKey(0)). Pure and jittable; vmap over v0 runs several processes at once."""
    v0 = jnp.asarray(v0)
    if v0.ndim != 1:
        raise ValueError(f"lanczos needs a start vector of shape (n,), got {v0.shape}")
    n = v0.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"lanczos needs 1 <= k <= n = {n} steps, got k={k}")
    rng = jax.random.PRNGKey(0) if rng is None else rng
    dtype = v0.dtype
    eps = jnp.finfo(dtype).eps
    tol = 10.0 * (n ** 0.5) * eps

    def orthogonalise(Q, w):
        for _ in range(2):
            w = w - Q.T @ (Q @ w)
        return w

    def body(j, carry):
        Q, alpha, beta, q, q_prev, b_prev, scale = carry
        Q = Q.at[j].set(q)
        w = matvec(q) - b_prev * q_prev
        a = jnp.vdot(q, w)
        w = orthogonalise(Q, w - a * q)
        b = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.abs(a) + b + b_prev)
        r = orthogonalise(Q, jax.random.normal(jax.random.fold_in(rng, j), (n,), dtype))
        broke = b <= tol * scale
        b = jnp.where(broke, jnp.zeros_like(b), b)
        q_next = jnp.where(broke, r / jnp.linalg.norm(r), w / jnp.where(broke, 1.0, b))
        return (Q, alpha.at[j].set(a), beta.at[j].set(b), q_next, q, b, scale)

    q = v0 / jnp.linalg.norm(v0)
    zero = jnp.zeros((), dtype)
    init = (jnp.zeros((k, n), dtype), jnp.zeros((k,), dtype), jnp.zeros((k,), dtype), q,
            jnp.zeros_like(q), zero, zero)
    Q, alpha, beta, *_ = jax.lax.fori_loop(0, k, body, init)
    return LanczosResult(alpha, beta[:-1], Q)


def ritz(result: LanczosResult):
    """Ritz values theta (ascending, shape (..., k)) of T_k and their Gauss-quadrature weights
    tau^2 = (first components of T_k's eigenvectors)^2, which sum to 1."""
    alpha, beta = result.alpha, result.beta
    T = (jnp.vectorize(jnp.diag, signature="(k)->(k,k)")(alpha)
         + _offdiag(beta, 1) + _offdiag(beta, -1))
    theta, S = jnp.linalg.eigh(T)
    return theta, jnp.square(S[..., 0, :])


def _offdiag(beta, offset):
    return jnp.vectorize(lambda b: jnp.diag(b, offset), signature="(m)->(k,k)")(beta)
