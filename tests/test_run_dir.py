"""The command line and the run directory (issue 12): re-runs refuse or resume before touching
anything, --resume checks what it resumes, --data-dir is never silently replaced, errors are one
line with exit status 2, --help documents every option and answers without importing JAX, and
scripts/quickstart.sh keeps a relative --workdir relative to the caller."""
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from experiment_scripts import load  # noqa: E402
from jdl.runs import supervised as experiment  # noqa: E402
from jdl.runs.run_dir import RunDir  # noqa: E402

quickstart = load("quickstart")

TINY = ["--dataset", "digits", "--epochs", "1", "--max-train-examples", "64", "--batch-size",
        "32", "--hidden", "8", "--no-progress", "--log-every", "1"]


def _main(argv):
    return experiment.main(quickstart.Config, quickstart.build_model, "quickstart", argv)


def _snapshot(folder):
    """{relative path: (sha1, mtime)} of every file under ``folder``."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, folder)] = (hashlib.sha1(open(p, "rb").read()).hexdigest(),
                                               os.stat(p).st_mtime_ns)
    return out


def _refused(argv, capsys, *expected, code=2):
    with pytest.raises(SystemExit) as e:
        _main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == code, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, (text, err)
    return err


def _fake_fashion(folder, n=40):
    from jdl.data import write_idx
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for split in ("train", "t10k"):
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte"),
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte"),
                  rng.integers(0, 10, n, dtype=np.uint8))


def test_rerun_refuses_before_touching_anything_and_auto_is_resolved_once(tmp_path, capsys,
                                                                          monkeypatch):
    """Item 1: the same command twice in one workdir, the data set installed in between."""
    empty = tmp_path / "fashion"
    empty.mkdir()
    monkeypatch.setenv("JDL_FASHION_MNIST_DIR", str(empty))   # Fashion-MNIST "not installed"
    work = str(tmp_path / "run")
    argv = TINY[2:] + ["--dataset", "auto", "--workdir", work]
    s = _main(argv)
    assert s["dataset"] == "digits"
    assert "Fashion-MNIST was not found" in capsys.readouterr().out   # how to get it
    cfg = json.load(open(os.path.join(work, "config.json")))
    assert cfg["dataset"] == "digits" and cfg["resolved_dataset"] == "digits"
    before = _snapshot(work)
    _fake_fashion(str(empty))                                  # now "installed"
    _refused(argv, capsys, work, "--resume", "--overwrite", "--workdir")
    assert _snapshot(work) == before
    # --resume takes the data set recorded when the run started, not what auto says now
    s = _main(argv + ["--resume"])
    assert s["dataset"] == "digits" and s["resumed"] is True
    assert json.load(open(os.path.join(work, "config.json")))["dataset"] == "digits"
    # --overwrite replaces the run: auto resolves afresh (to the fake Fashion-MNIST)
    s = _main(argv + ["--overwrite", "--batch-size", "8"])
    assert s["dataset"] == "fashion_mnist" and s["resumed"] is False
    assert json.load(open(os.path.join(work, "config.json")))["dataset"] == "fashion_mnist"


def test_resume_checks_the_config_and_pins_the_schedule(tmp_path, capsys):
    """Item 4: only resumable fields may change; more epochs keep the schedule's length."""
    work = str(tmp_path / "run")
    argv = TINY + ["--momentum", "0", "--workdir", work]
    first = _main(argv)
    before = _snapshot(work)
    err = _refused(argv + ["--resume", "--learning-rate", "0.1", "--seed", "3"], capsys,
                   "--learning-rate 0.05 there, 0.1 now", "--seed 0 there, 3 now", "--epochs")
    assert "--hidden" not in err
    assert _snapshot(work) == before
    # cosine over 1 epoch reached 0: a second epoch with the schedule pinned changes nothing
    s = _main(argv + ["--resume", "--epochs", "2"])
    assert s["final_test"] == first["final_test"] and s["steps"] == 2 * first["steps"]
    cfg = json.load(open(os.path.join(work, "config.json")))
    assert cfg["epochs"] == 2 and cfg["schedule_epochs"] == 1
    assert cfg["resumes"][-1]["changed"]["epochs"] == [1, 2]
    # asked to stretch it, the third epoch trains again
    s3 = _main(argv + ["--resume", "--epochs", "3", "--stretch-schedule"])
    assert s3["final_test"]["loss"] != s["final_test"]["loss"]


def test_resume_without_a_run_is_refused(tmp_path, capsys):
    for work in (tmp_path / "missing", tmp_path):
        _refused(TINY + ["--workdir", str(work), "--resume"], capsys, "holds no run to resume",
                 "drop --resume")
    assert not (tmp_path / "missing").exists() and list(tmp_path.iterdir()) == []


def test_explicit_data_dir_without_the_files_is_an_error(tmp_path, capsys):
    """Item 2: never silently replaced by the Debian folder, nothing written."""
    work = tmp_path / "run"
    for dataset in ("fashion_mnist", "auto"):
        _refused(["--dataset", dataset, "--data-dir", "/nonexistent/dir", "--workdir", str(work)],
                 capsys, "/nonexistent/dir", "no such folder")
    assert not work.exists()


@pytest.mark.parametrize("args, expected", [
    (["--hidden", "0"], "hidden must be >= 1"),
    (["--activation", "foo"], "activation must be one of"),
    (["--schedule", "foo"], "schedule must be one of"),
    (["--epochs", "x"], "argument --epochs: expected an integer, got 'x'"),
    (["--learning-rate", "-1"], "learning_rate must be > 0"),
])
def test_invalid_values_are_one_line_before_any_data_is_loaded(args, expected, tmp_path, capsys,
                                                               monkeypatch):
    """Item 8: choices and bounds are checked before the data are loaded."""
    def no_loading(cfg):
        raise AssertionError("data loaded before the config was checked")
    monkeypatch.setattr(experiment, "load_data", no_loading)
    _refused(TINY + args + ["--workdir", str(tmp_path / "run")], capsys, expected)
    assert not (tmp_path / "run").exists()


def test_errors_after_loading_are_one_line_and_debug_shows_them(tmp_path, capsys, monkeypatch):
    work = str(tmp_path / "run")
    _refused(TINY + ["--batch-size", "4096", "--workdir", work], capsys,
             "batch_size 4096 exceeds the 64 training examples", "(change --batch-size)")
    with pytest.raises(ValueError, match="exceeds"):
        _main(TINY + ["--batch-size", "4096", "--workdir", work, "--debug"])

    class Interrupted(Exception):   # the contract with jdl.train: an exit_code of its own
        exit_code = 130

    def interrupted(*a, **k):
        raise Interrupted("interrupted at step 7; checkpoint saved: add --resume to continue")
    monkeypatch.setattr(experiment, "run", interrupted)
    _refused(TINY + ["--workdir", work], capsys, "interrupted at step 7", code=130)


def test_errors_exit_2_in_one_line_without_traceback():
    """Item 8, as a process: the status and stderr a shell sees."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "experiments/quickstart.py", "--hidden", "0"], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "hidden must be >= 1" in out.stderr


def _help_of_every_script():
    """Run each experiment's --help in one process: {script: (help text, seconds, jax imported)}."""
    code = r"""
import contextlib, glob, io, json, os, runpy, sys, time
out = {}
for path in sorted(glob.glob("experiments/*.py")):
    name = os.path.basename(path)[:-3]
    if name == "__init__":
        continue
    sys.argv = [path, "--help"]
    buf, t = io.StringIO(), time.perf_counter()
    with contextlib.redirect_stdout(buf):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit:
            pass
    out[name] = (buf.getvalue(), time.perf_counter() - t, "jax" in sys.modules)
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": ROOT}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.splitlines()[-1])


def test_help_documents_each_option_once_and_imports_no_jax():
    """Item 10: descriptions, choices and defaults; no OPTIONAL/TUPLE placeholders; each option
    once; image flags only on image scripts; --resume only where checkpoints are written; no
    JAX import (the whole --help of a script in well under a second)."""
    helps = _help_of_every_script()
    assert len(helps) >= 15
    for name, (text, seconds, jax_imported) in helps.items():
        assert not jax_imported, f"{name} --help imports jax"
        assert "OPTIONAL" not in text and "TUPLE" not in text and "<lambda>" not in text, name
        options = [ln.split()[0] for ln in text.split("\n\n", 2)[-1].splitlines()
                   if ln.startswith("  --")]
        assert len(options) == len(set(options)), (name, options)
        assert not any("_" in o for o in options), (name, options)
        lines = text.splitlines()
        for i, ln in enumerate(lines):   # every option has a description besides its default
            if ln.startswith("  --") and ln.split()[0] not in ("--workdir",):
                desc = " ".join(ln.split()[2:]) if len(ln.split()) > 2 else lines[i + 1].strip()
                assert desc and not desc.startswith("(default"), (name, ln)
    flat = {k: " ".join(v[0].split()) for k, v in helps.items()}
    assert "[choices: lstm, gru, tanh, irnn, elman]" in flat["rnn_adding"]
    assert "--resume" in helps["rnn_adding"][0] and "--resume" not in helps["rbm_digits"][0]
    for seq in ("rnn_adding", "rnn_copy", "char_lm", "bptt_vs_rtrl"):
        assert "--dataset" not in helps[seq][0] and "--normalize" not in helps[seq][0], seq
    assert "--loss TEXT training loss (the task's) [choices: quadratic] (default: quadratic)" \
        in flat["rnn_adding"]
    assert "--resume" not in flat["rnn_gradients"] and "--resume" in flat["quickstart"]


def test_no_prefix_matching_and_one_spelling_shown(capsys, tmp_path):
    _refused(TINY + ["--epoch", "1", "--workdir", str(tmp_path)], capsys,
             "unrecognized arguments: --epoch")
    cfg, _ = experiment.parse_args(quickstart.Config, ["--batch_size", "16", "--max-train-examples",
                                                       "none"])
    assert cfg.batch_size == 16 and cfg.max_train_examples is None


def test_documented_choices_are_the_librarys():
    from jdl import optim
    from jdl.nn.activations import ACTIVATIONS
    from jdl.nn.recurrent import SequenceModel
    from jdl.runs.sequences import CELLS
    assert set(experiment.ACTIVATIONS) == set(ACTIVATIONS)
    for name in experiment.SCHEDULES:
        optim.make_schedule(name, 0.1, total_steps=10, decay=0.1)
    with pytest.raises(ValueError):
        optim.make_schedule("foo", 0.1)
    import jax
    for cell in CELLS:
        SequenceModel(cell, 4, 1).init(jax.random.PRNGKey(0), np.zeros((1, 3, 2), np.float32))


# --- scripts/quickstart.sh, run as a user would, with this Python as the "venv" -------------------
def _quickstart_sh(cwd, args, tmp_path, extra_env=None):
    venv = tmp_path / "venv"
    if not (venv / ".jdl-installed").exists():
        (venv / "bin").mkdir(parents=True)
        wrapper = venv / "bin" / "python"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        wrapper.chmod(0o755)
        time.sleep(0.01)
        (venv / ".jdl-installed").touch()   # newer than pyproject.toml: no install step
    env = {**os.environ, "JDL_VENV": str(venv), "PYTHONPATH": ROOT, **(extra_env or {})}
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", "quickstart.sh"), *args],
                          cwd=cwd, capture_output=True, text=True, env=env)


def test_quickstart_three_times_with_the_data_installed_in_between(tmp_path):
    """Item 12 and the acceptance check: a relative --workdir lands in the caller's directory;
    the same command three times, Fashion-MNIST installed after the first: the first trains,
    the next two refuse in one line and leave the first run's files as they were."""
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    env = {"JDL_FASHION_MNIST_DIR": str(fashion)}
    args = ["--epochs", "1", "--max-train-examples", "64", "--hidden", "8", "--no-progress",
            "--workdir", "runs/qs"]
    first = _quickstart_sh(tmp_path, args, tmp_path, env)
    assert first.returncode == 0, first.stderr[-2000:]
    work = tmp_path / "runs" / "qs"
    assert (work / "summary.json").exists() and not os.path.exists(os.path.join(ROOT, "runs/qs"))
    assert json.load(open(work / "summary.json"))["dataset"] == "digits"
    before = _snapshot(work)
    _fake_fashion(str(fashion))
    for _ in range(2):
        again = _quickstart_sh(tmp_path, args, tmp_path, env)
        assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1, again.stderr
        assert "already holds a run" in again.stderr
        assert _snapshot(work) == before


def test_filter_plot_says_how_many_units_it_shows(tmp_path):
    from jdl.runs.plots import filter_images, filters_title
    kernel = np.random.default_rng(0).normal(size=(64, 256)).astype(np.float32)
    assert len(filter_images(kernel, (8, 8))) == 64
    assert filters_title("quickstart", 64, kernel.shape[-1]) == \
        "quickstart (the first 64 of 256 units)"
    assert filters_title("quickstart", 16, 16) == "quickstart"


def test_run_dir_rules_without_training(tmp_path):
    """jdl.runs.run_dir on hand-made folders: what counts as a run, the hint of scripts that write no
    checkpoints, --overwrite removing only what runs write, the summary schema."""
    from jdl.runs import run_dir
    work = tmp_path / "w"
    (work / "lstm" / "checkpoints" / "last").mkdir(parents=True)   # a model of a multi-model run
    (work / "notes.txt").write_text("mine")
    (work / "config.json").write_text(json.dumps({"epochs": 1, "hidden": [8]}))
    assert run_dir.holds_run(str(work)) and not run_dir.holds_run(str(tmp_path / "none"))
    with pytest.raises(run_dir.RunDirError) as e:
        run_dir.check(str(work), {"epochs": 1}, can_resume=False)
    assert "--resume" not in str(e.value) and "--overwrite" in str(e.value)
    assert run_dir.check(str(work), {"epochs": 2, "hidden": (8,)}, resume=True,
                         resumable={"epochs"}) == {"epochs": 1, "hidden": [8]}
    rd = run_dir.RunDir(str(work))
    rd.begin({"epochs": 3}, overwrite=True)
    assert sorted(os.listdir(work)) == ["config.json", "notes.txt"]
    with pytest.raises(ValueError, match="test_model"):
        rd.write_summary({"experiment": "x", "test": None, "resumed": False, "wall_time_s": 1.0})
    s = rd.write_summary({"experiment": "x", "test": {"accuracy": 0.5},
                          "test_model": "final state", "resumed": False, "wall_time_s": 1.0})
    assert json.load(open(work / "summary.json")) == s
    assert s["test_accuracy"] == 0.5 and s["test_loss"] is None and s["schema"] == "jdl.summary/1"
    old = tmp_path / "old"   # a run of an earlier version stored 'auto' and what it resolved to
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"dataset": "auto", "resolved_dataset": "digits"}))
    assert run_dir.read_config(str(old))["dataset"] == "digits"


def test_only_the_main_process_writes_the_run_directory(tmp_path):
    """RunDir's main-process rule: another process (main=False) validates the summary and
    returns the same record, but writes no file, draws no figure and prints nothing."""
    summary = {"experiment": "x", "test": {"loss": 1.5}, "test_model": "final state",
               "resumed": False, "wall_time_s": 2.0}
    drawn = []
    written = {}
    for main in (True, False):
        rd = RunDir(str(tmp_path / str(main)), main=main)
        rd.begin({"epochs": 1})
        written[main] = rd.write_summary(summary)
        rd.write_text("table.md", "| a |")
        rd.plot(lambda values, path: drawn.append((values, path)), "curve.png", [1, 2])
        assert rd.sub("cell").main is main
    assert written[True] == written[False] and written[False]["test_loss"] == 1.5
    assert sorted(os.listdir(tmp_path / "True")) == ["config.json", "summary.json", "table.md"]
    assert not (tmp_path / "False").exists()
    assert drawn == [([1, 2], str(tmp_path / "True" / "curve.png"))]
    assert RunDir(str(tmp_path / "True")).read_summary() == written[True]


def test_the_run_layer_imports_neither_jax_nor_matplotlib_and_draws_without_pyplot(tmp_path):
    """Importing jdl.runs (and its command line, run directory, runners and plots) starts
    neither JAX nor matplotlib; a figure is then drawn by matplotlib's object API: the PNG is
    written, pyplot is never imported and the backend is left as it was."""
    code = f"""
import sys
import jdl.runs, jdl.runs.command_line, jdl.runs.run_dir, jdl.runs.supervised
import jdl.runs.sequences, jdl.runs.transfer_config, jdl.runs.plots
print(sorted(m for m in ("jax", "matplotlib") if m in sys.modules))
from jdl.runs import plots
plots.plot_learning_curves([{{"epoch": 1, "train_loss": 1.0}}, {{"epoch": 2, "train_loss": 0.5}}],
                           {str(tmp_path / "lc.png")!r}, "t")
plots.plot_image_grid([[[0.0, 1.0]]] * 3, {str(tmp_path / "g.png")!r}, cols=2)
print("matplotlib.pyplot" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "False"]
    for name in ("lc.png", "g.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
