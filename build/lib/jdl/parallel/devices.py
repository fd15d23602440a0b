"""Which devices a data-parallel run uses, and the one-axis mesh over them.

Data parallelism over D devices splits each global batch of B examples into D shards of
b = B / D examples, one per device (Krizhevsky 2014, 'One weird trick for parallelizing
convolutional neural networks'; Goyal et al. 2017, 'Accurate, large minibatch SGD'). In jdl the
batch size a user gives is always the GLOBAL batch B, so hyper-parameters (learning rate,
batch-norm statistics, number of steps per epoch) mean the same on 1 or D devices; B must be a
multiple of D.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from jdl.parallel.axis import BATCH_AXIS


def resolve_devices(devices: int | Sequence | None = None,
                    batch_size: int | None = None) -> list:
    """The devices of a run: ``None`` all local devices, an int n the first n local devices, a
    sequence of devices as given.

    With ``batch_size`` (the global batch B), B must be a multiple of their number D: an
    explicit request that does not divide B raises ValueError; for the implicit default
    (``None``) the largest D' <= D dividing B is used instead, with a warning, so that code
    written for one device keeps running on a machine with several.
    """
    local = jax.local_devices()
    if devices is None:
        chosen = list(local)
        if batch_size is not None and batch_size % len(chosen):
            d = max(k for k in range(1, len(chosen) + 1) if batch_size % k == 0)
            warnings.warn(f"batch size {batch_size} is not a multiple of the {len(chosen)} "
                          f"local devices: training on {d} of them (pass devices= / --devices "
                          f"to choose, or a batch size divisible by {len(chosen)})", stacklevel=2)
            chosen = chosen[:d]
        return chosen
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(local):
            raise ValueError(f"devices={devices}: this process sees {len(local)} local "
                             f"device(s) ({local[0].platform}); ask for 1 to {len(local)}")
        chosen = list(local[:devices])
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("devices must be None, a positive int or a non-empty list of devices")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"devices holds duplicates: {chosen}")
    if batch_size is not None:
        per_device_batch(batch_size, len(chosen))
    return chosen


def per_device_batch(batch_size: int, n_devices: int) -> int:
    """b = B / D, or a ValueError saying what to change when D does not divide B."""
    if batch_size % n_devices:
        lo = batch_size - batch_size % n_devices
        raise ValueError(f"batch size {batch_size} (the global batch) is not a multiple of the "
                         f"{n_devices} devices: use a multiple of {n_devices} (e.g. "
                         f"{lo or n_devices} or {lo + n_devices}), or fewer devices")
    return batch_size // n_devices


def batch_mesh(devices: Sequence, axis_name: str = BATCH_AXIS) -> Mesh:
    """A one-axis ``Mesh`` named ``axis_name`` over ``devices`` (in their order: shard d of
    the batch, rows [d b, (d + 1) b), lives on devices[d])."""
    return Mesh(np.asarray(list(devices), dtype=object), (axis_name,))
