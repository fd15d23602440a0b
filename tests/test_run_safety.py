"""Runs a researcher can trust (issue 12), the library side of fit: a workdir that knows which
run it holds, checkpoints that verify their checksums, SIGINT/SIGTERM, logs, label checks."""
import hashlib
import os
import signal

import jax
import numpy as np
import pytest

from jdl.nn import MLP
from jdl.train import (CheckpointError, Checkpoints, DataError, NonFiniteError,
                       TrainingInterrupted, WorkdirError, fit, read_metrics)

from conftest import tree_max_abs_diff
from test_train import setup


def snapshot(workdir) -> dict:
    """{relative path: sha256} of every file under workdir."""
    out = {}
    for root, _, files in os.walk(workdir):
        for f in files:
            path = os.path.join(root, f)
            out[os.path.relpath(path, workdir)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def run(train, workdir, model=None, **kw):
    _, _, state, step, _ = setup(train, model=model)
    args = dict(epochs=1, batch_size=32, progress=False, verbose=False,
                workdir=None if workdir is None else str(workdir))
    return fit(step, state, train, **{**args, **kw})


# ---------------------------------------------------------------- item 1: re-runs in a workdir

def test_rerun_resumes_the_same_run_and_refuses_another_before_touching_files(digits_small,
                                                                                tmp_path):
    train, _ = digits_small
    first = run(train, tmp_path)
    assert first.resumed_from is None
    before = snapshot(tmp_path)
    again = run(train, tmp_path)              # the README's example run twice: the same run
    assert again.resumed_from == 12 and again.history == first.history
    assert tree_max_abs_diff(again.state.params, first.state.params) == 0.0
    assert snapshot(tmp_path) == before        # finished: nothing rewritten, no new events

    with pytest.raises(WorkdirError) as e:    # more epochs without resume=True
        run(train, tmp_path, epochs=2)
    msg = str(e.value)
    assert "\n" not in msg and "epochs: 1 stored, 2 now" in msg
    assert "resume=True" in msg and "overwrite=True" in msg
    with pytest.raises(WorkdirError, match=r"another run's: state.params\['Dense_0'\]"
                                           r"\['bias'\] \(and 5 more\): \[\[32\], \"float32\"\] "
                                           r"stored, \[\[16\], \"float32\"\] now"):
        run(train, tmp_path, model=MLP(hidden=(16,)), epochs=2, resume=True)
    with pytest.raises(WorkdirError, match=r"seed: 0 stored, 3 now.*overwrite=True"):
        run(train, tmp_path, seed=3, resume=True)
    assert snapshot(tmp_path) == before        # refused runs touched nothing

    more = run(train, tmp_path, epochs=2, resume=True)     # allowed: more epochs
    assert more.resumed_from == 12 and [h["epoch"] for h in more.history] == [1, 2]
    assert [m["epoch"] for m in read_metrics(str(tmp_path), "epoch")] == [1, 2]
    other = run(train, tmp_path, model=MLP(hidden=(16,)), overwrite=True)
    assert other.resumed_from is None
    assert [m["epoch"] for m in read_metrics(str(tmp_path), "epoch")] == [1]
    assert Checkpoints(tmp_path / "checkpoints").steps() == [12]


def test_resume_on_an_empty_workdir_starts_fresh_and_says_so(digits_small, tmp_path):
    train, _ = digits_small
    r = run(train, tmp_path / "new", resume=True)
    assert r.resumed_from is None and int(r.state.step) == 12
    with pytest.raises(ValueError, match="resume=True and overwrite=True contradict"):
        run(train, tmp_path / "new", resume=True, overwrite=True)


# -------------------------------------------------------------- item 3: corrupt checkpoints

def garble(path: str, truncate: bool) -> None:
    """Flip the bytes in the middle of the largest array file of a checkpoint (same size), or
    cut it in half."""
    files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(path, "state")) for f in fs]
    target = max(files, key=os.path.getsize)
    data = bytearray(open(target, "rb").read())
    if truncate:
        data = data[: len(data) // 2]
    else:
        mid = len(data) // 2
        data[mid: mid + 8] = bytes(255 - b for b in data[mid: mid + 8])
    open(target, "wb").write(bytes(data))


@pytest.mark.parametrize("truncate", [False, True], ids=["garbled", "truncated"])
def test_corrupt_newest_checkpoint_is_refused_in_one_line_then_skipped_and_replaced(
        digits_small, tmp_path, capfd, truncate):
    train, _ = digits_small
    ref = run(train, tmp_path / "ref", epochs=2)
    wd = tmp_path / "run"
    run(train, wd, epochs=2, checkpoint_every=5)
    ck = Checkpoints(wd / "checkpoints")
    assert ck.steps() == [15, 20, 24]
    garble(ck.path(24), truncate)
    metrics = snapshot(wd)["metrics.jsonl"]
    capfd.readouterr()
    with pytest.raises(CheckpointError) as e:
        run(train, wd, epochs=2, checkpoint_every=5, resume=True)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("checkpoint step 24 (")
    assert "is corrupt: state/" in msg and "other checkpoints kept: [15, 20]" in msg
    assert "skip_corrupt=True" in msg
    err = capfd.readouterr().err
    assert "Traceback" not in err and "asyncio" not in err, err
    assert snapshot(wd)["metrics.jsonl"] == metrics            # detected before training
    r = run(train, wd, epochs=2, checkpoint_every=5, resume=True, skip_corrupt=True)
    assert r.resumed_from == 20
    assert tree_max_abs_diff(r.state.params, ref.state.params) == 0.0
    assert ck.problem(24) is None                               # replaced by a good one
    assert int(ck.restore(None, r.state)[0].step) == 24


def test_nan_guard_never_names_a_corrupt_checkpoint(digits_small, tmp_path):
    """Checkpoint 8 is garbled after it was written; the NaN at step 10 names step 4."""
    train, _ = digits_small
    x = train["x"].copy()
    from jdl.data import batch_indices
    x[batch_indices(len(x), 32, seed=0, epoch=0)[9][3], 2, 2, 0] = np.nan

    def on_step(s):
        if s == 9:
            garble(str(tmp_path / "checkpoints" / "last" / "8"), truncate=False)

    with pytest.raises(NonFiniteError, match=r"at step 10\b.*last good checkpoint is step 4\b"):
        run({"x": x, "y": train["y"]}, tmp_path, epochs=2, checkpoint_every=4, log_every=100,
            on_step=on_step)


# ------------------------------------------------------------------ item 9: SIGINT / SIGTERM

@pytest.mark.parametrize("workdir", [True, False])
def test_sigterm_finishes_the_step_saves_and_raises(digits_small, tmp_path, workdir):
    train, _ = digits_small
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def on_step(s):
        if s == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted) as e:
        run(train, tmp_path if workdir else None, epochs=2, on_step=on_step)
    assert (e.value.signum, e.value.step, e.value.exit_code) == (signal.SIGTERM, 5, 143)
    assert "SIGTERM after step 5" in str(e.value)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    if workdir:
        assert "resume=True" in str(e.value)
        assert Checkpoints(tmp_path / "checkpoints").steps() == [5]
    else:
        assert "nothing was saved" in str(e.value)


# -------------------------------------------------------------------------------- item 11: logs

@pytest.mark.parametrize("progress", [True, False])
def test_one_line_per_epoch_and_no_progress_frames_off_a_terminal(digits_small, capfd,
                                                                    progress):
    train, _ = digits_small
    _, _, state, step, _ = setup(train)
    capfd.readouterr()
    fit(step, state, train, epochs=2, batch_size=32, progress=progress)
    out, err = capfd.readouterr()          # stderr is a pipe here, not a terminal
    assert [l.split(":")[0] for l in out.splitlines()] == ["epoch 1", "epoch 2"]
    assert "train_loss" in out.splitlines()[0]
    assert "\r" not in err and "it/s" not in err and "epoch 1/2" not in err
    fit(step, state, train, epochs=1, batch_size=32, progress=progress, verbose=False)
    assert capfd.readouterr() == ("", "")


# ------------------------------------------------------------------ item 5: labels and images

@pytest.mark.parametrize("change, msg", [
    (lambda x, y: (x, y + 10), r"train data\['y'\]: labels must lie in \[0, 10\) \(the model "
                               r"has 10 outputs\), got range \[10, 19\] \(400 of 400 outside\)"),
    (lambda x, y: (x, y - 1), r"got range \[-1, 8\] \(\d+ of 400 outside\)"),
    (lambda x, y: (x, y[:, None]), r"train data\['y'\]: expected class labels of shape \(N\) "
                                   r"for a model with outputs \(N, 10\), got \(400, 1\)"),
    (lambda x, y: (x, y.astype(np.float32)), r"cross_entropy loss expects integer class "
                                             r"labels \(N\) in \[0, 10\), got dtype float32"),
    (lambda x, y: ((x * 16).astype(np.uint8), y), r"train data\['x'\]: expected floating-point "
                                                  r"inputs, got uint8; cast"),
])
def test_fit_checks_labels_and_images_against_the_model_without_num_classes(digits_small,
                                                                              change, msg):
    train, val = digits_small
    _, _, state, step, ev = setup(train)
    x, y = change(train["x"], train["y"])
    with pytest.raises(DataError, match=msg):
        fit(step, state, {"x": x, "y": y}, epochs=1, batch_size=32, progress=False)
    bad_val = {"x": val["x"], "y": val["y"] + 10}
    with pytest.raises(DataError, match=r"validation data\['y'\]: labels must lie in \[0, 10\)"):
        fit(step, state, train, epochs=1, batch_size=32, eval_step=ev, val_data=bad_val,
            progress=False)
