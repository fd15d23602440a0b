"""Compiling one train step for data parallelism: ``jax.pmap`` or ``jax.jit`` over a mesh.

Any ``step(state, batch) -> (state, metrics)`` from ``jdl.train.make_train_step`` runs on D
devices in one of two modes, chosen by one switch; both take and return the state in ONE
layout, global arrays (params replicated, per-example model state and the batch split along the
'batch' axis of a one-axis mesh, see ``jdl.parallel.layout``), so checkpoints, evaluation and a
change of mode or of device count see the same state as on one device.

- 'sharded' (default): ``jax.jit`` with ``NamedSharding``s over a ``Mesh`` (GSPMD, Xu et al.
  2021). The program is the single-device program on global arrays; XLA partitions it along
  the batch and inserts the all-reduce of the gradient sums. Its results equal one device on
  the full batch by construction -- batch-norm statistics are over the global batch ("synced"),
  one dropout/noise draw is the global one -- up to the order of floating-point sums. Any step
  works, including steps not built by make_train_step.
- 'pmap': ``jax.pmap`` with the named axis 'batch' (in JAX >= 0.10 itself a jit over
  ``shard_map``). Each device traces the step on its shard of b = B / D examples; the step's
  grad_fn must average gradients, metrics and statistics with ``lax.pmean``
  (``jdl.parallel.data_parallel_grad_fn``, which make_train_step applies to every grad_fn), and
  layers that look across the batch must be written for it (jdl.nn.BNConvNet's synced
  BatchNorm, jdl.nn.Dropout). Inside, the state's replicated leaves enter with in_axes=None and
  per-example leaves reshaped to (D, b, ...) with in_axes=0, the same going out.

The semantics are those of one device on the global batch in both modes; the tests
(tests/test_parallel.py) check this for an MLP with dropout, a batch-norm convnet, an RBM
trained by CD-1 and an LSTM trained by BPTT on 8 simulated devices.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
from jax.sharding import Mesh, NamedSharding

from jdl.parallel.axis import BATCH_AXIS
from jdl.parallel.devices import batch_mesh, per_device_batch, resolve_devices
from jdl.parallel.grad_fn import batch_size_of
from jdl.parallel.layout import (PerExample, leading_batch_dim, per_example_mask, replicated,
                                 split, state_shardings)

MODES = ("sharded", "pmap")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"parallel mode must be one of {MODES}, got {mode!r}")
    return mode


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Data parallelism over ``devices`` in ``mode`` ('sharded' or 'pmap'); see the module
    docstring. Build with :meth:`create`."""
    devices: tuple
    mode: str = "sharded"
    axis_name: str = BATCH_AXIS
    per_example: PerExample = leading_batch_dim

    @classmethod
    def create(cls, devices: int | Sequence | None = None, mode: str = "sharded",
               axis_name: str = BATCH_AXIS, per_example: PerExample = leading_batch_dim,
               batch_size: int | None = None) -> "DataParallel":
        check_mode(mode)
        return cls(tuple(resolve_devices(devices, batch_size)), mode, axis_name, per_example)

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    @property
    def mesh(self) -> Mesh:
        return batch_mesh(self.devices, self.axis_name)

    # -- layouts ---------------------------------------------------------------------------
    def replicated(self) -> NamedSharding:
        return replicated(self.mesh)

    def batch_sharding(self) -> NamedSharding:
        return split(self.mesh, self.axis_name)

    def state_shardings(self, state, batch_size: int):
        per_device_batch(batch_size, self.num_devices)
        return state_shardings(state, self.mesh, batch_size, self.axis_name, self.per_example)

    def place_state(self, state, batch_size: int):
        """``state`` put on the devices: replicated leaves copied to each, per-example split."""
        return jax.device_put(state, self.state_shardings(state, batch_size))

    def place_batch(self, batch):
        return jax.device_put(batch, self.batch_sharding())

    def replicate(self, tree):
        return jax.device_put(tree, self.replicated())

    # -- the step ----------------------------------------------------------------------------
    def spmd(self, step: Callable, state, batch_size: int) -> Callable:
        """A traceable ``(state, batch) -> (state, metrics)`` on global arrays (batch of
        ``batch_size`` examples) that runs ``step`` data-parallel in this mode. jit it with
        :meth:`jit_shardings`, or use :meth:`compile`."""
        per_device_batch(batch_size, self.num_devices)
        if self.mode == "sharded":
            spec = self.batch_sharding()

            def sharded(state, batch):
                return step(state, jax.lax.with_sharding_constraint(batch, spec))
            return sharded
        if getattr(step, "data_parallel_axis", None) != self.axis_name:
            raise ValueError(
                f"parallel='pmap' needs a step that averages its gradients over the "
                f"{self.axis_name!r} axis: build it with jdl.train.make_train_step (which wraps "
                f"the grad_fn in jdl.parallel.data_parallel_grad_fn), or use parallel='sharded', "
                f"which runs any step")
        return self._pmap(step, per_example_mask(state, batch_size, self.per_example))

    def _pmap(self, step, mask):
        d = self.num_devices
        axes = jax.tree.map(lambda m: 0 if m else None, mask)
        mapped = jax.pmap(step, self.axis_name, in_axes=(axes, 0), out_axes=(axes, None),
                          devices=self.devices)

        def shard(x):
            return x.reshape((d, x.shape[0] // d) + x.shape[1:])

        def unshard(x):
            return x.reshape((-1,) + x.shape[2:])

        def pmapped(state, batch):
            state = jax.tree.map(lambda x, m: shard(x) if m else x, state, mask)
            new, metrics = mapped(state, jax.tree.map(shard, batch))
            return jax.tree.map(lambda x, m: unshard(x) if m else x, new, mask), metrics
        return pmapped

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


def compile_step(step: Callable, mode: str = "sharded", devices: int | Sequence | None = None,
                 axis_name: str = BATCH_AXIS, per_example: PerExample = leading_batch_dim,
                 donate: bool = False) -> Callable:
    """``step(state, batch) -> (state, metrics)`` compiled for ``mode``: 'jit' (one device,
    plain ``jax.jit``), 'sharded' or 'pmap' over ``devices`` (None: all local devices).

    The data-parallel versions compile on first call for each batch size (the global batch,
    a multiple of the number of devices) and return the state in the global layout of
    :class:`DataParallel` (params replicated, per-example model state split).
    ``donate=True`` lets XLA reuse the input state's buffers (the caller's state is then invalid).
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
