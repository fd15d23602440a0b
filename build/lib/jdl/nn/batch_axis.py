"""The data-parallel batch axis as the models see it: ``BATCH_AXIS`` ('batch'), ``axis_bound``,
``sync_axis`` (the axis_name for a synced BatchNorm), ``num_shards``, ``example_positions``.

Defined in :mod:`jdl.parallel.axis` (which imports only jax, so layers here can use it);
re-exported here for model code. See that module for the equations.
"""
from jdl.parallel.axis import (BATCH_AXIS, axis_bound, example_positions, num_shards,
                               sync_axis)

__all__ = ["BATCH_AXIS", "axis_bound", "example_positions", "num_shards", "sync_axis"]
