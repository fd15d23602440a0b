"""A recurrent network with time delays on its connections, as the non-recurrent step f of the
lecture's canonical form (slides "Recurrent Neural Networks: time-delay for each connection;
equivalent form" and "Canonical form of RNN").

The network with delays (a NARX network, Narendra & Parthasarathy 1990; Lin, Horne, Tino &
Giles 1996): n units whose output at time t takes the input through connections of delays
0..p and its own past outputs through connections of delays 1..q,

    y(t) = phi( sum_{tau=0..p} u(t - tau) A_tau + sum_{tau=1..q} y(t - tau) B_tau + b ),

with u(t) = 0 and y(t) = 0 for t <= 0 (A_tau: (m, n), B_tau: (n, n)). Its canonical form
(X(t), Y(t)) = f(X(t-1), U(t)) takes as state variables the delayed values the next step needs,

    X(t) = [y(t), y(t-1), ..., y(t-q+1), u(t), u(t-1), ..., u(t-p+1)]    (q n + p m entries),

so that f, a feed-forward net, reads y(t-1..t-q) and u(t-1..t-p) from X(t-1), computes y(t) and
shifts the two delay lines by one: Y(t) = y(t). ``DelayedStep`` is that f, for
``jdl.nn.CanonicalRNN(DelayedStep(...), state_size=DelayedStep.state_size(m, ...))``, which
unrolls it in time and trains by back-propagation through time like any recurrent net.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl.nn.activations import get_activation
from jdl.nn.initializers import DEFAULT_KERNEL_INIT


class DelayedStep(nn.Module):
    """f of the canonical form of the delayed network above: [X(t-1), U(t)] -> (X(t), y(t)).

    Attributes: features (n), output_delays (q >= 1, the recurrent connections' delays 1..q),
    input_delays (p >= 0, the input connections' delays 0..p), activation (phi, a jdl name or
    callable; 'tanh'), kernel_init (A and B). Parameters: 'A' (p + 1, m, n), 'B' (q, n, n),
    'b' (n,).
    """
    features: int
    output_delays: int = 2
    input_delays: int = 0
    activation: Any = "tanh"
    kernel_init: Callable = DEFAULT_KERNEL_INIT

    def __post_init__(self):
        if self.features <= 0 or self.output_delays < 1 or self.input_delays < 0:
            raise ValueError(f"DelayedStep needs features >= 1, output_delays >= 1 and "
                             f"input_delays >= 0, got {self.features}, {self.output_delays}, "
                             f"{self.input_delays}")
        super().__post_init__()

    @staticmethod
    def state_size(in_features: int, features: int, output_delays: int = 2,
                   input_delays: int = 0) -> int:
        """q n + p m, the number of state variables of the canonical form."""
        return output_delays * features + input_delays * in_features

    @nn.compact
    def __call__(self, xu):
        n, q, p = self.features, self.output_delays, self.input_delays
        total = xu.shape[-1]
        m, rest = divmod(total - q * n, p + 1)
        if rest or m <= 0:
            raise ValueError(f"DelayedStep got {total} values; expected [state (q n + p m), "
                             f"input (m)] with q={q}, n={n}, p={p}")
        lead = xu.shape[:-1]
        y_past = xu[..., :q * n].reshape(lead + (q, n))              # y(t-1) .. y(t-q)
        u_past = xu[..., q * n:q * n + p * m].reshape(lead + (p, m))  # u(t-1) .. u(t-p)
        u = xu[..., q * n + p * m:]                                   # u(t)
        A = self.param("A", self._stacked_init, (p + 1, m, n))
        B = self.param("B", self._stacked_init, (q, n, n))
        b = self.param("b", nn.initializers.zeros_init(), (n,))
        u_all = jnp.concatenate([u[..., None, :], u_past], axis=-2)  # u(t) .. u(t-p)
        z = (jnp.einsum("...tm,tmn->...n", u_all, A) + jnp.einsum("...tn,tnk->...k", y_past, B)
             + b)
        y = get_activation(self.activation)(z)
        state = [y, y_past[..., :q - 1, :].reshape(lead + ((q - 1) * n,))]
        if p:
            state += [u, u_past[..., :p - 1, :].reshape(lead + ((p - 1) * m,))]
        return jnp.concatenate(state, axis=-1), y

    def _stacked_init(self, key, shape, dtype=jnp.float32):
        """kernel_init on each (in, out) block, scaled by 1/sqrt(number of blocks) so the sum
        over the delays keeps the variance of one block."""
        keys = jax.random.split(key, shape[0])
        return jnp.stack([self.kernel_init(k, shape[1:], dtype) for k in keys]) / (
            shape[0] ** 0.5)
