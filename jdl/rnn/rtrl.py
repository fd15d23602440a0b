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

The frames are an online rule's segments (``rtrl_segments``, jdl.train.Segments) carrying
(X, S):

- ``rtrl``: grad_fn (jdl.train.make_train_step): the gradient accumulated over all the frames
  of the batch (jdl.train.segment_sum_grad_fn), one update per batch (equal to BPTT's
  gradient).
- ``rtrl_step``: the lecture's 'gradients update for each frame in a sequence': a train step
  (jdl.train.make_online_step) that applies one optimiser update per frame, theta(t+1) =
  theta(t) + tx(dL_t/dtheta), the sensitivities carried on across the updates (Williams &
  Zipser's real-time mode, exact only as the learning rate goes to 0).

Batches as in jdl.rnn.sequence_loss: 'x' (batch, T, features), 'y' per frame or per sequence,
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
from jdl.rnn.sequence_loss import (frame_data, readout_view, recurrence, sequence_metrics,
                                   single_loss)
from jdl.train.objective import objective_grad_fn
from jdl.train.step import Segments, make_online_step, segment_sum_grad_fn

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

    def frame_loss(h_op, _, target, rng):
        """L_t of one sequence as an objective of (h_t flat, theta_out)."""
        (hf, op), (d_t, w_t) = h_op, target
        y = rec.output(op, layout.unravel_h(hf))[0]
        return w_t.astype(y.dtype) * lossf(y, d_t), ({"output": y}, None)

    frame_grad = objective_grad_fn(frame_loss)

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
            (g_h, g_out), _, m = frame_grad((h, op), None, (d_t, w_t), None)
            return X_new, S_new, g_h @ dh, g_out, m["loss"], m["output"]

        X, S = state
        X, S, g_theta, g_out, values, ys = jax.vmap(one)(X, S, *inp)
        g_out = jax.tree.map(lambda g: jnp.sum(g, axis=0), g_out)
        return (X, S), (jnp.sum(g_theta, axis=0), g_out, jnp.sum(values), ys)

    return frame


def _check_jacobian(jacobian):
    if jacobian not in JACOBIAN_MODES:
        raise ValueError(f"jacobian must be one of {JACOBIAN_MODES}, got {jacobian!r}")


def rtrl_segments(model, loss="quadratic", metrics: Callable = sequence_metrics,
                  x_key: str = "x", y_key: str = "y", mask_key: str = "time_mask",
                  jacobian: str = "auto", online: bool = False) -> Callable:
    """segments_fn(params, batch) -> jdl.train.Segments of RTRL: one segment per frame t
    (time-major), carrying (X(t), S(t)) for every sequence, with gradient dL_t/dtheta from the
    sensitivities (module docstring); with ``online`` divided by sum_n w_{n t} (the frame's
    mean loss over the batch), and a frame where no sequence has a weight inactive."""
    _check_jacobian(jacobian)
    rec = recurrence(model)
    loss_fn = get_loss(loss)

    def segments_fn(params, batch):
        x, m, y, w, d = frame_data(rec.readout, batch, x_key, y_key, mask_key)
        B = x.shape[0]
        cp, _ = rec.split(params)
        layout = _Layout(rec, cp, x[:1, 0])
        theta, _ = ravel_pytree(cp)
        X0 = jnp.broadcast_to(layout.X0, (B, layout.n))
        S0 = jnp.zeros((B, layout.n, theta.shape[0]),
                       np.promote_types(layout.X0.dtype, theta.dtype))
        frames = tuple(jnp.swapaxes(a, 0, 1) for a in (x, m, d, w))        # time-major
        frame = _frame_fn(rec, loss_fn, layout, jacobian)

        def frame_grad_fn(params, state, inp, rng):
            cp, op = rec.split(params)
            _, unravel_theta = ravel_pytree(cp)
            state, (gt, go, value, ys) = frame(cp, op, state, inp)
            grads = rec.merge(unravel_theta(gt), go)
            if online:
                total = jnp.sum(inp[3])
                scale = 1.0 / jnp.where(total > 0, total, 1.0)
                grads = jax.tree.map(lambda g: g * scale.astype(g.dtype), grads)
            return grads, state, {"loss": value, "outputs": ys}

        def batch_metrics(ms):
            value = jnp.sum(ms["loss"])
            out, wm = readout_view(rec.readout, jnp.swapaxes(ms["outputs"], 0, 1), m, w)
            return {"loss": value, **metrics(out, y, wm.astype(value.dtype))}

        active = jnp.sum(frames[3], axis=1) > 0
        return Segments((X0, S0), frames, active, frame_grad_fn, batch_metrics)

    return segments_fn


def rtrl(model, loss="quadratic", metrics: Callable = sequence_metrics, x_key: str = "x",
         y_key: str = "y", mask_key: str = "time_mask", jacobian: str = "auto") -> Callable:
    """grad_fn(params, model_state, batch, rng) -> (grads, model_state, metrics) by RTRL:
    sum_t dL_t/dtheta from the forward sensitivities S(t) (module docstring), parameters fixed
    for the whole batch. ``model`` is a jdl SequenceModel, CanonicalRNN or RNN (see
    jdl.rnn.recurrence); loss and frame weights as jdl.rnn.bptt (same loss, same gradient).
    """
    return segment_sum_grad_fn(rtrl_segments(model, loss, metrics, x_key, y_key, mask_key,
                                             jacobian))


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
    is sum_t L_t, each L_t with the parameters of its time. Built by jdl.train.make_online_step
    (its NaN guard, rng rule and update).
    """
    return make_online_step(rtrl_segments(model, loss, metrics, x_key, y_key, mask_key,
                                          jacobian, online=True), tx, nan_guard)
