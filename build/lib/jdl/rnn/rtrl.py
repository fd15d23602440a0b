"""Real-time recurrent learning (RTRL; Williams & Zipser 1989, 'A learning algorithm for
continually running fully recurrent neural networks'), as a grad_fn and as an online train step.

Instead of going back in time (BPTT), RTRL carries forward, frame by frame, the sensitivity of
the state to every parameter of the recurrent cell,

    S(t) = dX(t)/dtheta  (n x P),      S(0) = 0,
    S(t) = J_X(t) S(t-1) + dX(t)/dtheta|direct,     J_X(t) = dX(t)/dX(t-1),

where X(t) = f(theta, X(t-1), U(t)) is the cell's state (flattened: for an LSTM both c and h)
and theta its P parameters (flattened with ravel_pytree). The cell's output h_t gets its
sensitivity the same way, dh_t/dtheta = dh_t/dX(t-1) S(t-1) + dh_t/dtheta|direct, and the
gradient of the frame loss L_t = sum_n w_{n t} l(Y_n(t), D_n(t)), Y(t) = g(theta_out, h_t), is
available at time t, with no backward pass:

    dL_t/dtheta     = dL_t/dh_t . dh_t/dtheta        (= dL_t/dX(t) S(t) when h_t is part of X(t))
    dL_t/dtheta_out = dL_t/dtheta_out|direct         (the readout's weights: no sensitivity needed)

Summed over t with fixed theta it is the gradient of E = sum_t L_t, the same as BPTT's (the
tests check it to 1e-5 relative error in float64). The price: S has n x P entries per
sequence and each frame costs O(n^2 P) (vs O(P) for BPTT), the memory does not grow with T.

The local Jacobians [dX(t), dh_t] / d[theta, X(t-1)] of each frame are computed exactly by
automatic differentiation of the cell, inside a ``lax.scan`` over time, vmapped over the
sequences of the batch: ``jacobian='rev'`` takes n + m vector-Jacobian products (rows) and
forms J_X S(t-1) + J_theta; ``'fwd'`` takes P Jacobian-vector products with tangents
(e_p, S(t-1) e_p), i.e. forward-mode differentiation through time of theta_p (column p of
S(t)); ``'auto'`` picks the one with fewer products.

Modes:

- ``rtrl``: grad_fn (jdl.train.make_train_step): the gradient accumulated over all the frames
  of the batch, one update per batch (equal to BPTT's gradient).
- ``rtrl_step``: the lecture's 'gradients update for each frame in a sequence': a train step
  that applies one optimiser update per frame, theta(t+1) = theta(t) + tx(dL_t/dtheta), the
  sensitivities carried on across the updates (Williams & Zipser's real-time mode, exact only
  as the learning rate goes to 0).

Batches as in jdl.rnn.bptt: 'x' (batch, T, features), 'y' per frame or per sequence,
optional 'time_mask' (batch, T). Clip exploding gradients with jdl.optim's clip_norm.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jdl.losses import get_loss
from jdl.rnn.bptt import (_batch_parts, _float_dtype, _readout_view, finish_step, frame_targets,
                          frame_weights, guarded_update, recurrence, sequence_metrics,
                          single_loss)
from jdl.train.state import TrainState
from jdl.train.step import all_finite

JACOBIAN_MODES = ("auto", "rev", "fwd")


def sensitivity_step(local: Callable, theta, X, S, n: int, jacobian: str = "auto"):
    """One RTRL frame for one sequence.

    ``local(theta, X) -> z = [X(t); h_t]`` (flat, n + m entries) is the cell at frame t as a
    function of the flat parameters theta (P,) and flat previous state X (n,); S (n, P) is
    S(t-1). Returns (X(t), h_t, S(t), dh_t/dtheta) with
    [S(t); dh_t/dtheta] = d z/d X . S(t-1) + d z/d theta.
    """
    if jacobian not in JACOBIAN_MODES:
        raise ValueError(f"jacobian must be one of {JACOBIAN_MODES}, got {jacobian!r}")
    P = theta.shape[0]
    if jacobian == "auto":
        size = jax.eval_shape(local, theta, X).shape[0]
        jacobian = "rev" if size <= P else "fwd"
    if jacobian == "rev":
        z, vjp = jax.vjp(local, theta, X)
        J_theta, J_X = jax.vmap(vjp)(jnp.eye(z.shape[0], dtype=z.dtype))
        D = J_X @ S + J_theta
    else:
        z, lin = jax.linearize(local, theta, X)
        D = jax.vmap(lin, in_axes=(0, 1), out_axes=1)(jnp.eye(P, dtype=theta.dtype), S)
    return z[:n], z[n:], D[:n], D[n:]


class _Layout:
    """Flattening of the carry and of the cell output for a batch of one sequence."""

    def __init__(self, rec, cell_params, x1):
        carry = rec.init_carry(x1)
        self.X0, self.unravel_X = ravel_pytree(carry)
        self.n = self.X0.shape[0]
        h = jax.eval_shape(rec.transition, cell_params, carry, x1)[1]
        _, self.unravel_h = ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), h))


def _frame_fn(rec, loss_fn, layout: _Layout, jacobian: str):
    """frame(cell_params, readout_params, (X, S), (x_t, m_t, d_t, w_t)) for the whole batch
    -> ((X', S'), (dL_t/dtheta flat, dL_t/dtheta_out, L_t, y_t))."""
    lossf = single_loss(loss_fn)

    def frame(cp, op, state, inp):
        theta, unravel_theta = ravel_pytree(cp)

        def one(X, S, x_t, m_t, d_t, w_t):
            def local(th, Xf):
                carry, h = rec.transition(unravel_theta(th), layout.unravel_X(Xf), x_t[None])
                return jnp.concatenate([ravel_pytree(carry)[0], ravel_pytree(h)[0]])

            X_new, h, S_new, dh = sensitivity_step(local, theta, X, S, layout.n, jacobian)
            # a padded frame: the state and its sensitivity stay, the output is 0
            X_new, S_new = jnp.where(m_t, X_new, X), jnp.where(m_t, S_new, S)
            h, dh = jnp.where(m_t, h, 0), jnp.where(m_t, dh, 0)

            def frame_loss(hf, op):
                y = rec.output(op, layout.unravel_h(hf))[0]
                return w_t.astype(y.dtype) * lossf(y, d_t), y

            (value, y), (g_h, g_out) = jax.value_and_grad(frame_loss, argnums=(0, 1),
                                                          has_aux=True)(h, op)
            return X_new, S_new, g_h @ dh, g_out, value, y

        X, S = state
        X, S, g_theta, g_out, values, ys = jax.vmap(one)(X, S, *inp)
        g_out = jax.tree.map(lambda g: jnp.sum(g, axis=0), g_out)
        return (X, S), (jnp.sum(g_theta, axis=0), g_out, jnp.sum(values), ys)

    return frame


def _prepare(rec, params, batch, x_key, y_key, mask_key):
    x, m, y = _batch_parts(batch, x_key, y_key, mask_key)
    B, T = x.shape[:2]
    m = jnp.ones((B, T), bool) if m is None else jnp.asarray(m).astype(bool)
    w = frame_weights(rec.readout, m, dtype=_float_dtype(x))
    d = frame_targets(rec.readout, y, T)
    cp, _ = rec.split(params)
    layout = _Layout(rec, cp, x[:1, 0])
    theta, _ = ravel_pytree(cp)
    X0 = jnp.broadcast_to(layout.X0, (B, layout.n))
    S0 = jnp.zeros((B, layout.n, theta.shape[0]), np.promote_types(layout.X0.dtype, theta.dtype))
    frames = tuple(jnp.swapaxes(a, 0, 1) for a in (x, m, d, w))        # time-major
    return x, m, y, w, layout, (X0, S0), frames


def _check_jacobian(jacobian):
    if jacobian not in JACOBIAN_MODES:
        raise ValueError(f"jacobian must be one of {JACOBIAN_MODES}, got {jacobian!r}")


def rtrl(model, loss="quadratic", metrics: Callable = sequence_metrics, x_key: str = "x",
         y_key: str = "y", mask_key: str = "time_mask", jacobian: str = "auto") -> Callable:
    """grad_fn(params, model_state, batch, rng) -> (grads, model_state, metrics) by RTRL:
    sum_t dL_t/dtheta from the forward sensitivities S(t) (module docstring), parameters fixed
    for the whole batch. ``model`` is a jdl SequenceModel, CanonicalRNN or RNN (see
    jdl.rnn.recurrence); loss and frame weights as jdl.rnn.bptt (same loss, same gradient).
    """
    _check_jacobian(jacobian)
    rec = recurrence(model)
    loss_fn = get_loss(loss)

    def grad_fn(params, model_state, batch, rng):
        del rng
        x, m, y, w, layout, state0, frames = _prepare(rec, params, batch, x_key, y_key,
                                                      mask_key)
        cp, op = rec.split(params)
        frame = _frame_fn(rec, loss_fn, layout, jacobian)

        def body(carry, inp):
            state, g_theta, g_out = carry
            state, (gt, go, value, ys) = frame(cp, op, state, inp)
            return (state, g_theta + gt, jax.tree.map(jnp.add, g_out, go)), (value, ys)

        theta, unravel_theta = ravel_pytree(cp)
        init = (state0, jnp.zeros_like(theta), jax.tree.map(jnp.zeros_like, op))
        (_, g_theta, g_out), (values, ys) = jax.lax.scan(body, init, frames)
        value = jnp.sum(values)
        out, wm = _readout_view(rec.readout, jnp.swapaxes(ys, 0, 1), m, w)
        grads = rec.merge(unravel_theta(g_theta), g_out)
        return grads, model_state, {"loss": value, **metrics(out, y, wm.astype(value.dtype))}

    return grad_fn


def rtrl_step(model, tx: optax.GradientTransformation, loss="quadratic",
              metrics: Callable = sequence_metrics, x_key: str = "x", y_key: str = "y",
              mask_key: str = "time_mask", jacobian: str = "auto",
              nan_guard: bool = True) -> Callable:
    """Train step ``step(state, batch) -> (state, metrics)`` of online RTRL: one optimiser
    update per frame, with the gradient of that frame's mean loss over the batch,

        g_t = dL_t/dtheta / sum_n w_{n t},     theta(t+1) = theta(t) + tx(g_t),

    the state X and the sensitivities S carried on through the updates (S(t) then mixes
    derivatives taken at several theta: Williams & Zipser's real-time approximation). Frames
    where no sequence has a weight (padding; all but the last for readout 'last') make no
    update. ``state.step`` counts batches (as fit expects), not frame updates. metrics['loss']
    is sum_t L_t, each L_t with the parameters of its time.
    """
    _check_jacobian(jacobian)
    rec = recurrence(model)
    loss_fn = get_loss(loss)

    def step(state: TrainState, batch):
        x, m, y, w, layout, state0, frames = _prepare(rec, state.params, batch, x_key, y_key,
                                                      mask_key)
        frame = _frame_fn(rec, loss_fn, layout, jacobian)

        def body(carry, inp):
            params, opt_state, rstate, finite = carry
            cp, op = rec.split(params)
            _, unravel_theta = ravel_pytree(cp)
            rstate, (gt, go, value, ys) = frame(cp, op, rstate, inp)
            total = jnp.sum(inp[3])
            scale = 1.0 / jnp.where(total > 0, total, 1.0)
            grads = jax.tree.map(lambda g: g * scale.astype(g.dtype),
                                 rec.merge(unravel_theta(gt), go))
            params, opt_state = guarded_update(tx, params, opt_state, grads, total > 0)
            return (params, opt_state, rstate, finite & all_finite(grads)), (value, ys)

        init = (state.params, state.opt_state, state0, jnp.array(True))
        (params, opt_state, _, finite), (values, ys) = jax.lax.scan(body, init, frames)
        value = jnp.sum(values)
        out, wm = _readout_view(rec.readout, jnp.swapaxes(ys, 0, 1), m, w)
        metrics_ = {"loss": value, **metrics(out, y, wm.astype(value.dtype))}
        return finish_step(state, params, opt_state, metrics_, finite, nan_guard)

    return step
