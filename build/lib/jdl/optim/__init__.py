"""Optimisers as optax compositions: SGD, heavy-ball momentum, L1/L2 weight decay, schedules,
Adam, gradient clipping by value (``clip_value``) and by global norm (``clip_norm``), against
exploding gradients."""
from jdl.optim.schedules import (constant, cosine, exponential, inverse_time, make_schedule,
                                 step_decay)
from jdl.optim.sgd import adam, momentum, sgd
from jdl.optim.weight_decay import kernels_only, weight_decay

__all__ = ["constant", "cosine", "exponential", "inverse_time", "make_schedule", "step_decay",
           "adam", "momentum", "sgd", "kernels_only", "weight_decay"]
