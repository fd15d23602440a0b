"""TrainState: the one pytree a training run carries (step, params, optimiser state, model state,
rng, and the NaN guard's record of the first non-finite step)."""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    step: jax.Array          # int32 scalar: number of updates applied so far
    params: Any              # trainable parameters
    opt_state: Any           # optax state
    model_state: Any         # non-trainable collections (batch statistics, PCD chains, ...)
    rng: jax.Array           # base PRNG key; step t uses fold_in(rng, t)
    bad_step: jax.Array      # int32: -1, or the first step whose loss/gradient was not finite


def create_state(params, tx: optax.GradientTransformation, rng, model_state=None) -> TrainState:
    """A fresh TrainState for any model family: params and model state as given."""
    return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=tx.init(params),
                      model_state={} if model_state is None else model_state,
                      rng=jnp.asarray(rng), bad_step=jnp.full([], -1, jnp.int32))


def init_state(model, tx: optax.GradientTransformation, example_x, rng,
               init_fn: Callable | None = None) -> TrainState:
    """Initialise a Flax module on ``example_x`` and wrap it in a TrainState.

    Variables other than 'params' (e.g. 'batch_stats') become the model state. The module is
    initialised in inference mode (``train=False``), so no dropout key is needed.
    """
    init_rng, run_rng = jax.random.split(rng)
    if init_fn is None:
        variables = model.init(init_rng, example_x, train=False)
    else:
        variables = init_fn(init_rng, example_x)
    variables = dict(variables)
    params = variables.pop("params")
    return create_state(params, tx, run_rng, model_state=variables)


def num_params(params) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))
