"""Data parallelism for every model family: one train step, compiled for D devices.

    step = make_train_step(grad_fn, tx)                  # any family: backprop, CD, BPTT, ...
    pstep = compile_step(step, mode="sharded", devices=8)  # or mode="pmap", or "jit"
    state, metrics = pstep(state, batch)                 # batch: the GLOBAL batch, B = 8 b

or simply ``jdl.train.fit(step, state, data, ..., devices=8, parallel="sharded")``.
Modules: ``axis`` (the 'batch' axis seen from inside a model: synced batch norm, global
example positions; re-exported as jdl.nn.batch_axis), ``devices`` (which devices, the mesh,
B = D b), ``layout`` (replicated vs declared per-example state), ``grad_fn`` (pmean of
gradients and metrics in pmap mode), ``compile`` (the one place that compiles: one device,
jit over a Mesh with NamedSharding, or pmap's per-device program via shard_map; batches
gathered inside the jit),
``distributed`` (several processes/hosts: jax.distributed, each process's rows of a batch).
It imports only jax -- no model family, no jdl.nn, no jdl.train -- so that jdl.nn's layers
and jdl.train's make_train_step can import it.
"""
from jdl.parallel.axis import BATCH_AXIS, axis_bound, example_positions, num_shards, sync_axis
from jdl.parallel.compile import (INDEX_KEY, MODES, DataParallel, GatheredSteps, check_mode,
                                  compile_step, gather)
from jdl.parallel import distributed
from jdl.parallel.devices import batch_mesh, per_device_batch, resolve_devices
from jdl.parallel.grad_fn import batch_size_of, data_parallel_grad_fn, pmean_floats
from jdl.parallel.layout import (PER_EXAMPLE, per_example_mask, replicated, split,
                                 state_shardings)

__all__ = ["BATCH_AXIS", "axis_bound", "example_positions", "num_shards", "sync_axis", "MODES",
           "INDEX_KEY", "DataParallel", "GatheredSteps", "check_mode", "compile_step", "gather",
           "distributed", "batch_mesh", "per_device_batch", "resolve_devices", "batch_size_of",
           "data_parallel_grad_fn", "pmean_floats", "PER_EXAMPLE", "per_example_mask",
           "replicated", "split", "state_shardings"]
