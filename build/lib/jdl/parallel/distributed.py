"""Several processes (hosts): ``jax.distributed``, each process's rows of a global batch, and
the global arrays that ``jdl.train.fit`` trains on when ``jax.process_count() > 1``.

Multi-controller JAX runs the same program in every process; each process addresses only its
local devices, and a ``jax.jit`` over a mesh of ``jax.devices()`` (all processes' devices)
communicates between them (gloo collectives on CPU, NCCL on GPU). jdl's layout is the
single-process one (jdl.parallel.layout) on that global mesh: params, optimiser state, rng
replicated on every device of every process, the batch and per-example state split along
'batch'. The data are NOT replicated: each process gathers only the rows of each global batch
that its own devices hold (:func:`global_batch`), from the same seeded global order.

    from jdl.parallel import distributed
    distributed.initialize()                      # flags, JDL_* env, or jax's auto-detection
    ... fit(step, state, data, batch_size=256)    # 256 = the global batch over all processes

Launch (one command per process/host)::

    JDL_COORDINATOR_ADDRESS=host0:12345 JDL_NUM_PROCESSES=2 JDL_PROCESS_ID=0 python exp.py ...
    JDL_COORDINATOR_ADDRESS=host0:12345 JDL_NUM_PROCESSES=2 JDL_PROCESS_ID=1 python exp.py ...

It imports only jax and numpy.
"""
from __future__ import annotations

import os
from typing import Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding

ENV_COORDINATOR = "JDL_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JDL_NUM_PROCESSES"
ENV_PROCESS_ID = "JDL_PROCESS_ID"
ENV_LOCAL_DEVICE_IDS = "JDL_LOCAL_DEVICE_IDS"


def _env_int(name: str):
    v = os.environ.get(name)
    if v is None or v.strip() == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {v!r}") from None


def requested(coordinator_address=None, num_processes=None, process_id=None) -> bool:
    """Whether a multi-process run was asked for, by arguments or JDL_* environment variables."""
    return any(v is not None for v in (coordinator_address, num_processes, process_id)) or any(
        os.environ.get(k) for k in (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID))


def is_initialized() -> bool:
    return bool(jax.distributed.is_initialized())


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None,
               local_device_ids: int | Sequence[int] | None = None,
               **kwargs) -> tuple[int, int]:
    """Join (or start, as process 0) a multi-process JAX run; returns
    ``(jax.process_index(), jax.process_count())``.

    Each argument left None is read from $JDL_COORDINATOR_ADDRESS ('host:port' of process 0),
    $JDL_NUM_PROCESSES, $JDL_PROCESS_ID and $JDL_LOCAL_DEVICE_IDS ('0,1'); when none is given at
    all, ``jax.distributed.initialize()`` detects the cluster itself (Slurm, Open MPI, TPU
    pods). On CPU the cross-process collectives are gloo's (set here, before the backend
    starts). Calling it again once initialised does nothing. It must run before any JAX
    computation (an already started backend cannot join a cluster). ``kwargs`` go to
    ``jax.distributed.initialize`` (e.g. ``initialization_timeout``).
    """
    if is_initialized():
        return jax.process_index(), jax.process_count()
    if coordinator_address is None:
        coordinator_address = os.environ.get(ENV_COORDINATOR) or None
    if num_processes is None:
        num_processes = _env_int(ENV_NUM_PROCESSES)
    if process_id is None:
        process_id = _env_int(ENV_PROCESS_ID)
    if local_device_ids is None and os.environ.get(ENV_LOCAL_DEVICE_IDS):
        local_device_ids = [int(s) for s in
                            os.environ[ENV_LOCAL_DEVICE_IDS].replace(",", " ").split()]
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}")
    # CPU collectives across processes: gloo (JAX 0.10's default, set explicitly so that an
    # older default of 'none' cannot leave the processes unable to all-reduce).
    try:
        if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:  # pragma: no cover - option absent in this jax
        pass
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id,
                               local_device_ids=local_device_ids, **kwargs)
    return jax.process_index(), jax.process_count()


def is_main_process() -> bool:
    """True in process 0 (the one that logs, prints and writes summaries), and when single."""
    return jax.process_index() == 0


def is_multiprocess() -> bool:
    return jax.process_count() > 1


def global_devices(devices: int | None = None) -> list:
    """The devices of a multi-process mesh, ordered by (process, id) so that each process's
    rows of a batch are contiguous: all of them (``devices`` None), or the first ``devices``
    local devices of every process (an int, the same in every process)."""
    by_proc: dict = {}
    for d in sorted(jax.devices(), key=lambda d: (d.process_index, d.id)):
        by_proc.setdefault(d.process_index, []).append(d)
    if devices is not None:
        if isinstance(devices, (list, tuple)):
            raise ValueError("with several processes, devices must be None (all devices) or an "
                             "int (that many local devices in every process)")
        fewest = min(len(v) for v in by_proc.values())
        if not 1 <= devices <= fewest:
            raise ValueError(f"devices={devices}: every process must have that many local "
                             f"devices (the fewest is {fewest})")
        by_proc = {p: v[:devices] for p, v in by_proc.items()}
    return [d for p in sorted(by_proc) for d in by_proc[p]]


def process_rows(sharding: NamedSharding, global_size: int) -> np.ndarray:
    """Positions (into a global batch of ``global_size`` rows split by ``sharding``) of the
    rows this process's devices hold, in increasing order."""
    rows = set()
    for idx in sharding.addressable_devices_indices_map((global_size,)).values():
        rows.update(range(*idx[0].indices(global_size)))
    return np.asarray(sorted(rows), np.int64)


def global_batch(sharding: NamedSharding, data: dict, indices: np.ndarray) -> dict:
    """The global batch ``{k: data[k][indices]}`` as arrays split by ``sharding``, built from
    this process's rows only: each local device receives ``data[k][indices[its slice]]``
    (``data`` is this host's copy of the data set, numpy; ``indices`` the global batch's
    example indices, the same in every process)."""
    b = len(indices)
    slices = sharding.addressable_devices_indices_map((b,))
    out = {}
    for k, v in data.items():
        v = np.asarray(v)
        shards = [jax.device_put(v[indices[idx[0]]], d) for d, idx in slices.items()]
        out[k] = jax.make_array_from_single_device_arrays((b,) + v.shape[1:], sharding, shards)
    return out


def batch_spec(sharding: NamedSharding, data: dict, batch_size: int) -> dict:
    """``jax.ShapeDtypeStruct``s of a global batch (for ``jit(...).lower``)."""
    return {k: jax.ShapeDtypeStruct((batch_size,) + np.shape(v)[1:], np.asarray(v).dtype,
                                    sharding=sharding) for k, v in data.items()}


def to_global(tree, shardings):
    """``tree`` (the same values in every process: numpy or process-local jax arrays) as global
    arrays with ``shardings`` (a matching pytree of NamedShardings over all processes)."""
    def put(x, s):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)   # typed keys (jax.random.key): place their data
            return jax.random.wrap_key_data(put(jax.random.key_data(x), s), impl=impl)
        x = np.asarray(jax.device_get(x))
        return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])
    return jax.tree.map(put, tree, shardings)


def to_local(tree):
    """Global arrays as process-local ones on this process's first device, with their full
    values (replicated leaves copied from a local shard, split leaves all-gathered): what
    evaluation, plotting and saving on one host need. Every process must call it (the
    all-gather is a collective)."""
    from jax.experimental import multihost_utils
    dev = jax.local_devices()[0]

    def get(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return jax.device_put(x, dev)
        if x.is_fully_replicated:
            return jax.device_put(x.addressable_data(0), dev)
        return jax.device_put(np.asarray(multihost_utils.process_allgather(x, tiled=True)), dev)
    return jax.tree.map(get, tree)


def sync(name: str) -> None:
    """A barrier across processes (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)
