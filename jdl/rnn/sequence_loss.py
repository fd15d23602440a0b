"""The sequence loss shared by jdl.rnn's learning rules (BPTT, truncated BPTT, RTRL, the
gradient-lag tool): a recurrent model as pure functions (``Recurrence``), per-frame loss weights
and targets, and the weighted loss

    E(theta) = sum_{n, t} w_{n t} l(Y_n(t), D_n(t)),

with w from ``frame_weights`` (a mean over the real frames for readout 'all', over the sequences'
last frames for readout 'last'; see jdl.rnn.bptt for the rules that differentiate it).

Batches: ``batch['x']`` (batch, T, features); ``batch['y']`` targets per frame (batch, T, ...)
for models with readout 'all', per sequence (batch, ...) for readout 'last';
``batch['time_mask']`` (batch, T), optional, 1 on real frames and 0 on end padding.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jdl.losses import get_loss
from jdl.nn.recurrent import RNN, carry_dtype, check_frames, last_frame


# ------------------------------------------------------------------ the model as pure functions


class Recurrence(NamedTuple):
    """A recurrent model as pure functions over its two groups of parameters.

    transition(cell_params, carry, x_t) -> (carry, h_t)   the cell f (any leading batch dims)
    output(readout_params, h_t) -> y_t                     the readout g (identity if none)
    init_carry(x_t) -> zero carry for inputs x_t of shape (*batch, features)
    split(params) -> (cell_params, readout_params);  merge(cell_part, readout_part) -> params
    readout: 'all' (a loss on every frame's output) or 'last' (on each sequence's last frame)
    """
    transition: Callable
    output: Callable
    init_carry: Callable
    split: Callable
    merge: Callable
    readout: str


def recurrence(model) -> Recurrence:
    """The Recurrence of a jdl.nn.recurrent SequenceModel, CanonicalRNN or RNN (or any module
    with ``make_cell()``, ``make_readout()`` and ``readout`` whose parameters are
    {'cell': ..., 'readout': ...})."""
    if isinstance(model, RNN):
        cell, readout, mode = model.cell, None, "all"
    elif hasattr(model, "make_cell"):
        cell, readout = model.make_cell(), model.make_readout()
        mode = getattr(model, "readout", "all")
    else:
        raise TypeError(f"no recurrence known for {type(model).__name__}: expected a "
                        f"SequenceModel, CanonicalRNN or RNN")

    def transition(cell_params, carry, x_t):
        return cell.apply({"params": cell_params}, carry, x_t)

    def output(readout_params, h):
        return h if readout is None else readout.apply({"params": readout_params}, h)

    def init_carry(x_t):
        return cell.initialize_carry(None, x_t.shape, carry_dtype(cell, x_t))

    def split(params):
        return params["cell"], (params["readout"] if readout is not None else {})

    def merge(cell_part, readout_part):
        return {"cell": cell_part, **({"readout": readout_part} if readout is not None else {})}

    return Recurrence(transition, output, init_carry, split, merge, mode)


# ----------------------------------------------------------------------- per-frame loss weights


def float_dtype(x):
    """x's dtype if floating, else float32: the dtype of the frame weights."""
    x = jnp.asarray(x)
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32


def frame_weights(readout: str, time_mask=None, example_mask=None, shape=None, dtype=jnp.float32):
    """Weights w (batch, T) of the frame losses, summing to 1 over the counted frames:

    readout 'all':  w_{n t} = e_n m_{n t} / sum_{n t} e_n m_{n t}   (mean over real frames)
    readout 'last': w_{n t} = e_n [t = T_n - 1] / sum_n e_n          (mean over sequences)

    with m the time mask (ones if None), T_n = sum_t m_{n t} and e the example mask (ones).
    ``shape`` = (batch, T) is needed when time_mask is None. The denominators are at least 1,
    as in jdl.losses.
    """
    if time_mask is None:
        time_mask = jnp.ones(shape, dtype)
    m = jnp.asarray(time_mask).astype(dtype)
    e = (jnp.ones(m.shape[:1], dtype) if example_mask is None
         else jnp.asarray(example_mask).astype(dtype))
    if readout == "all":
        w = e[:, None] * m
    elif readout == "last":
        last = jnp.maximum(jnp.sum(m, axis=1).astype(jnp.int32) - 1, 0)
        w = e[:, None] * jax.nn.one_hot(last, m.shape[1], dtype=dtype)
    else:
        raise ValueError(f"readout must be 'all' or 'last', got {readout!r}")
    return w / jnp.maximum(jnp.sum(w), 1.0)


def frame_targets(readout: str, targets, T: int):
    """Targets per frame (batch, T, ...): as given for 'all', each sequence's target repeated
    on every frame for 'last' (only its last real frame has a weight)."""
    targets = jnp.asarray(targets)
    if readout == "last":
        return jnp.broadcast_to(targets[:, None], targets.shape[:1] + (T,) + targets.shape[1:])
    if targets.ndim < 2 or targets.shape[1] != T:
        raise ValueError(f"readout 'all' needs targets (batch, T={T}, ...), got {targets.shape}")
    return targets


def single_loss(loss_fn: Callable) -> Callable:
    """l(y, d) for one output y and one target d, from a jdl batch loss."""
    return lambda y, d: loss_fn(y[None], d[None])


def weighted_loss(loss_fn: Callable, outputs, targets, weights):
    """sum_i w_i l(outputs_i, targets_i) over the leading ``weights.ndim`` axes."""
    lead = weights.shape
    o = outputs.reshape((-1,) + outputs.shape[len(lead):])
    d = jnp.asarray(targets).reshape((-1,) + jnp.shape(targets)[len(lead):])
    per = jax.vmap(single_loss(get_loss(loss_fn)))(o, d)
    return jnp.sum(weights.reshape(-1).astype(per.dtype) * per)


def sequence_metrics(outputs, targets, weights) -> dict:
    """Weighted accuracy sum_i w_i [argmax outputs_i = targets_i] for integer targets."""
    targets = jnp.asarray(targets)
    if jnp.issubdtype(targets.dtype, jnp.integer) and outputs.ndim == targets.ndim + 1:
        predicted = jnp.argmax(outputs, axis=-1).astype(targets.dtype)
        correct = (predicted == targets).astype(weights.dtype)
        return {"accuracy": jnp.sum(weights * correct)}
    return {}


def sequence_batch(batch, x_key: str = "x", y_key: str = "y", mask_key: str | None = "time_mask"):
    """(x (batch, T, features), time mask (batch, T) or None, targets) of a batch, checked."""
    x = jnp.asarray(batch[x_key])
    if x.ndim < 3:
        raise ValueError(f"batch[{x_key!r}] must be (batch, T, features), got shape {x.shape}")
    check_frames(x, f"batch[{x_key!r}]")
    m = batch.get(mask_key) if mask_key else None
    if m is not None and tuple(m.shape) != x.shape[:2]:
        raise ValueError(f"batch[{mask_key!r}] must be (batch, T) = {x.shape[:2]}, got {m.shape}")
    return x, m, batch[y_key]


def readout_view(readout: str, outputs, m, w):
    """The outputs and weights the metrics see: per frame for 'all', last frame for 'last'."""
    if readout == "last":
        return last_frame(outputs, m), jnp.sum(w, axis=1)
    return outputs, w


def frame_data(readout: str, batch, x_key: str = "x", y_key: str = "y",
               mask_key: str | None = "time_mask"):
    """(x, m, y, w, d) of a batch for the online rules: inputs x (batch, T, ...), time mask m
    (batch, T) as booleans (all True if absent), targets y as given, frame weights w
    (``frame_weights``) and per-frame targets d (``frame_targets``)."""
    x, m, y = sequence_batch(batch, x_key, y_key, mask_key)
    B, T = x.shape[:2]
    m = jnp.ones((B, T), bool) if m is None else jnp.asarray(m).astype(bool)
    w = frame_weights(readout, m, dtype=float_dtype(x))
    return x, m, y, w, frame_targets(readout, y, T)
