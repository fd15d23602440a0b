"""Small initial weights proportional to 1/sqrt(fan_in) (LeCun et al. 1998, 'Efficient BackProp').

``lecun_uniform`` draws W ~ U(-sqrt(3 / fan_in), sqrt(3 / fan_in)), i.e. Var W = 1 / fan_in, as
Keras' ``init='lecun_uniform'`` in the lecture's code does. Biases start at zero.
"""
from __future__ import annotations

import jax.nn.initializers as jinit

lecun_uniform = jinit.variance_scaling(1.0, "fan_in", "uniform")
lecun_normal = jinit.variance_scaling(1.0, "fan_in", "truncated_normal")
he_normal = jinit.variance_scaling(2.0, "fan_in", "truncated_normal")
zeros = jinit.zeros

DEFAULT_KERNEL_INIT = lecun_uniform
