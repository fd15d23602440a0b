"""One process of a multi-process ``fit`` on localhost, run by tests/test_distributed.py:

    JAX_PLATFORMS=cpu python tests/distributed_checks.py PROCESS_ID NUM_PROCESSES PORT WORKDIR \
        [LOCAL_DEVICES]

Every process joins ``jax.distributed`` (coordinator localhost:PORT, gloo CPU collectives)
with LOCAL_DEVICES (default 2) CPU devices, builds the same tiny problem (:func:`problem`: an
MLP 12-16-4 with dropout on 64 examples, SGD with momentum) and trains it with
``jdl.train.fit`` for EPOCHS epochs of the global batch B (B / NUM_PROCESSES rows per process,
each process feeding only its own rows), checkpointing into WORKDIR/checkpoints (shared) and
logging into WORKDIR (process 0 only). Then the same run again in WORKDIR/resumed, stopped
after epoch 1 and resumed (both processes restore the shared checkpoint). Process 0 saves the
final params as WORKDIR/params_2proc.npz and params_resumed.npz; each process prints one JSON
line (its index, count, devices, the histories, wall times).

The pytest process imports :func:`problem` and :func:`run_fit` to train the same problem in
one process and compare.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

EPOCHS, B, N, N_VAL = 2, 16, 64, 16
CHECKPOINT_EVERY = 3


def problem():
    """(train_step, eval_step, state, train_data, val_data): the same in every process."""
    import jax
    import jax.numpy as jnp
    from jdl import optim
    from jdl.nn import MLP
    from jdl.train import backprop, create_state, evaluate_fn, make_eval_step, make_train_step

    rs = np.random.default_rng(0)
    x = rs.normal(size=(N + N_VAL, 12)).astype(np.float32)
    y = rs.integers(0, 4, N + N_VAL).astype(np.int32)
    model = MLP(hidden=(16,), num_outputs=4, dropout_rate=0.2)
    tx = optim.sgd(0.1, 0.9)
    # numpy initial values (shapes by eval_shape): no jax.random compile on CPU
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x[:2], train=False))
    ri = np.random.default_rng(3)
    params = jax.tree.map(lambda s: jnp.asarray(ri.normal(size=s.shape) / np.sqrt(
        s.shape[0] if len(s.shape) > 1 else 1), s.dtype), shapes["params"])
    state = create_state(params, tx, jax.random.PRNGKey(0))
    train = {"x": x[:N], "y": y[:N]}
    val = {"x": x[N:], "y": y[N:]}
    return (make_train_step(backprop(model), tx), make_eval_step(evaluate_fn(model)), state,
            train, val)


def run_fit(workdir: str, epochs: int = EPOCHS, **kw):
    from jdl.train import fit
    step, eval_step, state, train, val = problem()
    return fit(step, state, train, epochs=epochs, batch_size=B, eval_step=eval_step,
               val_data=val, seed=0, workdir=workdir, checkpoint_every=CHECKPOINT_EVERY,
               log_every=2, progress=True, tensorboard=True, **kw)


def main(pid: int, nproc: int, port: int, workdir: str, local_devices: int = 2) -> None:
    t0 = time.perf_counter()
    import jax
    jax.config.update("jax_num_cpu_devices", local_devices)
    from jdl.parallel import distributed
    index, count = distributed.initialize(f"localhost:{port}", nproc, pid)
    t_init = time.perf_counter() - t0
    res = run_fit(workdir)
    t_fit = time.perf_counter()
    # killed after epoch 1 and resumed by both processes from the shared checkpoint
    resume_dir = os.path.join(workdir, "resumed")
    run_fit(resume_dir, epochs=1)
    resumed = run_fit(resume_dir, resume=True)
    t_resume = time.perf_counter() - t_fit
    if distributed.is_main_process():
        for name, r in (("params_2proc.npz", res), ("params_resumed.npz", resumed)):
            flat = {jax.tree_util.keystr(p): np.asarray(v) for p, v in
                    jax.tree_util.tree_flatten_with_path(r.state.params)[0]}
            np.savez(os.path.join(workdir, name), **flat)
    print(json.dumps({"process_index": index, "process_count": count,
                      "global_devices": jax.device_count(),
                      "local_devices": jax.local_device_count(), "num_devices": res.num_devices,
                      "step": int(res.state.step), "history": res.history,
                      "resumed_step": int(resumed.state.step),
                      "resumed_history": resumed.history, "resume_s": t_resume,
                      "init_s": t_init, "fit_wall_s": res.wall_time,
                      "total_s": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]), int(a[1]), int(a[2]), a[3], int(a[4]) if len(a) > 4 else 2)
