"""Recurrent networks (Flax linen): cells, their unrolling in time, the lecture's canonical form.

The lecture's *canonical form* of a recurrent network: a NON-recurrent network f computes, at
each time t, the state variables and the output from the previous state and the external input,

    (X(t), Y(t)) = f(X(t-1), U(t)),        X(0) = 0,

and *time unfolding* repeats the same f (the same weights) once per frame, which turns the
recurrent net into a deep feed-forward one, trainable by back-propagation through time
(jdl.rnn.bptt) or by real-time recurrent learning (jdl.rnn.rtrl).

A *cell* is one such f, written as flax writes its cells:

    cell(carry, x_t) -> (new_carry, h_t),       carry = X(t-1), new_carry = X(t)

working on any leading batch dimensions, with ``cell.initialize_carry(rng, input_shape)``
building the zero state for inputs of ``input_shape = (*batch, features)`` (the rng is ignored
and may be None). Cells here: ElmanCell (tanh RNN, and IRNN), LSTMCell, GRUCell, CanonicalCell
(any module f). Matrices are stored as Dense kernels acting on row vectors, ``x @ W_x`` with
W_x of shape (in, out), and the equations below are written that way: h = tanh(x W_x + h W_h
+ b) is the column-vector h = tanh(W_x^T x + W_h^T h + b).

``RNN(cell)`` unrolls a cell over time with ``nn.scan`` (one set of weights, broadcast over the
frames); ``SequenceModel`` is a cell + a Dense readout for sequence classification/regression;
``CanonicalRNN`` is the canonical form with an arbitrary module f. ``FusedLSTM`` runs a whole
LSTM sequence as one function with a hand-written backward pass (jdl.nn.fused_recurrent), with
LSTMCell's parameters; SequenceModel('lstm') uses it unless ``fused=False``.

Variable-length sequences: a ``mask`` of shape (batch, T), 1 on real frames and 0 on padding
(padding at the end). Where the mask is 0 the carry is frozen (X(t) = X(t-1)) and the output
is zero, so the final carry is the state after each sequence's last real frame and a padded
sequence gives the same state and outputs as the unpadded one.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jdl.nn.activations import get_activation
from jdl.nn.fused_recurrent import lstm_sequence
from jdl.nn.initializers import DEFAULT_KERNEL_INIT

Array = jax.Array


def identity_init(scale: float = 1.0) -> Callable:
    """Initializer of a square matrix to ``scale * I`` (the IRNN's recurrent matrix)."""
    def init(key, shape, dtype=jnp.float32):
        del key
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"identity_init needs a square matrix shape, got {shape}")
        return scale * jnp.eye(shape[0], dtype=dtype)
    return init


def _per_gate(init: Callable, gates: int) -> Callable:
    """Initialise a fused (n, gates * n) recurrent kernel one (n, n) gate block at a time, so an
    orthogonal initializer gives each gate an orthogonal matrix (as separate kernels would)."""
    def block_init(key, shape, dtype=jnp.float32):
        n, total = shape
        keys = jax.random.split(key, gates)
        return jnp.concatenate([init(k, (n, total // gates), dtype) for k in keys], axis=-1)
    return block_init


def _zeros_carry(batch_dims, features, dtype):
    return jnp.zeros(tuple(batch_dims) + (features,), dtype)


def affine2(x, W_x, h, W_h, b):
    """x W_x + h W_h + b computed as ONE matmul, [x, h] [W_x; W_h] + b: one GEMM per frame
    (and one per frame for each gradient) instead of two. On XLA's CPU backend this makes an
    LSTM training step (batch 128, input 28, hidden 128) about 10% faster; the parameters stay
    separate. Leading (batch) dimensions of x and h are broadcast together."""
    lead = jnp.broadcast_shapes(x.shape[:-1], h.shape[:-1])
    x = jnp.broadcast_to(x, lead + x.shape[-1:])
    h = jnp.broadcast_to(h, lead + h.shape[-1:])
    return jnp.concatenate([x, h], axis=-1) @ jnp.concatenate([W_x, W_h], axis=0) + b


def _check_features(features):
    if int(features) <= 0:
        raise ValueError(f"features must be a positive number of hidden units, got {features}")


class RecurrentCell(nn.RNNCellBase):
    """Base of jdl's cells: ``__call__(carry, x) -> (new_carry, h)`` and
    ``initialize_carry(rng, input_shape, dtype=None)`` (zeros; the rng is ignored). They also
    plug into ``flax.linen.RNN``."""
    features: int = 8
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        _check_features(self.features)
        super().__post_init__()

    @nn.nowrap
    def initialize_carry(self, rng, input_shape, dtype=None):
        del rng
        return _zeros_carry(input_shape[:-1], self.features, dtype or self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


class ElmanCell(RecurrentCell):
    """Simple recurrent network (Elman 1990, 'Finding structure in time'):

        h_t = phi(x_t W_x + h_{t-1} W_h + b),        carry = output = h_t

    with phi = tanh by default. Parameters 'W_x' (in, n), 'W_h' (n, n), 'b' (n,).

    ``irnn=True`` gives the IRNN of Le, Jaitly & Hinton (2015, 'A simple way to initialize
    recurrent networks of rectified linear units'): phi = ReLU, W_h initialised to the identity
    (times ``irnn_scale``, 1 in the paper) and b to 0, so that at initialisation the state is
    copied forward and gradients neither vanish nor explode through the recurrence. W_x keeps
    ``kernel_init``.

    Attributes: features (n), activation (a jdl name or callable; default 'tanh', or 'relu'
    with irnn), irnn, irnn_scale, kernel_init (W_x; lecun uniform), recurrent_init (W_h;
    orthogonal, or identity with irnn), bias_init (zeros), param_dtype.
    """
    activation: Any = None
    irnn: bool = False
    irnn_scale: float = 1.0
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    recurrent_init: Callable | None = None
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, carry, x):
        n = self.features
        act = get_activation(self.activation or ("relu" if self.irnn else "tanh"))
        rec_init = self.recurrent_init or (identity_init(self.irnn_scale) if self.irnn
                                           else nn.initializers.orthogonal())
        bias_init = nn.initializers.zeros_init() if self.irnn else self.bias_init
        W_x = self.param("W_x", self.kernel_init, (x.shape[-1], n), self.param_dtype)
        W_h = self.param("W_h", rec_init, (n, n), self.param_dtype)
        b = self.param("b", bias_init, (n,), self.param_dtype)
        h = act(affine2(x, W_x, carry, W_h, b))
        return h, h


class LSTMCell(RecurrentCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, 'Long short-term memory') with the
    forget gate of Gers, Schmidhuber & Cummins (2000, 'Learning to forget: continual prediction
    with LSTM'); no peepholes:

        i_t = sigmoid(x_t W_xi + h_{t-1} W_hi + b_i)       input gate
        f_t = sigmoid(x_t W_xf + h_{t-1} W_hf + b_f)       forget gate
        g_t = tanh   (x_t W_xg + h_{t-1} W_hg + b_g)       candidate cell input
        o_t = sigmoid(x_t W_xo + h_{t-1} W_ho + b_o)       output gate
        c_t = f_t * c_{t-1} + i_t * g_t                    memory cell (the constant error carousel)
        h_t = o_t * tanh(c_t)

    carry = (c_t, h_t), output h_t (flax's LSTMCell convention and equations). The gate blocks
    are fused in the order [i, f, g, o]: 'W_x' (in, 4n), 'W_h' (n, 4n), 'b' (4n,). b_f starts
    at ``forget_bias`` (1 by default: the cell remembers at initialisation, as Gers et al.
    advise and Jozefowicz, Zaremba & Sutskever 2015 confirm); the other biases at 0.
    """
    forget_bias: float = 1.0
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    recurrent_init: Callable = nn.initializers.orthogonal()

    @nn.compact
    def __call__(self, carry, x):
        c, h = carry
        W_x, W_h, b = _lstm_params(self, x.shape[-1])
        z = affine2(x, W_x, h, W_h, b)                   # x W_x + h W_h + b, one matmul
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h

    @nn.nowrap
    def initialize_carry(self, rng, input_shape, dtype=None):
        del rng
        z = _zeros_carry(input_shape[:-1], self.features, dtype or self.param_dtype)
        return (z, z)


def _lstm_params(module, in_features):
    """Declare an LSTM's parameters 'W_x' (in, 4n), 'W_h' (n, 4n), 'b' (4n,) on ``module`` (an
    LSTMCell or FusedLSTM, inside its compact method): the same names, shapes, initialisers
    and order for both, so that both give the same parameters for the same rng."""
    n = module.features
    forget_bias = module.forget_bias

    def bias_init(key, shape, dtype=jnp.float32):
        del key
        return jnp.zeros(shape, dtype).at[n:2 * n].set(forget_bias)

    W_x = module.param("W_x", _per_gate(module.kernel_init, 4), (in_features, 4 * n),
                       module.param_dtype)
    W_h = module.param("W_h", _per_gate(module.recurrent_init, 4), (n, 4 * n),
                       module.param_dtype)
    b = module.param("b", bias_init, (4 * n,), module.param_dtype)
    return W_x, W_h, b


class FusedLSTM(nn.Module):
    """A whole LSTM sequence in one call, with a hand-written backward pass
    (jdl.nn.fused_recurrent.lstm_sequence): the function LSTMCell computes when scanned, with
    LSTMCell's parameters ('W_x', 'W_h', 'b', same initialisers), so the parameters of one
    work with the other. Not a cell: ``__call__(x, mask=None, initial_carry=None) ->
    ((c_T, h_T), outputs)`` with x (batch, T, features), like ``scan_cell``. SequenceModel
    uses it for cell='lstm' unless ``fused=False``; the equations of its backward pass are in
    jdl/nn/fused_recurrent.py.
    """
    features: int = 8
    param_dtype: Any = jnp.float32
    forget_bias: float = 1.0
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    recurrent_init: Callable = nn.initializers.orthogonal()

    def __post_init__(self):
        _check_features(self.features)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, mask=None, initial_carry=None):
        if x.ndim != 3:
            raise ValueError(f"FusedLSTM expects inputs (batch, T, features), got {x.shape}")
        check_frames(x)
        if mask is not None and mask.shape != x.shape[:2]:
            raise ValueError(f"mask must have shape (batch, T) = {x.shape[:2]}, got "
                             f"{mask.shape}")
        W_x, W_h, b = _lstm_params(self, x.shape[-1])
        if initial_carry is None:
            initial_carry = self.initialize_carry(None, x.shape[:1] + x.shape[2:],
                                                  carry_dtype(self, x))
        c0, h0 = initial_carry
        outputs, carry = lstm_sequence(W_x, W_h, b, x, c0, h0, mask)
        return carry, outputs

    @nn.nowrap
    def initialize_carry(self, rng, input_shape, dtype=None):
        del rng
        z = _zeros_carry(input_shape[:-1], self.features, dtype or self.param_dtype)
        return (z, z)


class GRUCell(RecurrentCell):
    """Gated recurrent unit (Cho et al. 2014, 'Learning phrase representations using RNN
    encoder-decoder for statistical machine translation'):

        r_t = sigmoid(x_t W_xr + h_{t-1} W_hr + b_r)                reset gate
        z_t = sigmoid(x_t W_xz + h_{t-1} W_hz + b_z)                update gate
        n_t = tanh(x_t W_xn + (r_t * h_{t-1}) W_hn + b_n)           candidate state
        h_t = z_t * h_{t-1} + (1 - z_t) * n_t                       carry = output = h_t

    ``reset_after=True`` applies the reset gate after the recurrent product, as cuDNN, PyTorch,
    Keras (reset_after=True) and flax's GRUCell do, with a second bias b_hn:

        n_t = tanh(x_t W_xn + b_n + r_t * (h_{t-1} W_hn + b_hn))

    Fused gate order [r, z, n]: 'W_x' (in, 3n), 'W_h' (n, 3n), 'b' (3n,), and 'b_hn' (n,) when
    reset_after. Biases start at 0.
    """
    reset_after: bool = False
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    recurrent_init: Callable = nn.initializers.orthogonal()
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, carry, x):
        h = carry
        n = self.features
        W_x = self.param("W_x", _per_gate(self.kernel_init, 3), (x.shape[-1], 3 * n),
                         self.param_dtype)
        W_h = self.param("W_h", _per_gate(self.recurrent_init, 3), (n, 3 * n), self.param_dtype)
        b = self.param("b", self.bias_init, (3 * n,), self.param_dtype)
        xr, xz, xn = jnp.split(x @ W_x + b, 3, axis=-1)
        hr, hz = jnp.split(h @ W_h[:, :2 * n], 2, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        if self.reset_after:
            b_hn = self.param("b_hn", self.bias_init, (n,), self.param_dtype)
            cand = jnp.tanh(xn + r * (h @ W_h[:, 2 * n:] + b_hn))
        else:
            cand = jnp.tanh(xn + (r * h) @ W_h[:, 2 * n:])
        h = z * h + (1.0 - z) * cand
        return h, h


class CanonicalCell(RecurrentCell):
    """One frame of the lecture's canonical form: any non-recurrent module ``f`` maps the
    previous state and the external input to the new state and the output,

        (X(t), Y(t)) = f(X(t-1), U(t)).

    ``f`` is called on the concatenation [X(t-1), U(t)] (shape (*batch, state_size + in)) and
    returns either a pair (X(t), Y(t)) or one array whose first ``state_size`` entries are X(t)
    and whose rest is Y(t) (e.g. a jdl MLP with num_outputs = state_size + outputs).
    ``state_activation`` (a jdl activation name or callable; default identity) is then applied
    to X(t). carry = X(t), output Y(t). ``features`` is unused: the state has ``state_size``
    entries.
    """
    f: nn.Module = None
    state_size: int = 1
    state_activation: Any = "identity"

    def __post_init__(self):
        if self.f is None:
            raise ValueError("CanonicalCell needs a module f")
        _check_features(self.state_size)
        super().__post_init__()

    def __call__(self, carry, u):
        out = self.f(jnp.concatenate([carry, u.astype(carry.dtype)], axis=-1))
        if isinstance(out, (tuple, list)):
            x, y = out
        else:
            if out.shape[-1] <= self.state_size:
                raise ValueError(f"f returns {out.shape[-1]} values; it must return the "
                                 f"state_size={self.state_size} state entries and the outputs")
            x, y = out[..., :self.state_size], out[..., self.state_size:]
        x = get_activation(self.state_activation)(x)
        return x.astype(carry.dtype), y

    @nn.nowrap
    def initialize_carry(self, rng, input_shape, dtype=None):
        del rng
        return _zeros_carry(input_shape[:-1], self.state_size, dtype or self.param_dtype)


def carry_dtype(cell, x) -> Any:
    """dtype of the zero initial carry for inputs x: the promotion of x's dtype and
    cell.param_dtype for floating inputs, param_dtype otherwise."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        # numpy's promotion: the same lattice, and allowed under strict dtype promotion
        return jax.dtypes.canonicalize_dtype(np.promote_types(x.dtype, cell.param_dtype))
    return jax.dtypes.canonicalize_dtype(cell.param_dtype)


def check_frames(x, name: str = "x", axis: int = 1) -> None:
    """Refuse sequences of no frame (x.shape[axis] == 0): a recurrent net maps T >= 1 inputs
    to T outputs and its final state X(T); T = 0 would fail deep inside JAX's scan."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) > axis and shape[axis] == 0:
        raise ValueError(f"{name}: sequences of length 0 (shape {shape}, axis {axis} is time); "
                         f"a recurrent net needs at least one frame per sequence")


def masked_step(cell_out, carry, m_t):
    """Freeze the carry and zero the output where the frame mask m_t (shape (*batch,)) is 0."""
    new_carry, y = cell_out
    if m_t is None:
        return new_carry, y
    keep = lambda new, old: jnp.where(m_t.reshape(m_t.shape + (1,) * (new.ndim - m_t.ndim)),
                                      new, old)
    new_carry = jax.tree.map(keep, new_carry, carry)
    return new_carry, keep(y, jnp.zeros_like(y))


def scan_cell(cell, x, mask=None, initial_carry=None, unroll: int = 1):
    """Unroll a BOUND cell (a submodule of the calling compact method) over axis 1 of x with
    ``nn.scan``, its parameters broadcast to every frame. Returns (final_carry, outputs)."""
    if x.ndim < 3:
        raise ValueError(f"recurrent nets expect inputs (batch, T, features), got {x.shape}")
    check_frames(x)
    if mask is not None and mask.shape != x.shape[:2]:
        raise ValueError(f"mask must have shape (batch, T) = {x.shape[:2]}, got {mask.shape}")
    carry = initial_carry
    if carry is None:
        carry = cell.initialize_carry(None, x.shape[:1] + x.shape[2:], carry_dtype(cell, x))

    def body(cell, carry, inputs):
        x_t, m_t = inputs
        return masked_step(cell(carry, x_t), carry, m_t)

    scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False},
                   in_axes=1, out_axes=1, unroll=unroll)
    return scan(cell, carry, (x, None if mask is None else mask.astype(bool)))


class RNN(nn.Module):
    """Unrolls ``cell`` over time with ``nn.scan`` (the weights broadcast to every frame):

        X(0) = initial_carry (zeros by default),  (X(t), h_t) = cell(X(t-1), x_t), t = 1..T

    ``__call__(x, mask=None, initial_carry=None) -> (final_carry, outputs)`` with x of shape
    (batch, T, features) and outputs (batch, T, out). With ``mask`` (batch, T) the carry is
    frozen and the output zero on padded frames (see the module docstring). Parameters:
    {'cell': ...}.
    """
    cell: nn.Module
    unroll: int = 1

    @nn.compact
    def __call__(self, x, mask=None, initial_carry=None):
        return scan_cell(self.cell, x, mask, initial_carry, self.unroll)


CELLS = {"elman": lambda n, dt, **kw: ElmanCell(n, dt, **kw),
         "tanh": lambda n, dt, **kw: ElmanCell(n, dt, **kw),
         "irnn": lambda n, dt, **kw: ElmanCell(n, dt, irnn=True, **kw),
         "lstm": lambda n, dt, **kw: LSTMCell(n, dt, **kw),
         "gru": lambda n, dt, **kw: GRUCell(n, dt, **kw)}


def make_cell(cell, hidden: int = 8, param_dtype=jnp.float32) -> nn.Module:
    """An unbound cell by name ('elman' or 'tanh', 'irnn', 'lstm', 'gru'), or a cell module
    as is."""
    if isinstance(cell, nn.Module):
        return cell
    try:
        return CELLS[cell](hidden, param_dtype, parent=None)
    except KeyError:
        raise ValueError(f"unknown cell {cell!r}; known: {sorted(CELLS)} or a cell "
                         f"module") from None


def last_frame(outputs, mask=None):
    """outputs[:, T_n - 1] for each sequence n (T_n its number of real frames; T without mask)."""
    if mask is None:
        return outputs[:, -1]
    last = jnp.maximum(jnp.sum(mask.astype(jnp.int32), axis=1) - 1, 0)
    return outputs[jnp.arange(outputs.shape[0]), last]


def _readout_layer(num_outputs, param_dtype, **kw):
    return nn.Dense(num_outputs, kernel_init=DEFAULT_KERNEL_INIT, param_dtype=param_dtype, **kw)


class SequenceModel(nn.Module):
    """A recurrent cell unrolled in time with a Dense readout: y_t = h_t W_o + b_o.

    Attributes: cell ('elman' | 'tanh' | 'irnn' | 'lstm' | 'gru', or a cell module), hidden
    (units of a named cell), num_outputs (None: no readout, the outputs are the h_t), readout
    ('all': an output per frame, shape (batch, T, num_outputs), for sequence labelling and
    regression; 'last': the output of each sequence's last real frame, shape (batch,
    num_outputs), for sequence classification), param_dtype (of a named cell and the readout),
    unroll (frames per scan iteration; the scanned path only), fused.

    ``fused`` (default True): with cell='lstm' (the name; a cell module is always scanned) the
    sequence runs as FusedLSTM, one function with a hand-written backward pass
    (jdl/nn/fused_recurrent.py, 1.25-1.45x faster BPTT on the 2-core CPU, see BUILD_NOTES.md),
    with the same parameters as the scanned LSTMCell and the same results to rounding; masks
    and initial carries are supported. ``fused=False`` scans the cell with ``nn.scan``, which
    forward-mode differentiation (jax.jvp, jacfwd) needs. jdl.rnn's RTRL, truncated BPTT and
    Jacobian tools use the cell (``make_cell``), fused or not.

    ``__call__(x, mask=None, train=False, initial_carry=None, return_carry=False)``; ``train``
    is accepted for jdl.train's calling convention and unused. Parameters: {'cell': ...,
    'readout': {'kernel', 'bias'}}.
    """
    cell: Any = "lstm"
    hidden: int = 8
    num_outputs: int | None = 1
    readout: str = "all"
    param_dtype: Any = jnp.float32
    unroll: int = 1
    fused: bool = True

    def __post_init__(self):
        if self.readout not in ("all", "last"):
            raise ValueError(f"readout must be 'all' or 'last', got {self.readout!r}")
        if self.num_outputs is not None and self.num_outputs <= 0:
            raise ValueError(f"num_outputs must be positive or None, got {self.num_outputs}")
        if not isinstance(self.cell, nn.Module):
            if self.cell not in CELLS:
                raise ValueError(f"unknown cell {self.cell!r}; known: {sorted(CELLS)} or a "
                                 f"cell module")
            _check_features(self.hidden)
        super().__post_init__()

    @nn.nowrap
    def make_cell(self) -> nn.Module:
        """The unbound cell; apply it with params['cell']."""
        return make_cell(self.cell, self.hidden, self.param_dtype)

    @nn.nowrap
    def make_readout(self) -> nn.Module | None:
        """The unbound readout layer, applied with params['readout']; None without one."""
        if self.num_outputs is None:
            return None
        return _readout_layer(self.num_outputs, self.param_dtype, parent=None)

    @nn.compact
    def __call__(self, x, mask=None, train: bool = False, initial_carry=None,
                 return_carry: bool = False):
        del train
        if self.fused and isinstance(self.cell, str) and self.cell == "lstm" and x.ndim == 3:
            carry, h = FusedLSTM(self.hidden, self.param_dtype, name="cell")(x, mask,
                                                                            initial_carry)
        else:
            cell = (self.cell if isinstance(self.cell, nn.Module)
                    else CELLS[self.cell](self.hidden, self.param_dtype, name="cell"))
            carry, h = scan_cell(cell, x, mask, initial_carry, self.unroll)
        if self.readout == "last":
            h = last_frame(h, mask)
        if self.num_outputs is not None:
            h = _readout_layer(self.num_outputs, self.param_dtype, name="readout")(h)
        return (carry, h) if return_carry else h


class CanonicalRNN(nn.Module):
    """The lecture's canonical form unrolled in time: (X(t), Y(t)) = f(X(t-1), U(t)) for
    t = 1..T from X(0) = 0, f any non-recurrent module (see CanonicalCell).

    ``__call__(u, mask=None, train=False, initial_carry=None, return_carry=False)`` returns
    Y of shape (batch, T, outputs) (and the final state X(T) first with return_carry).
    Parameters: {'cell': {'f': ...}}. Every Y(t) is an output (readout 'all', no readout layer).
    """
    f: nn.Module
    state_size: int
    state_activation: Any = "identity"
    param_dtype: Any = jnp.float32
    unroll: int = 1
    readout = "all"
    num_outputs = None

    @nn.nowrap
    def make_cell(self) -> nn.Module:
        """The unbound cell; apply it with params['cell']."""
        # f is re-created unbound so that it is adopted by the cell (params under cell/f)
        return CanonicalCell(f=self.f.clone(parent=None, name=None), state_size=self.state_size,
                             state_activation=self.state_activation,
                             param_dtype=self.param_dtype, parent=None)

    @nn.nowrap
    def make_readout(self):
        return None

    @nn.compact
    def __call__(self, u, mask=None, train: bool = False, initial_carry=None,
                 return_carry: bool = False):
        del train
        cell = CanonicalCell(f=self.f.clone(parent=None, name=None), state_size=self.state_size,
                             state_activation=self.state_activation,
                             param_dtype=self.param_dtype, name="cell")
        carry, y = scan_cell(cell, u, mask, initial_carry, self.unroll)
        return (carry, y) if return_carry else y
