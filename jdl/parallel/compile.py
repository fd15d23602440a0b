"""The one place that compiles a train step: one device, several (sharded jit or pmap-style
shard_map), several processes; batches gathered inside the compiled function.

Any ``step(state, batch) -> (state, metrics)`` from ``jdl.train.make_train_step`` runs on D
devices in one of two modes, chosen by one switch; both take and return the state in ONE
layout, global arrays (params replicated, declared per-example model state and the batch split
along the 'batch' axis of a one-axis mesh, see ``jdl.parallel.layout``), so checkpoints,
evaluation and a change of mode or of device count see the same state as on one device.

- 'sharded' (default): ``jax.jit`` with ``NamedSharding``s over a ``Mesh`` (GSPMD, Xu et al.
  2021). The program is the single-device program on global arrays; XLA partitions it along
  the batch and inserts the all-reduce of the gradient sums. Its results equal one device on
  the full batch by construction -- batch-norm statistics are over the global batch ("synced"),
  one dropout/noise draw is the global one -- up to the order of floating-point sums. Any step
  works, including steps not built by make_train_step.
- 'pmap': the per-device program of ``jax.pmap``, built on ``jax.shard_map`` inside the same
  jit (JAX 0.10 keeps pmap in maintenance mode). Each device traces the step on its shard of
  b = B / D examples, with the named axis 'batch' bound; the step's grad_fn must average
  gradients and metrics with ``lax.pmean`` (``jdl.parallel.data_parallel_grad_fn``, which
  make_train_step applies to every grad_fn), and layers that look across the batch must be
  written for it (jdl.nn.BNConvNet's synced BatchNorm, jdl.nn.Dropout). The replicated
  floating model state (running averages) is pmean-ed after the step, the per-example state
  stays on its device.

The semantics are those of one device on the global batch in both modes; the tests
(tests/test_parallel.py) check this for an MLP with dropout, a batch-norm convnet, an RBM
trained by CD-1 and an LSTM trained by BPTT on 8 simulated devices.

``fit`` compiles through :meth:`DataParallel.compile_gathered`: ``(state, data, idx) ->
(state, metrics)`` with the data set on the devices (replicated; with several processes, as
global arrays on all of them) and the batch ``gather(data, idx)`` taken inside the jit, so one
step costs one dispatch and no host-to-device copy of the batch. ``gather`` is also the one
place where a batch receives its global example indices (``batch['index']``).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Collection, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jdl.parallel import distributed
from jdl.parallel.compilation_cache import jit_once
from jdl.parallel.axis import BATCH_AXIS
from jdl.parallel.devices import batch_mesh, per_device_batch, resolve_devices
from jdl.parallel.grad_fn import batch_size_of
from jdl.parallel.layout import (PER_EXAMPLE, _key_name, check_spec, per_example_mask,
                                 replicated, split, state_shardings)

MODES = ("sharded", "pmap")
INDEX_KEY = "index"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"parallel mode must be one of {MODES}, got {mode!r}")
    return mode


def gather(data: dict, idx, index_key: str | None = INDEX_KEY) -> dict:
    """The batch of examples ``idx``: ``{k: data[k][idx]}``, and ``batch[index_key] = idx``
    (int32 global example indices, unless ``data`` has its own ``index_key`` or it is None),
    so that per-example noise keyed by it (jdl.rbm.contrastive_divergence, jdl.data.augment)
    is the same on 1 or D devices and after a resume."""
    batch = {k: v[idx] for k, v in data.items()}
    if index_key is not None and index_key not in data:
        batch[index_key] = jnp.asarray(idx).astype(jnp.int32)
    return batch


def _inexact(x) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)


def _mean_replicated_model_state(state, mask, axis_name: str):
    """lax.pmean of the floating model-state leaves that are not per example."""
    def sync(path, x, per_example):
        in_model_state = bool(path) and _key_name(path[0]) == "model_state"
        if per_example or not in_model_state or not _inexact(x):
            return x
        return lax.pmean(x, axis_name)
    return jax.tree_util.tree_map_with_path(sync, state, mask)


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Data parallelism over ``devices`` in ``mode`` ('sharded' or 'pmap'), with the model
    state named in ``per_example`` split with the batch; see the module docstring. Build with
    :meth:`create`."""
    devices: tuple
    mode: str = "sharded"
    axis_name: str = BATCH_AXIS
    per_example: tuple = PER_EXAMPLE

    @classmethod
    def create(cls, devices: int | Sequence | None = None, mode: str = "sharded",
               axis_name: str = BATCH_AXIS, per_example: Collection[str] = PER_EXAMPLE,
               batch_size: int | None = None) -> "DataParallel":
        """``devices``: None (all local devices; with several processes, all devices), an int
        n (the first n local devices of each process) or a list; see resolve_devices."""
        check_mode(mode)
        per_example = check_spec(per_example)
        if not distributed.is_multiprocess():
            return cls(tuple(resolve_devices(devices, batch_size)), mode, axis_name, per_example)
        if mode != "sharded":
            raise ValueError(f"with several processes the parallel mode is 'sharded' only, "
                             f"got {mode!r}")
        dp = cls(tuple(distributed.global_devices(devices)), mode, axis_name, per_example)
        if batch_size is not None:
            per_device_batch(batch_size, dp.num_devices)
        return dp

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    @property
    def mesh(self) -> Mesh:
        return batch_mesh(self.devices, self.axis_name)

    @property
    def multiprocess(self) -> bool:
        return any(d.process_index != jax.process_index() for d in self.devices)

    # -- layouts ---------------------------------------------------------------------------
    def replicated(self) -> NamedSharding:
        return replicated(self.mesh)

    def batch_sharding(self) -> NamedSharding:
        return split(self.mesh, self.axis_name)

    def state_shardings(self, state, batch_size: int):
        per_device_batch(batch_size, self.num_devices)
        return state_shardings(state, self.mesh, batch_size, self.axis_name, self.per_example)

    def put(self, tree, shardings):
        """``tree`` placed with ``shardings`` (global arrays over all processes' devices when
        the mesh spans several processes)."""
        if not self.multiprocess:
            return jax.device_put(tree, shardings)
        if isinstance(shardings, jax.sharding.Sharding):   # one sharding for every leaf
            shardings = jax.tree.map(lambda _: shardings, tree)
        return distributed.to_global(tree, shardings)

    def place_state(self, state, batch_size: int):
        """``state`` put on the devices: replicated leaves copied to each, per-example split."""
        return self.put(state, self.state_shardings(state, batch_size))

    def place_batch(self, batch):
        return self.put(batch, self.batch_sharding())

    def replicate(self, tree):
        return self.put(tree, self.replicated())

    # -- the step ----------------------------------------------------------------------------
    def spmd(self, step: Callable, state, batch_size: int) -> Callable:
        """A traceable ``(state, batch) -> (state, metrics)`` on global arrays (batch of
        ``batch_size`` examples) that runs ``step`` data-parallel in this mode. jit it with
        :meth:`jit_shardings`, or use :meth:`compile`."""
        per_device_batch(batch_size, self.num_devices)
        if self.mode == "sharded":
            spec = self.batch_sharding()

            def sharded(state, batch):
                return step(state, lax.with_sharding_constraint(batch, spec))
            return sharded
        if getattr(step, "data_parallel_axis", None) != self.axis_name:
            raise ValueError(
                f"parallel='pmap' needs a step that averages its gradients over the "
                f"{self.axis_name!r} axis: build it with jdl.train.make_train_step (which wraps "
                f"the grad_fn in jdl.parallel.data_parallel_grad_fn), or use parallel='sharded', "
                f"which runs any step")
        return self._shard_mapped(step, per_example_mask(state, batch_size, self.per_example))

    def _shard_mapped(self, step, mask):
        """pmap's per-device program as a shard_map: replicated leaves enter whole, per-example
        leaves and the batch as this device's rows; the same layout comes out."""
        ax = self.axis_name
        specs = jax.tree.map(lambda m: P(ax) if m else P(), mask)

        def per_device(state, batch):
            new, metrics = step(state, batch)
            return _mean_replicated_model_state(new, mask, ax), metrics
        return jax.shard_map(per_device, mesh=self.mesh, in_specs=(specs, P(ax)),
                             out_specs=(specs, P()), check_vma=False)

    def jit_shardings(self, state, batch_size: int) -> dict:
        """in/out shardings for ``jax.jit`` of a ``(state, batch)`` step in this layout."""
        st = self.state_shardings(state, batch_size)
        return dict(in_shardings=(st, self.batch_sharding()),
                    out_shardings=(st, self.replicated()))

    def compile(self, step: Callable, state, batch_size: int, donate: bool = False) -> Callable:
        """``jit`` of :meth:`spmd` with this layout's shardings; the returned function puts its
        arguments in the layout first (a no-op for arrays already there)."""
        st = self.state_shardings(state, batch_size)
        jitted = jax.jit(self.spmd(step, state, batch_size),
                         **self.jit_shardings(state, batch_size),
                         donate_argnums=(0,) if donate else ())
        bs = self.batch_sharding()

        def run(state, batch):
            return jitted(jax.device_put(state, st), jax.device_put(batch, bs))
        run.lower = lambda state, batch: jitted.lower(state, batch)
        return run

    def compile_gathered(self, step: Callable, state, data: dict, batch_size: int,
                         index_key: str | None = INDEX_KEY) -> "GatheredSteps":
        """Place ``state`` and ``data`` and compile ``step`` on the batches ``gather(data,
        idx)`` taken inside the jit, the state donated (see :class:`GatheredSteps`)."""
        if self.num_devices == 1 and not self.multiprocess:   # plain jit on that device
            state, data = jax.device_put((state, data), self.devices[0])

            def one(s, d, i):
                return step(s, gather(d, i, index_key))
            return GatheredSteps(self, one, state, data, batch_size,
                                 key=(step, index_key, "single"))
        st = self.state_shardings(state, batch_size)
        state, data = self.put(state, st), self.replicate(data)
        spmd = self.spmd(step, state, batch_size)

        def many(s, d, i):
            return spmd(s, gather(d, i, index_key))
        shardings = dict(in_shardings=(st, self.replicated(), self.batch_sharding()),
                         out_shardings=(st, self.replicated()))
        return GatheredSteps(self, many, state, data, batch_size, shardings,
                             key=(step, index_key, self.mode, self.devices, self.axis_name,
                                  tuple(self.per_example), self.multiprocess))


def _signature(tree) -> tuple:
    """(tree structure, each leaf's shape, dtype and sharding): what a compiled executable
    depends on besides the function."""
    leaves, treedef = jax.tree.flatten(tree)
    return (treedef, tuple((np.shape(x), str(getattr(x, "dtype", type(x))),
                            getattr(x, "sharding", None)) for x in leaves))


def _scanned(one: Callable) -> Callable:
    """k steps in one call: lax.scan of ``one`` over the rows of a (k, B) index array; the
    metrics come back stacked, one row per step."""
    def steps(s, d, idx):
        return lax.scan(lambda s, i: one(s, d, i), s, idx)
    return steps


@dataclasses.dataclass
class GatheredSteps:
    """A train step compiled on gathered batches: ``steps(state, idx) -> (state, metrics)``
    runs the step on ``gather(data, idx)`` (``idx``: the global batch's example indices, host
    numpy, the same in every process). A (k, B) ``idx`` runs k steps in one compiled call
    (lax.scan; metrics stacked, one row per step), compiled once per k. ``state`` is the
    placed initial state; the first call (or :meth:`compile`) compiles."""
    dp: DataParallel
    one: Callable                  # traceable (state, data, idx) -> (state, metrics)
    state: object
    data: dict
    batch_size: int
    shardings: dict | None = None  # jit in/out shardings (None: one device)
    compiled: dict = dataclasses.field(default_factory=dict)   # k (0: one step) -> executable
    key: object = None             # what the step is (compile_gathered's): its executables are
                                   # kept per process for that key and the argument signature

    def __post_init__(self):
        self._global = self.dp.multiprocess   # indices become global arrays

    def _idx_spec(self, k: int) -> jax.ShapeDtypeStruct:
        shape, sharding = (self.batch_size,), None
        if self.shardings is not None:
            sharding = self.shardings["in_shardings"][2]
            if k:
                sharding = NamedSharding(sharding.mesh, P(None, *sharding.spec))
        return jax.ShapeDtypeStruct((k,) + shape if k else shape, jnp.int32, sharding=sharding)

    def compile(self, state, k: int = 0) -> Callable:
        """Compile ahead of time for ``state``: one step (``k`` 0) or k steps per call."""
        if k not in self.compiled:
            fn, kw = (_scanned(self.one), {}) if k else (self.one, {})
            if self.shardings is not None:
                spec = self._idx_spec(k).sharding
                kw = dict(in_shardings=self.shardings["in_shardings"][:2] + (spec,),
                          out_shardings=self.shardings["out_shardings"])
            args = (state, self.data, self._idx_spec(k))

            def build(_):
                return jax.jit(fn, donate_argnums=0, **kw).lower(*args).compile()
            if self.key is None:
                self.compiled[k] = build(None)
            else:   # the same step, shapes and layout: compiled once per process
                self.compiled[k] = jit_once(self.key, (k, _signature(args)), build)
        return self.compiled[k]

    def __call__(self, state, idx):
        idx = np.asarray(idx, np.int32)
        k = idx.shape[0] if idx.ndim == 2 else 0
        fn = self.compiled.get(k) or self.compile(state, k)
        if self._global:
            idx = distributed.to_global(idx, self._idx_spec(k).sharding)
        return fn(state, self.data, idx)


def compile_step(step: Callable, mode: str = "sharded", devices: int | Sequence | None = None,
                 axis_name: str = BATCH_AXIS, per_example: Collection[str] = PER_EXAMPLE,
                 donate: bool = False) -> Callable:
    """``step(state, batch) -> (state, metrics)`` compiled for ``mode``: 'jit' (one device,
    plain ``jax.jit``), 'sharded' or 'pmap' over ``devices`` (None: all local devices).

    The data-parallel versions compile on first call for each batch size (the global batch,
    a multiple of the number of devices) and return the state in the global layout of
    :class:`DataParallel` (params replicated, per-example model state split).
    ``donate=True`` lets XLA reuse the input state's buffers (the caller's state is then invalid).
    Batches passed here are used as given: no 'index' is added (fit's ``gather`` adds it).
    """
    if mode == "jit":
        return jax.jit(step, donate_argnums=(0,) if donate else ())
    dp = DataParallel.create(devices, mode, axis_name, per_example)
    cache: dict = {}

    def run(state, batch):
        b = batch_size_of(batch)
        key = (b, jax.tree.structure(state))
        if key not in cache:
            cache[key] = dp.compile(step, state, b, donate=donate)
        return cache[key](state, batch)

    run.data_parallel = dp
    return run
