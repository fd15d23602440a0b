"""Back-propagation through time (BPTT) and truncated BPTT as grad_fns for jdl.train.

The lecture's recurrent net in canonical form, unfolded in time, is a deep feed-forward net whose
T copies of f share the weights theta (jdl.nn.recurrent):

    (X(t), h_t) = f(theta, X(t-1), U(t)),   Y(t) = g(theta, h_t),   X(0) = 0,

trained on the cost of the whole sequence (the lecture's E = sum_t (Y_t - D_t)^2, here any jdl
loss l weighted per frame, see ``frame_weights``):

    E(theta) = sum_{n, t} w_{n t} l(Y_n(t), D_n(t)).

BPTT (Rumelhart, Hinton & Williams 1986; Werbos 1990, 'Backpropagation through time: what it
does and how to do it') is reverse-mode differentiation of E through the unfolded net. With
E_t the loss of frame t (a function of h_t, so of X(t-1) and theta) and delta(t) = dE/dX(t)
the total derivative, the gradient flows back through the states by the chain rule,

    delta(T) = 0,   delta(t-1) = dE_t/dh_t . dh_t/dX(t-1) + delta(t) . J(t),
    J(t) = dX(t)/dX(t-1)  (the Jacobian of f with respect to the state),
    dE/dtheta = sum_t [ delta(t) . dX(t)/dtheta|direct + dE_t/dh_t . dh_t/dtheta|direct
                        + dE_t/dtheta|readout ],

so delta(t) contains products J(t+1) ... J(T) of Jacobians: they vanish when the Jacobians'
eigenvalues are below 1 and explode when above (the lecture's vanishing/exploding gradient
problem; Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013, who clip the gradient
norm: ``jdl.optim.sgd(..., clip_norm=c)``; clip by value: ``clip_value=c``, which applies first).
Here it is reverse-mode differentiation of E (an objective for jdl.train.objective_grad_fn)
through the ``nn.scan`` of the model: ``bptt``.

Truncated BPTT (Williams & Peng 1990, 'An efficient gradient-based algorithm for on-line
training of recurrent network trajectories', BPTT(h; h)): the sequence is cut into chunks of
N_t frames (the lecture's horizon), the state is carried from chunk to chunk but the gradient
is not (stop_gradient at the chunk boundaries), and each chunk is back-propagated alone:

    g_k = d/dtheta sum_{t in chunk k} sum_n w_{n t} l(Y_n(t), D_n(t)),   X(start of k) constant.

The chunks are an online rule's segments (``truncated_bptt_segments``, jdl.train.Segments),
each chunk's loss an objective differentiated by jdl.train.objective_grad_fn:
``truncated_bptt`` is a grad_fn that SUMS the g_k over the chunks (jdl.train.
segment_sum_grad_fn; one update per batch of sequences; with N_t >= T it is BPTT exactly);
``truncated_bptt_step`` is a train step (jdl.train.make_online_step) that applies one optimiser
update per chunk, W(t + N_t) = W(t) - lambda g_k, the lecture's 'BPTT delay' rule, the state of
chunk k+1 starting from the one computed with the old weights.

Batches as in jdl.rnn.sequence_loss; at evaluation ``batch['mask']`` (batch,) drops padded
examples (jdl.train.fit adds it).
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jdl.losses import get_loss
from jdl.nn.recurrent import masked_step
from jdl.rnn.sequence_loss import (Recurrence, float_dtype, frame_data, frame_targets,  # noqa: F401
                                   frame_weights, readout_view, recurrence, sequence_batch,
                                   sequence_metrics, single_loss, weighted_loss)
from jdl.train.objective import objective_grad_fn
from jdl.train.step import Segments, make_online_step, segment_sum_grad_fn


# ------------------------------------------------------------------------------ full BPTT


def weighted_sequence_loss(model, loss_fn: Callable, metrics: Callable, params, model_state,
                           batch, keys: tuple, train: bool = True, rng=None,
                           example_mask=None):
    """(E, metrics) of ``model`` on a batch of sequences: E = sum_{n t} w_{n t} l(Y_n(t),
    D_n(t)) with the weights of ``frame_weights`` (time mask, ``example_mask``), the model
    called as ``model.apply(variables, x, mask=time_mask, train=train)``."""
    x, m, y = sequence_batch(batch, *keys)
    readout = getattr(model, "readout", "all")
    w = frame_weights(readout, m, example_mask, x.shape[:2], float_dtype(x))
    w = w if readout == "all" else jnp.sum(w, axis=1)
    kw = {} if m is None else {"mask": m}
    if train:
        kw["rngs"] = {"dropout": rng}
    out = model.apply({"params": params, **model_state}, x, train=train, **kw)
    value = weighted_loss(loss_fn, out, y, w)
    return value, metrics(out, y, w.astype(value.dtype))


def bptt(model, loss="quadratic", metrics: Callable = sequence_metrics, x_key: str = "x",
         y_key: str = "y", mask_key: str = "time_mask") -> Callable:
    """grad_fn(params, model_state, batch, rng) -> (grads, model_state, metrics) for BPTT:
    reverse-mode gradient of E(theta) = sum_{n t} w_{n t} l(Y_n(t), D_n(t)) through the scanned
    model (``model.apply(variables, x, mask=time_mask, train=True)``), one update per batch.

    ``loss`` is a jdl loss name or function l(outputs, targets) ('quadratic' by default: the
    lecture's E = sum_t ||Y_t - D_t||^2, here a mean over frames); weights from
    ``frame_weights``. E (``weighted_sequence_loss``) is an objective for
    jdl.train.objective_grad_fn.
    """
    loss_fn = get_loss(loss)
    keys = (x_key, y_key, mask_key)

    def objective(params, model_state, batch, rng):
        value, metrics_ = weighted_sequence_loss(model, loss_fn, metrics, params, model_state,
                                                 batch, keys, rng=rng)
        return value, (metrics_, model_state)

    return objective_grad_fn(objective)


def evaluate_fn(model, loss="quadratic", metrics: Callable = sequence_metrics, x_key: str = "x",
                y_key: str = "y", mask_key: str = "time_mask") -> Callable:
    """eval_fn(params, model_state, batch) -> metrics for jdl.train.make_eval_step: the same
    weighted loss as ``bptt`` in inference mode, over the examples with batch['mask'] = 1."""
    loss_fn = get_loss(loss)

    def eval_fn(params, model_state, batch):
        value, metrics_ = weighted_sequence_loss(model, loss_fn, metrics, params, model_state,
                                                 batch, (x_key, y_key, mask_key), train=False,
                                                 example_mask=batch.get("mask"))
        return {"loss": value, **metrics_}

    return eval_fn


# ---------------------------------------------------------------------------- truncated BPTT


def run_frames(rec: Recurrence, cell_params, readout_params, carry, xs, ms, ds, ws, loss_fn):
    """Unroll ``rec`` over time-major frames xs (T, batch, ...), masks ms (T, batch), targets
    ds and weights ws (T, batch); returns (sum_{t n} w_{n t} l(y_{n t}, d_{n t}),
    (final carry, outputs (T, batch, ...)))."""
    lossf = jax.vmap(single_loss(loss_fn))

    def frame(carry, inp):
        x_t, m_t, d_t, w_t = inp
        carry, h = masked_step(rec.transition(cell_params, carry, x_t), carry, m_t)
        y = rec.output(readout_params, h)
        return carry, (jnp.sum(w_t.astype(y.dtype) * lossf(y, d_t)), y)

    carry, (ls, ys) = jax.lax.scan(frame, carry, (xs, ms, ds, ws))
    return jnp.sum(ls), (carry, ys)


def _check_horizon(horizon):
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive number of frames, got {horizon!r}")


def truncated_bptt_segments(model, horizon: int, loss="quadratic",
                            metrics: Callable = sequence_metrics, x_key: str = "x",
                            y_key: str = "y", mask_key: str = "time_mask") -> Callable:
    """segments_fn(params, batch) -> jdl.train.Segments of truncated BPTT: the sequences cut
    into K = ceil(T / horizon) chunks (time-major, the last one padded with masked frames),
    the recurrent state carried, and chunk k's gradient that of its loss
    sum_{t in k} sum_n w_{n t} l(Y_n(t), D_n(t)) from X(start of k) under stop_gradient
    (the whole-batch weights w, so the chunk losses sum to E)."""
    _check_horizon(horizon)
    rec = recurrence(model)
    loss_fn = get_loss(loss)

    def chunk_loss(params, carry, chunk, rng):
        carry = jax.lax.stop_gradient(carry)          # truncation: no gradient into the past
        cp, op = rec.split(params)
        value, (carry, ys) = run_frames(rec, cp, op, carry, *chunk, loss_fn)
        return value, ({"outputs": ys}, carry)

    chunk_grad_fn = objective_grad_fn(chunk_loss)

    def segments_fn(params, batch):
        x, m, y, w, d = frame_data(rec.readout, batch, x_key, y_key, mask_key)
        T = x.shape[1]
        K = math.ceil(T / horizon)

        def chunks(a):
            a = jnp.pad(a, [(0, 0), (0, K * horizon - T)] + [(0, 0)] * (a.ndim - 2))
            a = jnp.swapaxes(a, 0, 1)                                  # (T', B, ...)
            return a.reshape((K, horizon) + a.shape[1:])

        def batch_metrics(ms):
            ys = ms["outputs"].reshape((-1,) + ms["outputs"].shape[2:])[:T]    # (T, B, ...)
            out, wm = readout_view(rec.readout, jnp.swapaxes(ys, 0, 1), m, w)
            value = jnp.sum(ms["loss"])
            return {"loss": value, **metrics(out, y, wm.astype(value.dtype))}

        ws = chunks(w)
        return Segments(rec.init_carry(x[:, 0]), (chunks(x), chunks(m), chunks(d), ws),
                        jnp.sum(ws, axis=(1, 2)) > 0, chunk_grad_fn, batch_metrics)

    return segments_fn


def truncated_bptt(model, horizon: int, loss="quadratic", metrics: Callable = sequence_metrics,
                   x_key: str = "x", y_key: str = "y", mask_key: str = "time_mask") -> Callable:
    """grad_fn for truncated BPTT with horizon N_t = ``horizon`` frames (Williams & Peng 1990):
    the sum over chunks of each chunk's gradient, the state carried across chunk boundaries
    under stop_gradient (one update per batch; for per-chunk updates see truncated_bptt_step).
    A last, shorter chunk is padded with masked frames. horizon >= T gives BPTT exactly.
    """
    return segment_sum_grad_fn(truncated_bptt_segments(model, horizon, loss, metrics, x_key,
                                                       y_key, mask_key))


def truncated_bptt_step(model, tx: optax.GradientTransformation, horizon: int,
                        loss="quadratic", metrics: Callable = sequence_metrics,
                        x_key: str = "x", y_key: str = "y", mask_key: str = "time_mask",
                        nan_guard: bool = True) -> Callable:
    """Train step ``step(state, batch) -> (state, metrics)`` for truncated BPTT with one
    optimiser update per chunk of ``horizon`` frames (W(t + N_t) = W(t) - lambda g_k):

        for k = 1..K:  g_k, X_k = grad of chunk k's loss from X_{k-1} (stop_gradient) at theta_k
                       theta_{k+1} = theta_k + tx(g_k)

    g_k uses the whole-batch frame weights (w sums to 1 over the batch, so the K gradients sum
    to the truncated_bptt gradient when theta does not move). A chunk with no weight (only
    padding) makes no update. ``state.step`` counts batches, not chunk updates, so fit's
    epochs and resumption work unchanged; metrics['loss'] is the sum of the chunk losses, each
    computed with the weights of its time. Built by jdl.train.make_online_step (its NaN guard,
    rng rule and update).
    """
    return make_online_step(truncated_bptt_segments(model, horizon, loss, metrics, x_key, y_key,
                                                    mask_key), tx, nan_guard)
