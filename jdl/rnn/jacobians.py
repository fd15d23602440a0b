"""Vanishing and exploding gradients, measured: the state-to-state Jacobians of a recurrent net
along a trajectory, their products over a lag k, and the gradient norm as a function of k.

A recurrent net in the lecture's canonical form, X(t) = f(X(t-1), U(t)) (jdl.nn.recurrent),
back-propagates its error through the states (jdl.rnn.bptt): with J(t) = dX(t)/dX(t-1) the
Jacobian of one frame's state transition (n x n, evaluated on the trajectory),

    dX(t)/dX(t-k) = J(t) J(t-1) ... J(t-k+1)                                     (1)
    dE/dX(t-k)    = dE/dX(t) . dX(t)/dX(t-k)   (+ the losses of frames t-k+1..t)

and, the spectral norm ||.|| (largest singular value) being sub-multiplicative,

    ||dX(t)/dX(t-k)|| <= prod_{s=t-k+1..t} ||J(s)||                              (2)

so an error signal carried back over k frames shrinks or grows geometrically in k: the
vanishing and exploding gradient problems (Bengio, Simard & Frasconi 1994, 'Learning long-term
dependencies with gradient descent is difficult'; the lecture's RNN part). For the Elman net
h_t = phi(x_t W_x + h_{t-1} W_h + b) (row vectors, as jdl stores kernels), J(t) =
diag(phi'(a_t)) W_h^T; with phi the identity, J(t) = W_h^T and dX(t)/dX(t-k) = (W_h^T)^k.
Pascanu, Mikolov & Bengio (2013, 'On the difficulty of training recurrent neural networks'):
in that linear case a spectral radius rho(W_h) < 1 is SUFFICIENT for the gradient to vanish
(||W^k|| ~ rho^k -> 0) and rho > 1 NECESSARY for it to explode; with phi' bounded by gamma
(gamma = 1 for tanh, 1/4 for the sigmoid), ||W_h|| < 1/gamma is sufficient for vanishing.
Eigenvalues of the J(t) are what the lecture's warning speaks of: moduli below 1 make the
products vanish, above 1 explode (for a normal J; otherwise the singular values, (2), bound them).

Everything here is for ONE sequence x of shape (T, features) (vmap over a batch) and is pure
and jit-able (``jax.jit(lambda p, x: gradient_lags(model, p, x))``); ``model`` is a
jdl.nn.recurrent SequenceModel, CanonicalRNN or RNN (``params`` its 'params' collection) or a
bare cell (jdl's or flax's RNNCellBase; ``params`` the cell's 'params'). The state X is the
carry flattened with ravel_pytree: for an LSTM X = [c; h] (2n entries), so J(t) is 2n x 2n.

    state_jacobians(model, params, x)   states X(0..T) (T+1, n) and J(1..T) (T, n, n)
    lag_products(J, t=None)             dX(t)/dX(t-k) for k = 1..t, (t, n, n) (eq. 1)
    spectral_norm(M), spectral_radius(M), eigenvalues(M)   batched over leading axes
    state_gradients(model, params, x, targets, loss)       delta(t) = dE/dX(t), t = 0..T
    gradient_lags(model, params, x, targets=None, ...)     all of it as a GradientLags
    scale_spectral_radius(W, rho)       W rescaled to spectral radius rho
    plot_gradient_lags({name: curve}, path)                the lag curves, log-scale y, PNG
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jdl.losses import get_loss
from jdl.nn.recurrent import RecurrentCell, carry_dtype, check_frames
from jdl.rnn.sequence_loss import (Recurrence, frame_targets, frame_weights, recurrence,
                                   single_loss)

Array = jax.Array


# ------------------------------------------------------------------ the flat state transition


def _recurrence_of(model) -> Recurrence:
    """jdl.rnn.recurrence(model), or the same view of a bare cell (output = the cell's h)."""
    if not isinstance(model, nn.RNNCellBase):
        return recurrence(model)
    cell = model

    def transition(cell_params, carry, x_t):
        return cell.apply({"params": cell_params}, carry, x_t)

    def init_carry(x_t):
        if isinstance(cell, RecurrentCell):
            return cell.initialize_carry(None, x_t.shape, carry_dtype(cell, x_t))
        return cell.initialize_carry(jax.random.PRNGKey(0), x_t.shape)

    return Recurrence(transition, lambda _, h: h, init_carry, lambda p: (p, {}),
                      lambda c, _: c, "all")


def flat_transition(model, params, x_t) -> tuple[Callable, Array]:
    """The cell of ``model`` as a function of the flat state: ``step(X, x_t) -> (X', h_t)``
    with X, X' of shape (n,) (the carry raveled: [c; h] for an LSTM) and h_t the cell's output
    (a pytree), plus the flat zero state X(0). ``x_t`` (features,) fixes shapes and dtype."""
    rec = _recurrence_of(model)
    cell_params, _ = rec.split(params)
    X0, unravel = ravel_pytree(rec.init_carry(jnp.asarray(x_t)))

    def step(X, x_t):
        carry, h = rec.transition(cell_params, unravel(X), x_t)
        return ravel_pytree(carry)[0].astype(X.dtype), h

    return step, X0


def state_jacobians(model, params, x, initial_state=None) -> tuple[Array, Array]:
    """States and state-to-state Jacobians along the trajectory of one sequence x (T, features):

        X(0) = initial_state (flat; zeros by default),  X(t) = f(X(t-1), x_t),
        J(t) = dX(t)/dX(t-1)   (jax.jacfwd of the flat transition at X(t-1), x_t)

    Returns (states (T+1, n) with states[t] = X(t), jacobians (T, n, n) with jacobians[t-1] =
    J(t), row i = d X_i(t)).
    """
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be one sequence (T, features), got shape {x.shape}")
    check_frames(x, "x", axis=0)
    step, X0 = flat_transition(model, params, x[0])
    if initial_state is not None:
        X0 = jnp.asarray(initial_state, X0.dtype).reshape(X0.shape)

    def body(X, x_t):
        J, X_new = jax.jacfwd(lambda X: (step(X, x_t)[0],) * 2, has_aux=True)(X)
        return X_new, (X_new, J)

    _, (states, jacobians) = jax.lax.scan(body, X0, x)
    return jnp.concatenate([X0[None], states]), jacobians


def lag_products(jacobians, t: int | None = None) -> Array:
    """P (t, n, n) with P[k-1] = dX(t)/dX(t-k) = J(t) J(t-1) ... J(t-k+1), k = 1..t (eq. 1),
    from ``jacobians`` as state_jacobians returns them (jacobians[s-1] = J(s)); ``t`` (a
    Python int, default T) is the end frame."""
    T, n = jacobians.shape[0], jacobians.shape[-1]
    t = T if t is None else int(t)
    if not 1 <= t <= T:
        raise ValueError(f"t must be in 1..{T}, got {t}")

    def body(P, J):
        P = P @ J
        return P, P

    _, products = jax.lax.scan(body, jnp.eye(n, dtype=jacobians.dtype), jacobians[:t][::-1])
    return products


# ----------------------------------------------------------------------------- matrix norms


def spectral_norm(M) -> Array:
    """||M||_2, the largest singular value, over the last two axes (= numpy.linalg.norm(M, 2)).
    It bounds the gain of M on any vector and is sub-multiplicative (eq. 2)."""
    return jnp.linalg.svd(M, compute_uv=False)[..., 0]


def eigenvalues(M) -> Array:
    """Eigenvalues (complex, unordered) of square matrices over the last two axes. Non-symmetric
    eigendecomposition: XLA's CPU backend always has it; on GPU it needs a recent jaxlib."""
    return jnp.linalg.eigvals(M)


def spectral_radius(M) -> Array:
    """rho(M) = max |lambda_i(M)| over the last two axes; rho(M) <= ||M||_2 and
    ||M^k||_2 >= rho(M)^k, with ||M^k||^(1/k) -> rho(M) (Gelfand)."""
    return jnp.max(jnp.abs(eigenvalues(M)), axis=-1)


def scale_spectral_radius(W, rho: float) -> Array:
    """W * rho / rho(W): the same matrix with spectral radius ``rho`` (to build a recurrent
    matrix that makes a linear RNN's gradient vanish (rho < 1) or explode (rho > 1))."""
    return jnp.asarray(W) * (rho / spectral_radius(jnp.asarray(W)))


# ------------------------------------------------------------------------ gradients of a loss


def state_gradients(model, params, x, targets, loss="quadratic", initial_state=None) -> Array:
    """delta (T+1, n) with delta[t] = dE/dX(t), the TOTAL derivative of the sequence loss E of
    jdl.rnn.bptt (one sequence, every frame real) with respect to the state X(t), t = 0..T:
    E = sum_t w_t l(Y(t), D(t)) (readout 'all': w_t = 1/T; 'last': only the last frame).

    In the canonical form the output of frame t depends on X(t-1) (Y(t) = g(h_t), h_t from
    f(X(t-1), U(t))), so delta(T) = 0 and delta(t-1) = dE_t/dX(t-1) + delta(t) J(t); with
    readout 'last' and h_T part of X(T) (Elman, LSTM), delta(T-k) = dE/dh_T . dX(T)/dX(T-k).
    Computed as the gradient of E with respect to perturbations eps_t added to each X(t).
    ``targets``: 'last' one sequence's target (e.g. (outputs,) or an int label), 'all' (T, ...).
    """
    rec = _recurrence_of(model)
    _, readout_params = rec.split(params)
    x = jnp.asarray(x)
    check_frames(x, "x", axis=0)
    T = x.shape[0]
    step, X0 = flat_transition(model, params, x[0])
    if initial_state is not None:
        X0 = jnp.asarray(initial_state, X0.dtype).reshape(X0.shape)
    w = frame_weights(rec.readout, None, shape=(1, T), dtype=X0.dtype)[0]
    d = frame_targets(rec.readout, jnp.asarray(targets)[None], T)[0]
    lossf = single_loss(get_loss(loss))

    def E(eps):
        def body(X, inp):
            x_t, d_t, w_t, e_t = inp
            X_new, h = step(X, x_t)
            value = lossf(rec.output(readout_params, h), d_t)
            return X_new + e_t, w_t.astype(value.dtype) * value

        _, values = jax.lax.scan(body, X0 + eps[0], (x, d, w, eps[1:]))
        return jnp.sum(values)

    return jax.grad(E)(jnp.zeros((T + 1,) + X0.shape, X0.dtype))


# --------------------------------------------------------------------------------- all of it


class GradientLags(NamedTuple):
    """What gradient_lags measures for one sequence (end frame t; k = 1..t on axis 0 of the
    lag curves):

    states            (T+1, n)  X(0..T)
    jacobians         (T, n, n) J(1..T), jacobians[s-1] = dX(s)/dX(s-1)
    products          (t, n, n) dX(t)/dX(t-k)
    lag_norms         (t,)      ||dX(t)/dX(t-k)||_2, the lag curve
    norm_bound        (t,)      prod_{s=t-k+1..t} ||J(s)||_2 >= lag_norms (eq. 2)
    jacobian_norms    (T,)      ||J(s)||_2
    spectral_radii    (T,)      rho(J(s)) (None unless eigen=True)
    eigenvalues       (T, n)    eigenvalues of J(s), complex (None unless eigen=True)
    loss_grad_norms   (t,)      ||dE/dX(t-k)|| (None without targets)
    """
    states: Array
    jacobians: Array
    products: Array
    lag_norms: Array
    norm_bound: Array
    jacobian_norms: Array
    spectral_radii: Any = None
    eigenvalues: Any = None
    loss_grad_norms: Any = None


def gradient_lags(model, params, x, targets=None, loss="quadratic", t: int | None = None,
                  eigen: bool = True, initial_state=None) -> GradientLags:
    """The gradient-pathology report of one sequence x (T, features): Jacobians J(s) along the
    trajectory, products dX(t)/dX(t-k) and their spectral norms against the lag k = 1..t (end
    frame ``t``, default T), the bound prod ||J|| (eq. 2), the eigenvalues and spectral radii of
    each J(s) (``eigen``), and with ``targets`` the norms ||dE/dX(t-k)|| of the loss gradient
    (state_gradients). Pure and jit-able (model, loss, t and eigen static)."""
    states, jacobians = state_jacobians(model, params, x, initial_state)
    T = jacobians.shape[0]
    t = T if t is None else int(t)
    products = lag_products(jacobians, t)
    jnorms = spectral_norm(jacobians)
    bound = jnp.cumprod(jnorms[:t][::-1])
    radii = eig = grads = None
    if eigen:
        eig = eigenvalues(jacobians)
        radii = jnp.max(jnp.abs(eig), axis=-1)
    if targets is not None:
        delta = state_gradients(model, params, x, targets, loss, initial_state)
        grads = jnp.linalg.norm(delta[:t][::-1], axis=-1)           # k = 1..t: delta[t-k]
    return GradientLags(states, jacobians, products, spectral_norm(products), bound, jnorms,
                        radii, eig, grads)


# -------------------------------------------------------------------------------------- plot


def plot_gradient_lags(results: dict, path: str, title: str = "",
                       ylabel: str = "||dX(T)/dX(T-k)||  (spectral norm)",
                       references: dict | None = None) -> None:
    """Lag curves on a log-scale y axis, one line per entry of ``results`` ({name: values for
    k = 1..K}); ``references`` ({name: rho}) adds dashed rho^k guides. Non-positive or
    non-finite values are left out. PNG at ``path`` (matplotlib's object API: no pyplot, no
    backend switched)."""
    from jdl.extras import require

    fig = require("matplotlib.figure", "figures").Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    kmax = 1
    for name, curve in results.items():
        y = np.asarray(curve, np.float64)
        k = np.arange(1, len(y) + 1)
        ok = np.isfinite(y) & (y > 0)
        kmax = max(kmax, len(y))
        ax.plot(k[ok], y[ok], "-", lw=1.6, label=name)
    for name, rho in (references or {}).items():
        k = np.arange(1, kmax + 1)
        ax.plot(k, float(rho) ** k, "--", lw=0.9, color="grey", alpha=0.8)
        ax.annotate(name, (k[-1], float(rho) ** k[-1]), fontsize=7, color="grey",
                    ha="right", va="bottom")
    ax.set_yscale("log")
    ax.set_xlabel("lag k (frames back in time)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
