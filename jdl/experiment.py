"""Shared experiment runner: configs as dataclasses, command-line overrides, one training path.

An experiment script declares a config dataclass (subclassing :class:`ExperimentConfig`) and a
``build_model(config)``; :func:`main` parses ``--field value`` overrides, ``--workdir`` and
``--resume``, then :func:`run` loads the data, normalises it, builds the optimiser, trains with
:func:`jdl.train.fit`, evaluates on the test set and writes, under the workdir: config.json,
metrics.jsonl, TensorBoard events, checkpoints/, summary.json and PNGs of the learning curves
and first-layer filters.

``--devices N`` trains data-parallel on the first N local devices (default: all of them) and
``--parallel sharded|pmap`` picks how (jdl.parallel); ``--batch-size`` is the global batch,
split equally between the devices.

Several hosts: ``--coordinator-address host:port --num-processes N --process-id i`` (or the
environment variables JDL_COORDINATOR_ADDRESS, JDL_NUM_PROCESSES, JDL_PROCESS_ID), given to
every script that uses :func:`parse_args`, join the processes with ``jax.distributed``
(jdl.parallel.distributed.initialize) as soon as the command line is parsed; ``--batch-size``
is then the global batch over every device of every process, and only process 0 writes the
workdir's logs, config, summary and plots (checkpoints are written by all, into the shared
workdir).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import types
import typing
from typing import Callable, Optional

import jax
import numpy as np

from jdl import optim, plots
from jdl.data import digits, fashion_mnist, fit_normalizer, train_val_split
from jdl.parallel import distributed
from jdl.train.guards import spec_of, tree_spec
from jdl.train import (backprop, check_inputs, check_labels, evaluate, evaluate_fn, fit,
                       init_state, make_eval_step, make_train_step, num_params)

DATASETS = ("fashion_mnist", "mnist", "digits", "auto")
PARALLEL_MODES = ("sharded", "pmap")


@dataclasses.dataclass
class ExperimentConfig:
    """Fields shared by every supervised experiment (override any with --name value)."""
    dataset: str = "fashion_mnist"      # fashion_mnist | mnist | digits | auto (fashion if installed)
    data_dir: Optional[str] = None      # folder of IDX files (else $JDL_FASHION_MNIST_DIR, Debian's)
    val_fraction: float = 0.1
    val_split: str = "random"           # random (seeded) | last (Keras' validation_split)
    normalize: str = "global"           # global | per_feature | none (then pixels / 255)
    batch_size: int = 128
    epochs: int = 10
    optimizer: str = "sgd"              # sgd | adam
    learning_rate: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "cosine"            # constant | step | exponential | inverse_time | cosine
    lr_every_epochs: float = 10.0       # step / exponential: decay period in epochs
    lr_gamma: float = 0.1               # step / exponential: factor per period
    lr_decay: float = 0.0               # inverse_time: lambda0 / (1 + decay * t)
    l2: float = 0.0                     # beta of beta * sum W^2 (kernels only)
    l1: float = 0.0                     # beta of beta * sum |W|
    penalty_start_epoch: int = 0        # switch the penalties on after this many epochs
    clip_norm: Optional[float] = None   # clip gradients by global norm
    loss: str = "cross_entropy"         # cross_entropy | quadratic
    seed: int = 0
    checkpoint_every: Optional[int] = None  # steps; None: each epoch end only
    keep: int = 3
    patience: Optional[int] = None      # early stopping on val accuracy
    log_every: int = 100
    eval_batch_size: int = 1000
    max_train_examples: Optional[int] = None  # subsample the training set (smoke runs)
    devices: Optional[int] = None       # data parallelism: None all local devices, or the first N
    parallel: str = "sharded"           # sharded (jit over a device mesh) | pmap

    def validate(self) -> None:
        """Refuse invalid hyper-parameters before any work, with the field's name."""
        errs = []
        if self.dataset not in DATASETS:
            errs.append(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            errs.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.val_split not in ("random", "last"):
            errs.append(f"val_split must be 'random' or 'last', got {self.val_split!r}")
        if self.normalize not in ("global", "per_feature", "none"):
            errs.append(f"normalize must be global, per_feature or none, got {self.normalize!r}")
        if self.batch_size <= 0:
            errs.append(f"batch_size must be a positive integer, got {self.batch_size}")
        if self.epochs <= 0:
            errs.append(f"epochs must be a positive integer, got {self.epochs}")
        if self.optimizer not in ("sgd", "adam"):
            errs.append(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not self.learning_rate > 0:
            errs.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.momentum < 1.0:
            errs.append(f"momentum must be in [0, 1), got {self.momentum}")
        for name in ("l2", "l1", "lr_decay"):
            if getattr(self, name) < 0:
                errs.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr_every_epochs <= 0 or not 0 < self.lr_gamma <= 1:
            errs.append("lr_every_epochs must be > 0 and lr_gamma in (0, 1]")
        if self.clip_norm is not None and self.clip_norm <= 0:
            errs.append(f"clip_norm must be > 0, got {self.clip_norm}")
        if self.checkpoint_every is not None and self.checkpoint_every <= 0:
            errs.append(f"checkpoint_every must be > 0, got {self.checkpoint_every}")
        if self.patience is not None and self.patience <= 0:
            errs.append(f"patience must be > 0, got {self.patience}")
        if self.keep < 1:
            errs.append(f"keep must be >= 1, got {self.keep}")
        if self.devices is not None and self.devices < 1:
            errs.append(f"devices must be >= 1 or None (all local devices), got {self.devices}")
        if self.parallel not in PARALLEL_MODES:
            errs.append(f"parallel must be one of {PARALLEL_MODES}, got {self.parallel!r}")
        if self.devices is not None and self.batch_size > 0 and self.batch_size % self.devices:
            errs.append(f"batch_size {self.batch_size} (the global batch) must be a multiple of "
                        f"devices ({self.devices})")
        for f in dataclasses.fields(self):
            if "rate" in f.name or f.name.startswith("drop"):
                v = getattr(self, f.name)
                if isinstance(v, float) and f.name != "learning_rate" and not 0.0 <= v < 1.0:
                    errs.append(f"{f.name} must be in [0, 1), got {v}")
        if errs:
            raise ValueError("invalid configuration: " + "; ".join(errs))


# --- data -------------------------------------------------------------------------------------
def load_data(cfg: ExperimentConfig):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test), name) as float32 NHWC, int32."""
    name = cfg.dataset
    if name == "auto":
        name = "fashion_mnist" if fashion_mnist.is_available(data_dir=cfg.data_dir) else "digits"
    if name == "digits":
        tr, te = digits.load("train", seed=0), digits.load("test", seed=0)
        scale = 16.0
    else:
        tr = fashion_mnist.load("train", name=name, data_dir=cfg.data_dir)
        te = fashion_mnist.load("test", name=name, data_dir=cfg.data_dir)
        scale = 255.0
    seed = None if cfg.val_split == "last" else cfg.seed
    (xtr, ytr), (xva, yva) = train_val_split(tr.images, tr.labels, cfg.val_fraction, seed=seed)
    if cfg.max_train_examples:
        xtr, ytr = xtr[: cfg.max_train_examples], ytr[: cfg.max_train_examples]
    if cfg.normalize == "none":
        norm = lambda x: (np.asarray(x, np.float32) / scale)  # noqa: E731
    else:
        norm = fit_normalizer(xtr, per_feature=cfg.normalize == "per_feature")
    return (norm(xtr), ytr), (norm(xva), yva), (norm(te.images), te.labels), name


def build_optimizer(cfg: ExperimentConfig, steps_per_epoch: int):
    lr = optim.make_schedule(cfg.schedule, cfg.learning_rate,
                             total_steps=cfg.epochs * steps_per_epoch,
                             every=max(1, int(round(cfg.lr_every_epochs * steps_per_epoch))),
                             gamma=cfg.lr_gamma, decay=cfg.lr_decay)
    common = dict(l2=cfg.l2, l1=cfg.l1, penalty_start_step=cfg.penalty_start_epoch * steps_per_epoch,
                  clip_norm=cfg.clip_norm)
    if cfg.optimizer == "sgd":
        return optim.sgd(lr, cfg.momentum, nesterov=cfg.nesterov, **common)
    return optim.adam(lr, **common)


def _first_kernel(params):
    node = params
    while isinstance(node, dict):
        if "kernel" in node:
            return node["kernel"]
        node = next(iter(node.values()))
    return None


# --- the run ---------------------------------------------------------------------------------
def run(cfg: ExperimentConfig, build_model: Callable, workdir: str, resume: bool = False,
        resume_step: int | None = None, progress: bool = True, title: str = "",
        initial_params=None, wrap_grad_fn: Callable | None = None) -> dict:
    """Train ``build_model(cfg)`` as ``cfg`` says and evaluate it; returns the summary dict.
    ``initial_params`` (a params pytree shaped like the model's, e.g. from a pretrained DBN,
    ``jdl.rbm.dbn.to_mlp_params``) replaces the random initialisation. ``wrap_grad_fn(grad_fn,
    cfg) -> grad_fn`` wraps the back-propagation gradient function inside the train step (e.g.
    data augmentation, ``jdl.data.augment.augmented``)."""
    cfg.validate()
    t0 = time.perf_counter()
    (xtr, ytr), (xva, yva), (xte, yte), dataset = load_data(cfg)
    model = build_model(cfg)
    rng = jax.random.PRNGKey(cfg.seed)
    out_shape = jax.eval_shape(lambda x: model.init_with_output(rng, x)[0], xtr[:1]).shape
    num_classes = out_shape[-1]
    for nm, x, y in (("train", xtr, ytr), ("validation", xva, yva), ("test", xte, yte)):
        if len(x):
            check_inputs(x, xtr.shape[1:], f"{nm} inputs")
            check_labels(y, num_classes, f"{nm} labels")
    spe = len(xtr) // cfg.batch_size
    if spe == 0:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {len(xtr)} training examples")
    tx = build_optimizer(cfg, spe)
    state = init_state(model, tx, xtr[: cfg.batch_size], rng)
    if initial_params is not None:
        given, expected = tree_spec(initial_params), tree_spec(state.params)
        if given != expected:
            raise ValueError(f"initial_params do not match the model's parameters: "
                             f"{given} vs {expected}")
        state = state.replace(params=initial_params, opt_state=tx.init(initial_params))
    grad_fn = backprop(model, loss=cfg.loss)
    if wrap_grad_fn is not None:
        grad_fn = wrap_grad_fn(grad_fn, cfg)
    step = make_train_step(grad_fn, tx,
                           batch_spec=spec_of({"x": xtr, "y": ytr}))
    eval_step = make_eval_step(evaluate_fn(model, loss=cfg.loss))

    main_process = distributed.is_main_process()  # several hosts: process 0 writes the outputs
    os.makedirs(workdir, exist_ok=True)
    if main_process:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump({**dataclasses.asdict(cfg), "resolved_dataset": dataset,
                       "model": repr(model)}, f, indent=2)
    has_val = len(xva) > 0
    result = fit(step, state, {"x": xtr, "y": ytr}, epochs=cfg.epochs, batch_size=cfg.batch_size,
                 eval_step=eval_step, val_data={"x": xva, "y": yva} if has_val else None,
                 seed=cfg.seed, workdir=workdir, checkpoint_every=cfg.checkpoint_every,
                 keep=cfg.keep, patience=cfg.patience, resume=resume, resume_step=resume_step,
                 log_every=cfg.log_every, progress=progress, num_classes=num_classes,
                 eval_batch_size=cfg.eval_batch_size, devices=cfg.devices, parallel=cfg.parallel)
    test = evaluate(eval_step, result.state, {"x": xte, "y": yte}, cfg.eval_batch_size)
    summary = {
        "experiment": title, "dataset": dataset, "test_accuracy": test.get("accuracy"),
        "test_loss": test["loss"], "final_epoch": result.history[-1] if result.history else None,
        "best_epoch": result.best, "stopped_early": result.stopped_early,
        "num_params": num_params(result.state.params), "wall_time_s": time.perf_counter() - t0,
        "fit_wall_time_s": result.wall_time, "compile_time_s": result.compile_time,
        "train_time_s": result.train_time, "samples_per_s": result.samples_per_s,
        "steps": int(result.state.step), "devices": [str(d) for d in jax.devices()],
        "num_devices": result.num_devices, "parallel": cfg.parallel,
        "resumed": bool(resume), "num_processes": jax.process_count(),
    }
    if not main_process:
        return summary
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if result.history:
        plots.plot_learning_curves(result.history, os.path.join(workdir, "learning_curves.png"), title)
    kernel = _first_kernel(result.state.params)
    if kernel is not None:
        plots.plot_filters(kernel, os.path.join(workdir, "filters.png"), xtr.shape[1:],
                           title=f"{title} first-layer filters")
    return summary


# --- command line ----------------------------------------------------------------------------
def _parse_value(tp, text: str):
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:   # Optional[int] or int | None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        return _parse_value(args[0], text)
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(tp) or (int,)
        return tuple(_parse_value(inner, t) for t in text.replace(",", " ").split())
    if tp is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")
    return tp(text)


def parse_args(config_cls, argv=None, description: str = ""):
    """argparse over every field of ``config_cls`` (``--batch-size 64`` or ``--batch_size 64``),
    plus --workdir, --resume, --resume-step, --no-progress, and the multi-host flags
    --coordinator-address, --num-processes, --process-id: when any of them (or one of the
    JDL_* environment variables they default to) is given, this process joins the run with
    ``jdl.parallel.distributed.initialize`` right here, before any JAX computation."""
    hints = typing.get_type_hints(config_cls)
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default=None, help="output folder (default runs/<experiment>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--resume-step", type=int, default=None, help="continue from this checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("several hosts (jax.distributed; one command per process)")
    g.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                   help="address of process 0 (default $JDL_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="number of processes (default $JDL_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, default=None, metavar="I",
                   help="this process, 0 to N-1 (default $JDL_PROCESS_ID)")
    for f in dataclasses.fields(config_cls):
        tp = hints[f.name]
        p.add_argument(f"--{f.name.replace('_', '-')}", f"--{f.name}", dest=f.name,
                       type=lambda s, tp=tp: _parse_value(tp, s), default=f.default,
                       metavar=getattr(tp, "__name__", "VALUE").upper(),
                       help=f"(default: {f.default})")
    ns = p.parse_args(argv)
    initialize_distributed(ns)
    cfg = config_cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(config_cls)})
    return cfg, ns


def initialize_distributed(ns) -> tuple[int, int] | None:
    """Join a multi-process run when the parsed flags or the JDL_* environment ask for one
    (idempotent); returns (process index, process count), or None (and starts nothing, not
    even the JAX backend) when none is asked for."""
    args = dict(coordinator_address=getattr(ns, "coordinator_address", None),
                num_processes=getattr(ns, "num_processes", None),
                process_id=getattr(ns, "process_id", None))
    if distributed.requested(**args):
        return distributed.initialize(**args)
    return None


def main(config_cls, build_model: Callable, name: str, argv=None, description: str = "",
         wrap_grad_fn: Callable | None = None) -> dict:
    cfg, ns = parse_args(config_cls, argv, description)
    initialize_distributed(ns)
    try:
        cfg.validate()
    except ValueError as e:
        sys.exit(f"{name}: {e}")
    workdir = ns.workdir or os.path.join("runs", name)
    summary = run(cfg, build_model, workdir, resume=ns.resume or ns.resume_step is not None,
                  resume_step=ns.resume_step, progress=not ns.no_progress, title=name,
                  wrap_grad_fn=wrap_grad_fn)
    acc = summary["test_accuracy"]
    if not distributed.is_main_process():
        return summary
    print(f"{name}: test accuracy {acc:.4f} on {summary['dataset']} | "
          f"{summary['num_params']:,} params | wall {summary['wall_time_s']:.1f}s "
          f"(compile {summary['compile_time_s']:.2f}s, {summary['samples_per_s']:.0f} samples/s) | "
          f"outputs in {workdir}")
    return summary
