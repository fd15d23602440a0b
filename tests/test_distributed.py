"""Multi-host training (jdl.parallel.distributed): two processes joined by jax.distributed on
localhost (gloo CPU collectives), two CPU devices each, train with ``fit`` (each feeding only
its own rows of every global batch), checkpoint into a shared directory and log from process 0;
the result equals one process training on the full data.

The two processes run tests/distributed_checks.py; this (one-device) pytest process trains the
same problem itself and restores the two-process checkpoint.
"""
import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jdl.parallel import distributed
from jdl.train import Checkpoints, read_metrics

HERE = os.path.dirname(os.path.abspath(__file__))
import distributed_checks as dc  # noqa: E402  (tests/ is on sys.path under pytest)

TOL = 1e-5
NPROC = 2
TIMEOUT = 600   # seconds; the two processes take ~20 s on an idle machine, minutes on a loaded one


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def tail(text: str, n: int = 3000) -> str:
    return "\n".join(l for l in text.splitlines() if not l.startswith("[Gloo]"))[-n:]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("distributed"))
    path = os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")])
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS",) and not k.startswith("JDL_")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=path)
    port = free_port()
    script = os.path.join(HERE, "distributed_checks.py")
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, script, str(i), str(NPROC), str(port), workdir],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
             for i in range(NPROC)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=TIMEOUT))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        outs = [p.communicate() for p in procs]
        pytest.fail("the two processes timed out:\n" + "\n".join(
            f"--- process {i} stderr:\n{tail(e)}" for i, (_, e) in enumerate(outs)))
    wall = time.perf_counter() - t0
    report = "\n".join(f"--- process {i} (rc {p.returncode}) stderr:\n{tail(e)}"
                       for i, (p, (_, e)) in enumerate(zip(procs, outs)))
    assert all(p.returncode == 0 for p in procs), f"a process failed:\n{report}"
    results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    return {"workdir": workdir, "results": results, "wall": wall, "report": report}


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory):
    assert jax.process_count() == 1
    return dc.run_fit(str(tmp_path_factory.mktemp("single")), devices=1)


def max_diff(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b)
    return max(float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))))
               for k in a)


def flat(params) -> dict:
    return {jax.tree_util.keystr(p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}


def test_two_processes_join_and_train(two_process_run):
    res = two_process_run["results"]
    assert [r["process_index"] for r in res] == [0, 1]
    for r in res:
        assert r["process_count"] == NPROC and r["global_devices"] == 4
        assert r["local_devices"] == 2 and r["num_devices"] == 4
        assert r["step"] == dc.EPOCHS * (dc.N // dc.B)
    assert res[0]["history"] == res[1]["history"]   # metrics are global, the same everywhere


def test_same_params_as_one_process(two_process_run, single_process_run):
    two = dict(np.load(os.path.join(two_process_run["workdir"], "params_2proc.npz")))
    one = flat(single_process_run.state.params)
    diff = max_diff(two, one)
    r0 = two_process_run["results"][0]
    print(f"2 processes x 2 devices vs 1 process: max abs param diff {diff:.2e}, "
          f"wall {two_process_run['wall']:.1f}s (initialize {r0['init_s']:.1f}s, fit "
          f"{r0['fit_wall_s']:.1f}s, stop + resume {r0['resume_s']:.1f}s)")
    assert diff <= TOL, two_process_run["report"]
    h2, h1 = two_process_run["results"][0]["history"], single_process_run.history
    assert len(h2) == len(h1)
    for a, b in zip(h2, h1):
        assert a.keys() == b.keys()
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-4, (k, a[k], b[k])


def test_checkpoint_restores_in_one_process(two_process_run, single_process_run):
    ckpt = Checkpoints(os.path.join(two_process_run["workdir"], "checkpoints"))
    try:
        steps = ckpt.steps()
        final = dc.EPOCHS * (dc.N // dc.B)
        # checkpoint_every=3 and each epoch end, the newest 3 kept
        assert steps == [4, 6, 8], steps
        state, loop = ckpt.restore(None, dc.problem()[2])
    finally:
        ckpt.close()
    assert int(state.step) == final
    two = dict(np.load(os.path.join(two_process_run["workdir"], "params_2proc.npz")))
    assert max_diff(flat(state.params), two) == 0.0
    assert len(loop["history"]) == dc.EPOCHS
    assert max_diff(flat(state.params), flat(single_process_run.state.params)) <= TOL


def test_resumed_across_processes(two_process_run):
    """Stopped after epoch 1 and resumed: both processes restore the shared checkpoint and
    end where the uninterrupted two-process run ends."""
    wd = two_process_run["workdir"]
    res = two_process_run["results"]
    for r in res:
        assert r["resumed_step"] == r["step"]
        assert r["resumed_history"] == r["history"]
    two = dict(np.load(os.path.join(wd, "params_2proc.npz")))
    resumed = dict(np.load(os.path.join(wd, "params_resumed.npz")))
    assert max_diff(two, resumed) <= 1e-6
    keys = [(r["kind"], r["step"]) for r in read_metrics(os.path.join(wd, "resumed"))]
    assert len(keys) == len(set(keys)), keys


def test_only_process_zero_logs(two_process_run):
    wd = two_process_run["workdir"]
    recs = read_metrics(wd)
    keys = [(r["kind"], r["step"]) for r in recs]
    assert len(keys) == len(set(keys)), f"duplicated records: {keys}"
    final = dc.EPOCHS * (dc.N // dc.B)
    assert [r["step"] for r in recs if r["kind"] == "epoch"] == [final // 2, final]
    assert [r["step"] for r in recs if r["kind"] == "train"] == list(range(2, final + 1, 2))
    events = [f for f in os.listdir(os.path.join(wd, "tb")) if "tfevents" in f]
    assert len(events) == 1, events


def test_initialize_reads_environment(monkeypatch):
    """Argument parsing only (a real join is the subprocess test above)."""
    monkeypatch.delenv(distributed.ENV_COORDINATOR, raising=False)
    monkeypatch.delenv(distributed.ENV_NUM_PROCESSES, raising=False)
    monkeypatch.delenv(distributed.ENV_PROCESS_ID, raising=False)
    assert not distributed.requested()
    assert distributed.requested(num_processes=2)
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "2")
    assert distributed.requested()
    monkeypatch.setenv(distributed.ENV_PROCESS_ID, "x")
    with pytest.raises(ValueError, match="JDL_PROCESS_ID"):
        distributed._env_int(distributed.ENV_PROCESS_ID)
    assert distributed.is_main_process() and not distributed.is_multiprocess()
    assert distributed.global_devices() == jax.devices()


def test_helpers_on_one_process():
    """to_global / to_local / global_batch / process_rows on this process's mesh of all its
    devices (the same code paths as across processes, minus the communication); the batch is
    a multiple of the device count, so it runs on 1 device and on 8 simulated ones."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    rep, spl = NamedSharding(mesh, P()), NamedSharding(mesh, P("batch"))
    d = len(jax.devices())
    tree = {"key": jax.random.key(1), "raw": jax.random.PRNGKey(2),
            "w": np.ones((4, 3), np.float32),
            "chains": np.arange(8 * d, dtype=np.float32).reshape(4 * d, 2)}
    g = distributed.to_global(tree, {"key": rep, "raw": rep, "w": rep, "chains": spl})
    assert g["chains"].sharding == spl and g["w"].sharding == rep
    back = distributed.to_local(g)
    np.testing.assert_array_equal(jax.random.key_data(back["key"]),
                                  jax.random.key_data(tree["key"]))
    np.testing.assert_array_equal(back["chains"], tree["chains"])
    np.testing.assert_array_equal(distributed.process_rows(spl, 8 * d), np.arange(8 * d))
    idx = np.tile([3, 1, 4, 0], d)
    batch = distributed.global_batch(spl, {"x": np.arange(10.0) * 2}, idx)
    np.testing.assert_array_equal(np.asarray(batch["x"]), np.tile([6.0, 2.0, 8.0, 0.0], d))
    spec = distributed.batch_spec(spl, {"x": np.zeros((10, 3), np.float32)}, 4 * d)
    assert spec["x"].shape == (4 * d, 3) and spec["x"].sharding == spl
