"""Synthetic and image-derived sequence tasks for recurrent networks, generated on the host.

Every generator is a pure function of its arguments: ``numpy.random.default_rng(seed)`` draws
everything, so the same call gives the same arrays on every machine. Each returns a dict of
arrays with a common leading (example) dimension, as :func:`jdl.train.fit` takes them:
``{'x': ..., 'y': ...}``. Every time step of every example counts, so there is no ``'mask'``
(the training loop adds its own per-example mask when it pads the last evaluation batch).

- :func:`adding_problem`: the adding problem of Hochreiter & Schmidhuber (1997, experiment 4),
  in the form of Le, Jaitly & Hinton (2015) and Arjovsky, Shah & Bengio (2016).
- :func:`copy_task`: the copy-memory task of Arjovsky, Shah & Bengio (2016), after Hochreiter &
  Schmidhuber (1997, experiment 2).
- :func:`delayed_echo`: output the input of ``delay`` frames ago, at every frame (a per-frame
  target, for comparing online learning rules: BPTT, truncated BPTT, RTRL).
- :func:`fashion_rows`: Fashion-MNIST read row by row, 28 steps of 28 pixels, as Le, Jaitly &
  Hinton (2015) read MNIST.

References:
    S. Hochreiter, J. Schmidhuber (1997). Long short-term memory. Neural Computation 9(8).
    Q. V. Le, N. Jaitly, G. E. Hinton (2015). A simple way to initialize recurrent networks of
    rectified linear units. arXiv:1504.00941.
    M. Arjovsky, A. Shah, Y. Bengio (2016). Unitary evolution recurrent neural networks. ICML.
"""
from __future__ import annotations

import math

import numpy as np

from jdl.data import fashion_mnist

ADDING_BASELINE_MSE = 1.0 / 6.0
"""MSE of the constant prediction 1 on the adding problem: Var(U1 + U2) = 2 * 1/12 = 1/6."""


def _check_positive_int(name: str, v, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def adding_problem(n: int, T: int, seed: int = 0) -> dict:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015; Arjovsky et al. 2016).

    Each example is a sequence of ``T`` steps with two input channels:

    - ``x[:, t, 0] ~ U(0, 1)``, i.i.d.;
    - ``x[:, t, 1]`` a marker, 1 at exactly two steps and 0 elsewhere: one step drawn uniformly
      in the first half ``[0, T // 2)`` and one in the second half ``[T // 2, T)``, as in
      Arjovsky et al. (2016) (Le et al. draw both positions anywhere).

    The target is the sum of the two marked values, ``y = sum_t x[t, 0] * x[t, 1]``, shape
    (n, 1). It is read out after the last step, so the network must carry the first marked
    value across at least ``T // 2`` steps.

    Baseline: the constant prediction ``y_hat = 1 = E[U1 + U2]`` has mean squared error
    ``Var(U1 + U2) = 2 / 12 = 1/6 ~ 0.167`` (:data:`ADDING_BASELINE_MSE`); a model "solves"
    the task when it goes clearly below this.

    Returns ``{'x': float32 (n, T, 2), 'y': float32 (n, 1)}``.
    """
    n = _check_positive_int("n", n)
    T = _check_positive_int("T", T, minimum=2)
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(n, T)).astype(np.float32)
    half = T // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, T, size=n)
    marker = np.zeros((n, T), np.float32)
    rows = np.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    y = (values[rows, first] + values[rows, second])[:, None].astype(np.float32)
    return {"x": np.stack([values, marker], axis=-1), "y": y}


def copy_vocab_size(n_symbols: int = 8) -> int:
    """Tokens of :func:`copy_task`: blank 0, symbols 1..n_symbols, delimiter n_symbols + 1."""
    return n_symbols + 2


def copy_task(n: int, T: int, seed: int = 0, n_symbols: int = 8, length: int = 10) -> dict:
    """The copy-memory task of Arjovsky, Shah & Bengio (2016, section 4.1).

    Tokens: 0 is the blank, ``1..n_symbols`` the symbols, ``n_symbols + 1`` the delimiter (with
    the defaults: blank 0, symbols 1..8, delimiter 9, as the paper's a_0, a_1..a_8, a_9). An
    input sequence has ``T + 2 * length`` steps (T + 20 with the defaults):

    - ``length`` symbols drawn uniformly and independently from ``1..n_symbols``,
    - ``T - 1`` blanks, then the delimiter,
    - ``length`` blanks, during which the network must output the symbols.

    The target is ``T + length`` blanks followed by the same ``length`` symbols. The network
    emits a distribution over the ``n_symbols + 2`` tokens at every step; the loss is the
    cross-entropy averaged over all ``T + 2 * length`` steps.

    The models embed the integer tokens (or use :func:`one_hot`); ``x`` is not one-hot here.

    Baseline (:func:`copy_baseline`): a memoryless strategy outputs blank for the first
    ``T + length`` steps and the uniform distribution over the symbols for the last ``length``,
    with cross-entropy ``length * log(n_symbols) / (T + 2 * length)`` nats per step,
    ``10 log 8 / (T + 20)`` with the defaults.

    Returns ``{'x': int32 (n, T + 2 length), 'y': int32 (n, T + 2 length)}``.
    """
    n = _check_positive_int("n", n)
    T = _check_positive_int("T", T)
    n_symbols = _check_positive_int("n_symbols", n_symbols)
    length = _check_positive_int("length", length)
    rng = np.random.default_rng(seed)
    L = T + 2 * length
    symbols = rng.integers(1, n_symbols + 1, size=(n, length), dtype=np.int32)
    x = np.zeros((n, L), np.int32)
    x[:, :length] = symbols
    x[:, length + T - 1] = n_symbols + 1
    y = np.zeros((n, L), np.int32)
    y[:, T + length:] = symbols
    return {"x": x, "y": y}


def copy_baseline(T: int, n_symbols: int = 8, length: int = 10) -> float:
    """Cross-entropy (nats per step) of the memoryless copy-task strategy (Arjovsky et al. 2016).

    It predicts blank with probability 1 for the first ``T + length`` steps (loss 0) and the
    uniform distribution over the ``n_symbols`` symbols for the last ``length`` steps (loss
    ``log n_symbols`` each): ``length * log(n_symbols) / (T + 2 * length)``. It is the best
    loss reachable without memory, since the symbols to recall are independent of everything
    seen after them.
    """
    T = _check_positive_int("T", T)
    return length * math.log(n_symbols) / (T + 2 * length)


def delayed_echo(n: int, T: int, delay: int = 3, seed: int = 0) -> dict:
    """The delayed echo: a stream of random signs u(t) in {-1, +1}, and at every frame t the
    target y(t) = u(t - delay) (0 for t < delay). The net must hold the last ``delay`` inputs
    in its state; a learning rule whose gradient does not reach ``delay`` frames back (truncated
    BPTT with a horizon N_t <= delay, counted from the chunk start) sees little of the signal.

    Baseline: the constant prediction 0 has mean squared error (T - delay) / T (1 on every
    frame with a target, 0 on the first ``delay``), about 1 for T >> delay.

    Returns ``{'x': float32 (n, T, 1), 'y': float32 (n, T, 1)}``.
    """
    n = _check_positive_int("n", n)
    T = _check_positive_int("T", T)
    delay = _check_positive_int("delay", delay, minimum=0)
    if delay >= T:
        raise ValueError(f"delay must be below T = {T}, got {delay}")
    u = np.random.default_rng(seed).choice(np.array([-1.0, 1.0], np.float32), size=(n, T))
    y = np.zeros_like(u)
    y[:, delay:] = u[:, :T - delay]
    return {"x": u[..., None], "y": y[..., None]}


def one_hot(tokens, num_classes: int, dtype=np.float32) -> np.ndarray:
    """``tokens`` (any shape, integers in [0, num_classes)) -> one-hot array of shape (..., num_classes)."""
    tokens = np.asarray(tokens)
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"one_hot needs integer tokens, got dtype {tokens.dtype}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= num_classes):
        raise ValueError(f"tokens must lie in [0, {num_classes}), got range "
                         f"[{int(tokens.min())}, {int(tokens.max())}]")
    return np.eye(num_classes, dtype=dtype)[tokens]


def fashion_rows(split: str = "train", name: str = "fashion_mnist",
                 data_dir: str | None = None) -> dict:
    """Row-by-row (Fashion-)MNIST: each image is a sequence of 28 steps, step t being row t.

    As Le, Jaitly & Hinton (2015) read MNIST (there pixel by pixel, 784 steps; row by row is
    the 28-step version). Images come from :func:`jdl.data.fashion_mnist.load` (same search
    path, same :class:`~jdl.data.fashion_mnist.DatasetNotFoundError` when missing) and are
    scaled to [0, 1] as ``x = pixel / 255``.

    Returns ``{'x': float32 (N, 28, 28) (steps, features), 'y': int32 (N,)}``.
    """
    s = fashion_mnist.load(split, name=name, data_dir=data_dir)
    x = s.images[..., 0].astype(np.float32) / np.float32(255.0)
    return {"x": x, "y": s.labels.astype(np.int32)}
