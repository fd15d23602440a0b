"""Shared experiment runner: configs as dataclasses, command-line overrides, one training path.

An experiment script declares a config dataclass (subclassing :class:`ExperimentConfig`) and a
``build_model(config)``; :func:`main` parses ``--field value`` overrides, ``--workdir`` and
``--resume``, then :func:`run` loads the data, normalises it, builds the optimiser, trains with
:func:`jdl.train.fit`, evaluates on the test set and writes, under the workdir: config.json,
metrics.jsonl, TensorBoard events, checkpoints/, summary.json and PNGs of the learning curves
and first-layer filters.

The workdir: a command whose workdir already holds a run is refused in one line before anything
is loaded or written, unless ``--resume`` (the stored config.json must match but for the
resumable fields: jdl.runs.run_dir, jdl.runs.command_line.RESUMABLE_ALWAYS) or ``--overwrite``;
``--dataset auto`` is resolved once and recorded. Errors are one line and exit status 2
(``--debug``: the traceback); ``--help`` lists each field with its documented meaning
(jdl.runs.command_line.option), choices and default, without importing JAX.

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
import os
import sys
import time
from typing import Callable, ClassVar, Optional

from jdl.runs import run_dir
from jdl.runs.command_line import build_parser, check_fields, command, field_meta, option

DATASETS = ("fashion_mnist", "mnist", "digits", "auto")
PARALLEL_MODES = ("sharded", "pmap")
SCHEDULES = ("constant", "step", "exponential", "inverse_time", "cosine")
MOMENTUM_SCHEDULES = ("constant", "increasing")
ACTIVATIONS = ("gaussian", "heaviside", "identity", "lecun_tanh", "linear", "logistic", "relu",
               "saturation", "sigmoid", "sign", "tanh", "threshold")   # jdl.nn.activations
IMAGE_FIELDS = ("dataset", "data_dir", "val_fraction", "val_split", "normalize",
                "max_train_examples")


@dataclasses.dataclass
class ExperimentConfig:
    """Fields shared by every supervised experiment (override any with --name value)."""
    dataset: str = option("fashion_mnist", "the data set; auto: Fashion-MNIST if installed, else "
                          "the digits (resolved once, recorded in config.json)", choices=DATASETS)
    data_dir: Optional[str] = option(None, "folder of the IDX files; an error if it lacks them "
                                     "(default: none: $JDL_FASHION_MNIST_DIR, else Debian's "
                                     "folder)")
    val_fraction: float = option(0.1, "share of the training set held out for validation")
    val_split: str = option("random", "random: a seeded draw; last: the last examples (Keras' "
                            "validation_split)", choices=("random", "last"))
    normalize: str = option("global", "input scaling fitted on the training set: global mean/std, "
                            "per pixel, or none (pixels / max)",
                            choices=("global", "per_feature", "none"))
    batch_size: int = option(128, "examples per update (the global batch, over all devices)")
    epochs: int = option(10, "passes over the training set")
    schedule_epochs: Optional[int] = option(None, "length of the learning-rate schedule in "
                                            "epochs (default: none: epochs; a resume with more "
                                            "epochs keeps the original length)", low=1)
    optimizer: str = option("sgd", "the optimiser", choices=("sgd", "adam"))
    learning_rate: float = option(0.05, "initial learning rate")
    momentum: float = option(0.9, "SGD momentum mu, in [0, 1) (with momentum_schedule "
                             "increasing: its cap)")
    momentum_schedule: str = option("constant", "momentum mu(t): constant (momentum) or "
                                    "increasing (Sutskever et al. 2013: 0.5, 0.75, 0.833, ... "
                                    "each momentum_every_epochs, capped at momentum)",
                                    choices=MOMENTUM_SCHEDULES)
    momentum_every_epochs: float = option(1.0, "increasing momentum: epochs between its "
                                          "steps")
    nesterov: bool = option(False, "Nesterov momentum")
    schedule: str = option("cosine", "learning-rate schedule over the run", choices=SCHEDULES)
    lr_every_epochs: float = option(10.0, "step / exponential schedules: decay period in epochs")
    lr_gamma: float = option(0.1, "step / exponential schedules: factor per period")
    lr_decay: float = option(0.0, "inverse_time schedule: lambda of lr / (1 + lambda t)")
    l2: float = option(0.0, "weight decay: beta of beta * sum W^2 (kernels only)")
    l1: float = option(0.0, "beta of beta * sum |W| (kernels only)")
    penalty_start_epoch: int = option(0, "switch the penalties on after this many epochs", low=0)
    clip_norm: Optional[float] = option(None, "clip gradients to this global norm (none: no "
                                        "clipping)")
    loss: str = option("cross_entropy", "training loss", choices=("cross_entropy", "quadratic"))
    seed: int = option(0, "seed of the initialisation, the validation split and the batches")
    checkpoint_every: Optional[int] = option(None, "checkpoint every N steps (none: at each "
                                             "epoch end only)")
    keep: int = option(3, "checkpoints kept (plus the best)")
    patience: Optional[int] = option(None, "early stopping: epochs without a better validation "
                                     "score (none: off)")
    log_every: int = option(100, "steps between logged training losses", low=1)
    steps_per_call: int = option(0, "train steps per compiled call (fit's k; results are the "
                                 "same for every k); 0: the model family's measured best, 32 "
                                 "for MLPs, 1 for convnets and the rest", low=0, resumable=True)
    eval_batch_size: int = option(1000, "examples per evaluation batch", low=1)
    max_train_examples: Optional[int] = option(None, "use only the first N training examples "
                                               "(smoke runs)", low=1)
    devices: Optional[int] = option(None, "data parallelism over the first N local devices "
                                    "(none: all of them)")
    parallel: str = option("sharded", "sharded: jit over a device mesh; pmap: one replica per "
                           "device", choices=PARALLEL_MODES)

    UNUSED: ClassVar[tuple] = ()   # fields the script does not use: no command-line option

    def validate(self) -> None:
        """Refuse invalid hyper-parameters before any work, with the field's name."""
        errs = check_fields(self)
        if not 0.0 <= self.val_fraction < 1.0:
            errs.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.batch_size <= 0:
            errs.append(f"batch_size must be a positive integer, got {self.batch_size}")
        if self.epochs <= 0:
            errs.append(f"epochs must be a positive integer, got {self.epochs}")
        if not self.learning_rate > 0:
            errs.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.momentum < 1.0:
            errs.append(f"momentum must be in [0, 1), got {self.momentum}")
        for name in ("l2", "l1", "lr_decay"):
            if getattr(self, name) < 0:
                errs.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.momentum_every_epochs > 0:
            errs.append(f"momentum_every_epochs must be > 0, got {self.momentum_every_epochs}")
        if self.momentum_schedule != "constant" and self.optimizer != "sgd":
            errs.append(f"momentum_schedule {self.momentum_schedule!r} needs optimizer sgd, got "
                        f"{self.optimizer!r}")
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
def resolve_dataset(cfg: ExperimentConfig) -> str:
    """The data set ``cfg`` names, 'auto' resolved: Fashion-MNIST when its files are found (in
    ``cfg.data_dir`` when given), else the digits."""
    if cfg.dataset != "auto":
        return cfg.dataset
    from jdl.data import fashion_mnist
    if cfg.data_dir is not None:
        fashion_mnist.find_dir("fashion_mnist", cfg.data_dir)   # an explicit folder must hold it
        return "fashion_mnist"
    return "fashion_mnist" if fashion_mnist.is_available() else "digits"


def load_data(cfg: ExperimentConfig):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test), name) as float32 NHWC, int32."""
    import numpy as np
    from jdl.data import digits, fashion_mnist, fit_normalizer, train_val_split
    name = resolve_dataset(cfg)
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


def optimizer_schedules(cfg: ExperimentConfig, steps_per_epoch: int):
    """(lambda, mu) of ``cfg``'s optimiser: the learning-rate schedule lambda(t) (jdl.optim.
    make_schedule, spanning ``cfg.schedule_epochs``, default ``cfg.epochs``, epochs of
    ``steps_per_epoch`` updates) and the momentum: the float ``cfg.momentum``, or with
    ``momentum_schedule`` 'increasing' the schedule mu(t) = jdl.optim.increasing_momentum(
    cfg.momentum, every=round(momentum_every_epochs * steps_per_epoch)); t = update count."""
    from jdl import optim
    epochs = getattr(cfg, "schedule_epochs", None) or cfg.epochs

    def every(epochs_):
        return max(1, int(round(epochs_ * steps_per_epoch)))
    lr = optim.make_schedule(cfg.schedule, cfg.learning_rate,
                             total_steps=epochs * steps_per_epoch,
                             every=every(cfg.lr_every_epochs),
                             gamma=cfg.lr_gamma, decay=cfg.lr_decay)
    mu = cfg.momentum
    if getattr(cfg, "momentum_schedule", "constant") == "increasing":
        mu = optim.increasing_momentum(cfg.momentum, every(cfg.momentum_every_epochs))
    return lr, mu


def build_optimizer(cfg: ExperimentConfig, steps_per_epoch: int):
    """The optimiser of ``cfg``: SGD with momentum or Adam, with the schedules of
    :func:`optimizer_schedules`, the penalties and clipping of ``cfg``."""
    from jdl import optim
    lr, mu = optimizer_schedules(cfg, steps_per_epoch)
    common = dict(l2=cfg.l2, l1=cfg.l1, penalty_start_step=cfg.penalty_start_epoch * steps_per_epoch,
                  clip_norm=cfg.clip_norm)
    if cfg.optimizer == "sgd":
        return optim.sgd(lr, mu, nesterov=cfg.nesterov, **common)
    return optim.adam(lr, **common)


def _first_kernel(params):
    node = params
    while isinstance(node, dict):
        if "kernel" in node:
            return node["kernel"]
        node = next(iter(node.values()))
    return None


# --- the run directory -------------------------------------------------------------------------
def resumable_fields(cfg, stretch_schedule: bool = False) -> set:
    """The fields of ``cfg`` a resumed run may change (jdl.runs.command_line.RESUMABLE_ALWAYS and
    the fields declared resumable; schedule_epochs too with ``stretch_schedule``)."""
    names = {f.name for f in dataclasses.fields(cfg) if field_meta(type(cfg), f.name)["resumable"]}
    return names | ({"schedule_epochs"} if stretch_schedule else set())


def prepare_run(cfg, workdir: str, *, resume: bool = False, overwrite: bool = False,
                stretch_schedule: bool = False, can_resume: bool = True):
    """Check that a run of ``cfg`` may use ``workdir`` as asked (jdl.runs.run_dir.check), before
    anything is loaded or written; returns (cfg, stored config or None). On resume the returned
    cfg takes the stored data set (an 'auto' resolved when the run started) and, unless
    ``stretch_schedule``, pins the schedule's length to the stored run's epochs."""
    stored = run_dir.read_config(workdir) if resume else None
    if getattr(cfg, "dataset", None) == "auto":
        recorded = stored and (stored.get("resolved_dataset") or stored.get("dataset"))
        cfg = dataclasses.replace(cfg, dataset=recorded if recorded not in (None, "auto")
                                  else resolve_dataset(cfg))
    if stored and hasattr(cfg, "schedule_epochs"):
        if stretch_schedule:
            cfg = dataclasses.replace(cfg, schedule_epochs=None)
        elif cfg.schedule_epochs is None:
            cfg = dataclasses.replace(cfg, schedule_epochs=stored.get("schedule_epochs")
                                      or stored.get("epochs"))
    resumable = resumable_fields(cfg, stretch_schedule)
    if stored and getattr(cfg, "schedule_epochs", None) == (stored.get("schedule_epochs")
                                                           or stored.get("epochs")):
        resumable.add("schedule_epochs")   # None there meant the stored run's epochs
    stored = run_dir.check(workdir, dataclasses.asdict(cfg), resume=resume, overwrite=overwrite,
                           resumable=resumable, can_resume=can_resume)
    return cfg, stored


def select_and_test(result, workdir: str | None, eval_step, test_data: dict, batch_size: int,
                    extra_tests: dict | None = None) -> dict:
    """Test metrics of the model a run reports: the checkpoint with the best validation score
    when the run validated and kept one (``result.best``), else the final state. Returns
    {'test': metrics, 'test_model': which, 'final_test': metrics of the final state,
    'extra_tests': {name: metrics} of ``extra_tests`` evaluated with the same model}."""
    from jdl.train import Checkpoints, evaluate
    final = evaluate(eval_step, result.state, test_data, batch_size)
    test, chosen, state = final, "final state", result.state
    if result.best is not None and workdir is not None and "val_loss" in result.best:
        chosen = f"best validation checkpoint (epoch {result.best['epoch']})"
        if result.best["step"] != int(result.state.step):   # an earlier checkpoint: restore it
            ck = Checkpoints(os.path.join(workdir, "checkpoints"))
            try:
                state, _ = ck.restore(ck.best_step(), result.state, which="best")
            finally:
                ck.close()
            test = evaluate(eval_step, state, test_data, batch_size)
    extra = {name: evaluate(eval_step, state, data, batch_size)
             for name, data in (extra_tests or {}).items()}
    return {"test": test, "test_model": chosen, "final_test": final, "extra_tests": extra}


# --- the run ---------------------------------------------------------------------------------
def family_steps_per_call(model) -> int:
    """fit's steps per compiled call for ``model``, as measured (benchmarks/steps_per_call.py,
    BUILD_NOTES.md 'steps per call'): 32 for an MLP (k = 8-32: 1.17-1.19x the steps/s of
    k = 1), 1 for everything else (LeNet-5 scanned: 0.3x, XLA's CPU convolutions lose their
    threads inside a loop)."""
    from jdl.nn import MLP
    from jdl.train.loop import SHORT_STEPS_PER_CALL
    return SHORT_STEPS_PER_CALL if isinstance(model, MLP) else 1


def run(cfg: ExperimentConfig, build_model: Callable, workdir: str, resume: bool = False,
        resume_step: int | None = None, progress: bool = True, title: str = "",
        initial_params=None, wrap_grad_fn: Callable | None = None, *, overwrite: bool = False,
        stretch_schedule: bool = False, skip_corrupt: bool = False) -> dict:
    """Train ``build_model(cfg)`` as ``cfg`` says and evaluate it; returns the summary dict
    (jdl.runs.run_dir's schema; test metrics of the best-validation checkpoint, or of the final
    state without validation data). ``initial_params`` (a params pytree shaped like the
    model's, e.g. from a pretrained DBN, ``jdl.rbm.dbn.to_mlp_params``) replaces the random
    initialisation. ``wrap_grad_fn(grad_fn, cfg) -> grad_fn`` wraps the back-propagation
    gradient function inside the train step (e.g. data augmentation,
    ``jdl.data.augment.augmented``). A workdir that already holds a run is refused unless ``resume`` (same
    config but for the resumable fields) or ``overwrite``: see jdl.runs.run_dir."""
    cfg.validate()
    resume = resume or resume_step is not None
    cfg, stored = prepare_run(cfg, workdir, resume=resume, overwrite=overwrite,
                              stretch_schedule=stretch_schedule)
    import jax   # after the checks: a refused command answers at once
    from jdl.runs import plots
    from jdl.train import (backprop, check_inputs, check_labels, evaluate_fn, fit, init_state,
                           make_eval_step, make_train_step, num_params)
    from jdl.train.guards import spec_of, tree_spec

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
    step = make_train_step(grad_fn, tx, batch_spec=spec_of({"x": xtr, "y": ytr}))
    eval_step = make_eval_step(evaluate_fn(model, loss=cfg.loss))

    rd = run_dir.RunDir(workdir)   # several hosts: process 0 writes the outputs
    rd.begin(dataclasses.asdict(cfg), stored=stored, overwrite=overwrite,
             extra={"resolved_dataset": dataset, "model": repr(model)})
    has_val = len(xva) > 0
    result = fit(step, state, {"x": xtr, "y": ytr}, epochs=cfg.epochs, batch_size=cfg.batch_size,
                 eval_step=eval_step, val_data={"x": xva, "y": yva} if has_val else None,
                 seed=cfg.seed, workdir=workdir, checkpoint_every=cfg.checkpoint_every,
                 keep=cfg.keep, patience=cfg.patience, resume=resume, resume_step=resume_step,
                 skip_corrupt=skip_corrupt, log_every=cfg.log_every, progress=progress,
                 num_classes=num_classes, eval_batch_size=cfg.eval_batch_size,
                 devices=cfg.devices, parallel=cfg.parallel,
                 steps_per_call=cfg.steps_per_call or family_steps_per_call(model))
    tested = select_and_test(result, workdir, eval_step, {"x": xte, "y": yte},
                             cfg.eval_batch_size)
    summary = rd.write_summary({
        "experiment": title, "dataset": dataset, **tested,
        "final_epoch": result.history[-1] if result.history else None,
        "best_epoch": result.best, "stopped_early": result.stopped_early,
        "num_params": num_params(result.state.params), "wall_time_s": time.perf_counter() - t0,
        "fit_wall_time_s": result.wall_time, "compile_time_s": result.compile_time,
        "train_time_s": result.train_time, "samples_per_s": result.samples_per_s,
        "steps": int(result.state.step), "devices": [str(d) for d in jax.devices()],
        "num_devices": result.num_devices, "parallel": cfg.parallel,
        "resumed": bool(resume), "num_processes": jax.process_count(),
    })
    if result.history:
        rd.plot(plots.plot_learning_curves, "learning_curves.png", result.history, title=title)
    kernel = _first_kernel(result.state.params)
    if kernel is not None:
        rd.plot(plots.plot_filters, "filters.png", kernel, input_shape=xtr.shape[1:],
                title=f"{title} first-layer filters")
    return summary


# --- command line ----------------------------------------------------------------------------
def parse_args(config_cls, argv=None, description: str = "", checkpoints: bool = True,
               prog: str | None = None):
    """The command line of ``config_cls`` (jdl.runs.command_line.build_parser: one documented option
    per field the script uses, --workdir, --overwrite, --debug, --no-progress, and
    --resume, --resume-step, --stretch-schedule when ``checkpoints``), plus the multi-host flags
    --coordinator-address, --num-processes, --process-id: when any of them (or one of the
    JDL_* environment variables they default to) is given, this process joins the run with
    ``jdl.parallel.distributed.initialize`` right here, before any JAX computation; and
    --compilation-cache / --no-compilation-cache (default on: JAX's persistent compilation
    cache, jdl.parallel.compilation_cache.enable_compilation_cache). Returns
    (config, namespace); a value outside a field's choices exits with one line (status 2)."""
    p = build_parser(config_cls, description, checkpoints=checkpoints, prog=prog)
    g = p.add_argument_group("several hosts (jax.distributed; one command per process)")
    g.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                   help="address of process 0 (default $JDL_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="number of processes (default $JDL_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, default=None, metavar="I",
                   help="this process, 0 to N-1 (default $JDL_PROCESS_ID)")
    p.add_argument("--compilation-cache", action=argparse.BooleanOptionalAction, default=True,
                   help="keep compiled programs on disk ($JDL_COMPILATION_CACHE_DIR, else "
                        "~/.cache/jdl/xla) so a re-run or resume does not compile them again")
    ns = p.parse_args(argv)
    cfg = config_cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(config_cls)
                        if hasattr(ns, f.name)})
    errs = check_fields(cfg)
    if errs:   # choices and bounds: before any data is loaded
        p.error("; ".join(errs))
    initialize_distributed(ns)
    if ns.compilation_cache:
        from jdl.parallel.compilation_cache import enable_compilation_cache
        enable_compilation_cache()
    return cfg, ns


def initialize_distributed(ns) -> tuple[int, int] | None:
    """Join a multi-process run when the parsed flags or the JDL_* environment ask for one
    (idempotent); returns (process index, process count), or None (and starts nothing, not
    even the JAX backend) when none is asked for."""
    from jdl.parallel import distributed
    args = dict(coordinator_address=getattr(ns, "coordinator_address", None),
                num_processes=getattr(ns, "num_processes", None),
                process_id=getattr(ns, "process_id", None))
    if distributed.requested(**args):
        return distributed.initialize(**args)
    return None


def answer_help(config_cls, name: str, description: str = "", checkpoints: bool = True,
                argv=None) -> None:
    """Print the script's --help and exit when the command line asks for it: a script calls
    this before its heavy imports (JAX, the models), so that --help answers at once."""
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        parse_args(config_cls, ["--help"], description, checkpoints=checkpoints, prog=name)


def start(config_cls, name: str, argv=None, description: str = "", checkpoints: bool = True):
    """The start of a script with its own main: parse the command line (:func:`parse_args`),
    validate the config, check the workdir (``--workdir``, default runs/<name>) as
    jdl.runs.run_dir says (refuse, resume, overwrite) and write its config.json. Returns (config,
    namespace) with ``ns.workdir`` set, ``ns.run_dir`` its :class:`jdl.runs.run_dir.RunDir`
    and ``ns.resume`` true for --resume or --resume-step. Wrap the main in
    :func:`jdl.runs.command_line.script` for one-line errors."""
    cfg, ns = parse_args(config_cls, argv, description, checkpoints=checkpoints, prog=name)
    if hasattr(cfg, "validate"):
        cfg.validate()
    ns.workdir = ns.workdir or os.path.join("runs", name)
    ns.resume = bool(ns.resume or ns.resume_step is not None)
    cfg, stored = prepare_run(cfg, ns.workdir, resume=ns.resume, overwrite=ns.overwrite,
                              stretch_schedule=ns.stretch_schedule, can_resume=checkpoints)
    ns.run_dir = run_dir.RunDir(ns.workdir)
    ns.run_dir.begin(dataclasses.asdict(cfg), stored=stored, overwrite=ns.overwrite)
    return cfg, ns


def main(config_cls, build_model: Callable, name: str, argv=None, description: str = "",
         wrap_grad_fn: Callable | None = None, then: Callable | None = None) -> dict:
    """The command line of a supervised experiment: parse (joining a multi-process run once),
    :func:`run` in ``--workdir`` (default runs/<name>; it validates the config), print one line
    of results (main process). ``then(cfg, run_dir, summary) -> summary``, when given, runs
    after it with the run's :class:`~jdl.runs.run_dir.RunDir` (e.g. an extra evaluation added
    to the summary). Errors are one line and exit status 2 (jdl.runs.command_line.command;
    --debug shows the traceback). ``wrap_grad_fn``: see :func:`run`."""
    with command(name, config_cls, argv):
        cfg, ns = parse_args(config_cls, argv, description, prog=name)
        workdir = ns.workdir or os.path.join("runs", name)
        summary = run(cfg, build_model, workdir, resume=ns.resume, resume_step=ns.resume_step,
                      progress=not ns.no_progress, title=name, wrap_grad_fn=wrap_grad_fn,
                      overwrite=ns.overwrite, stretch_schedule=ns.stretch_schedule,
                      skip_corrupt=ns.skip_corrupt)
        rd = run_dir.RunDir(workdir)
        acc, loss = summary["test_accuracy"], summary["test_loss"]
        figure = f"test accuracy {acc:.4f}" if acc is not None else f"test loss {loss:.4f}"
        rd.say(f"{name}: {figure} ({summary['test_model']}) on "
               f"{summary['dataset']} | {summary['num_params']:,} params | wall "
               f"{summary['wall_time_s']:.1f}s (compile {summary['compile_time_s']:.2f}s, "
               f"{summary['samples_per_s']:.0f} samples/s) | outputs in {workdir}")
        if summary["dataset"] == "digits" and getattr(cfg, "dataset", None) == "auto":
            rd.say(f"{name}: trained on scikit-learn's digits because Fashion-MNIST was not "
                   f"found; to get it: sudo apt-get install dataset-fashion-mnist (or "
                   f"--data-dir DIR with its four IDX files), then run with a new --workdir")
        if then is not None:
            summary = then(cfg, rd, summary)
    return summary
