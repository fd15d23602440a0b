"""The lecture's canonical form in use: a recurrent network with time delays on its connections,

    y(t) = tanh( u(t) A_0 + u(t-1) A_1 + y(t-1) B_1 + y(t-2) B_2 + b ),

turned into canonical form (X(t), Y(t)) = f(X(t-1), U(t)) with the state X(t) = [y(t), y(t-1),
u(t)] of the delayed values (jdl.nn.DelayedStep inside jdl.nn.CanonicalRNN; tests/test_delays.py
checks it computes the delayed network written directly, with the same gradients), then trained
by back-propagation through time.

    python experiments/canonical_form.py [--workdir runs/canonical_form]

Task (system identification, teacher and student): a teacher of that architecture (n = 3 units,
m = 2 inputs, delays 0..1 on the inputs and 1..2 on the outputs, weights drawn at ``teacher_scale``
times the default initialisation so the delays matter) produces y*(t) from random inputs
u(t) ~ N(0, 1), sequences of ``T`` frames; students learn y* from (u, y*) pairs by BPTT (jax.grad
through the scanned canonical form), Adam, ``epochs`` epochs, quadratic error. Students:

- ``delayed``: the teacher's architecture in canonical form (8 state variables);
- ``one_delay``: the same units with delay 1 only (q = 1, p = 0: an Elman net with 3 units);
- ``elman8``: an Elman net with 8 hidden units (as many state variables as ``delayed``) and a
  linear readout.

Written to summary.json: test mean squared error per output and frame of each student and of
the zero predictor (the targets' mean square), training curves in curves.png.

Result (seed 0, default settings; 15 s of CPU, 11 min 12 s wall on the 2 cores shared with ~20 other
processes): test MSE per output and frame, zero predictor 0.780:

    delayed (canonical form of the teacher's architecture, 33 params)   8.4e-05
    elman8 (8 hidden units, readout, 115 params)                         1.6e-02
    one_delay (delay 1 only, 18 params)                                  2.2e-01

The delays are what the task needs: with them the canonical form, trained by BPTT, identifies the
teacher (four orders of magnitude below the zero predictor); the same units with delay 1 only
stall at 0.22, and an Elman net with as many state variables but no delay structure reaches 0.016.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import option, script  # noqa: E402
from jdl.runs.supervised import answer_help, start  # noqa: E402


@dataclasses.dataclass
class CanonicalConfig:
    units: int = option(3, "units n of the teacher and the delayed students", low=1)
    inputs: int = option(2, "inputs m per frame", low=1)
    output_delays: int = option(2, "delays 1..q of the outputs fed back (the teacher's and the "
                                "delayed student's q)", low=1)
    input_delays: int = option(1, "delays 0..p of the inputs (the teacher's and the delayed "
                               "student's p)", low=0)
    teacher_scale: float = 2.5          # teacher's weights: this times the default initialisation
    T: int = option(40, "frames per sequence", low=1)
    n_train: int = option(2000, "training sequences", low=1)
    n_test: int = option(500, "test sequences", low=1)
    batch_size: int = option(50, "sequences per update", low=1)
    epochs: int = option(30, "passes over the training sequences (each student)", low=1)
    learning_rate: float = 0.01         # Adam's learning rate
    seed: int = 0                       # seed of the data, the teacher and the students


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(CanonicalConfig, "canonical_form", __doc__, checkpoints=False)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jdl import optim  # noqa: E402
from jdl.nn import CanonicalRNN, DelayedStep, SequenceModel  # noqa: E402
from jdl.train import backprop, fit, init_state, make_train_step  # noqa: E402


def delayed_model(cfg: CanonicalConfig, q: int, p: int) -> CanonicalRNN:
    return CanonicalRNN(DelayedStep(cfg.units, q, p),
                        state_size=DelayedStep.state_size(cfg.inputs, cfg.units, q, p))


def make_data(cfg: CanonicalConfig):
    teacher = delayed_model(cfg, cfg.output_delays, cfg.input_delays)
    rng = np.random.default_rng(cfg.seed)
    u = rng.normal(size=(cfg.n_train + cfg.n_test, cfg.T, cfg.inputs)).astype(np.float32)
    params = teacher.init(jax.random.PRNGKey(cfg.seed + 1000), u[:1])["params"]
    params = jax.tree.map(lambda w: cfg.teacher_scale * w, params)
    params["cell"]["f"]["b"] = 0.3 * jnp.asarray(rng.normal(size=cfg.units), jnp.float32)
    y = np.asarray(jax.jit(lambda x: teacher.apply({"params": params}, x))(u))
    n = cfg.n_train
    return {"x": u[:n], "y": y[:n]}, {"x": u[n:], "y": y[n:]}


def run(cfg: CanonicalConfig, workdir: str, progress: bool = False) -> dict:
    t_start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    train, test = make_data(cfg)
    students = {
        "delayed": delayed_model(cfg, cfg.output_delays, cfg.input_delays),
        "one_delay": delayed_model(cfg, 1, 0),
        "elman8": SequenceModel(cell="elman",
                                hidden=DelayedStep.state_size(cfg.inputs, cfg.units,
                                                              cfg.output_delays,
                                                              cfg.input_delays),
                                num_outputs=cfg.units, readout="all"),
    }
    per_element = cfg.T * cfg.units          # quadratic_error sums over frames and outputs
    out = {"experiment": "canonical_form", "resumed": False, "config": dataclasses.asdict(cfg),
           "zero_predictor_mse": float(np.mean(test["y"] ** 2)), "students": {}}
    curves = {}
    for i, (name, model) in enumerate(students.items()):
        tx = optim.adam(cfg.learning_rate)
        state = init_state(model, tx, train["x"][:1], jax.random.PRNGKey(cfg.seed + i))
        res = fit(make_train_step(backprop(model, "quadratic"), tx), state, train,
                  epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                  progress=progress, tensorboard=False)
        params = res.state.params
        pred = np.asarray(jax.jit(lambda x: model.apply({"params": params}, x))(test["x"]))
        mse = float(np.mean((pred - test["y"]) ** 2))
        curves[name] = [r["train_loss"] / per_element for r in res.history]
        out["students"][name] = {"test_mse": mse, "train_mse_last_epoch": curves[name][-1],
                                 "train_time_s": res.train_time,
                                 "n_params": int(sum(np.size(w) for w in
                                                     jax.tree.leaves(params)))}
        print(f"{name:10s} test MSE {mse:.2e} (zero predictor "
              f"{out['zero_predictor_mse']:.2e}), {out['students'][name]['n_params']} params, "
              f"{res.train_time:.0f} s", flush=True)
    plot(curves, out["zero_predictor_mse"], os.path.join(workdir, "curves.png"))
    out["test"] = {"mse": out["students"]["delayed"]["test_mse"]}
    out["test_model"] = ("the delayed student (the teacher's architecture in canonical form), "
                         "final state; every student's figures under students")
    out["wall_time_s"] = time.perf_counter() - t_start
    return run_dir.RunDir(workdir).write_summary(out)


def plot(curves, zero_mse, path):
    from jdl.runs import plots

    fig = plots.figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, c in curves.items():
        ax.semilogy(np.arange(1, len(c) + 1), c, "o-", ms=3, label=name)
    ax.axhline(zero_mse, color="k", ls=":", label="zero predictor")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training MSE per output and frame")
    ax.set_title("learning a delayed network by BPTT in canonical form")
    ax.grid(alpha=0.3)
    ax.legend()
    plots.save(fig, path, dpi=110)


@script("canonical_form", CanonicalConfig)
def main(argv=None):
    cfg, ns = start(CanonicalConfig, "canonical_form", argv, __doc__, checkpoints=False)
    workdir = ns.workdir
    out = run(cfg, workdir, progress=not ns.no_progress)
    print(f"wall {out['wall_time_s']:.0f} s | outputs in {workdir}")
    return out


if __name__ == "__main__":
    main()
