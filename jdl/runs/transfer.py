"""The transfer-learning experiments' runner (experiments/transfer_fashion.py,
experiments/pose_regression.py): pretrain a classifier on some classes, cut it, and learn a new
task from few labels in the lecture's four ways, against the same network trained from scratch.

The lecture (transfer learning): "by removing last layer(s) ... one obtains a transformation of
any input image into a semi-abstract representation, which can be used for learning SOMETHING
ELSE: either by just using learnt representation as features, or by creating new convNet
output and perform learning of new output layers + fine-tuning of re-used layers". The arms:

- ``features``: features h(x) of the frozen backbone (jdl.transfer.extract_features) and a
  multinomial logistic regression on them (scikit-learn, inputs standardised, C chosen on the
  validation set);
- ``head``: y = g(h(x)) with a new head g (a Dense layer) trained by Adam, h frozen (its
  parameters receive the update -0.0: jdl.transfer.frozen) and in inference mode;
- ``finetune``: the same model, h trained too with a smaller learning rate
  (jdl.transfer.group_optimizer: one Adam per group);
- ``lpft``: linear probing then fine-tuning (Kumar et al. 2022): the ``head`` arm for a
  few updates, then the ``finetune`` arm from that head rather than a random one;
- ``scratch``: the same network (backbone + head) from a random initialisation, every layer
  at the scratch learning rate, batch norm in training mode.

Every gradient-trained arm runs ``steps`` Adam updates (cosine-decayed learning rate) on
batches of ``min(batch_size, N)`` examples drawn epoch by epoch by jdl.train.fit, whatever the
number N of labelled examples, so the arms and label counts cost the same.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from functools import partial
from typing import Callable

import flax.linen as nn
import jax
import numpy as np
import optax

from jdl import optim
from jdl.data import class_subset, digits, fashion_mnist, fit_normalizer
from jdl.data.augment import augment, augmented
from jdl.nn import BNConvNet, ResNet, ResNetBlock
from jdl.runs.transfer_config import ARMS, TransferConfig  # noqa: F401  (re-exported)
from jdl.train import (backprop, create_state, evaluate, evaluate_fn, fit, init_state,
                       make_eval_step, make_train_step)
from jdl.transfer import (TransferModel, extract_features, group_optimizer, init_transfer,
                          load_backbone, split_variables)

# --- data -------------------------------------------------------------------------------------
def load_images(cfg: TransferConfig):
    """(train Split, test Split, pixel scale): Fashion-MNIST, or scikit-learn's digits."""
    if cfg.dataset == "digits":
        return digits.load("train"), digits.load("test"), 16.0
    return (fashion_mnist.load("train", data_dir=cfg.data_dir),
            fashion_mnist.load("test", data_dir=cfg.data_dir), 255.0)


def source_data(cfg: TransferConfig, train):
    """The pretraining set: training images of ``source_classes`` relabelled 0..K-1, capped
    at ``max_examples``; and the normaliser fitted on it (the backbone's input statistics)."""
    x, y = class_subset(train.images, train.labels, cfg.source_classes)
    if cfg.max_examples:
        x, y = x[: cfg.max_examples], y[: cfg.max_examples]
    return (x, y), fit_normalizer(x)


# --- the network and its training -------------------------------------------------------------
def source_model(cfg: TransferConfig, num_classes: int):
    """The network of every arm: ``cfg.backbone`` = 'resnet' (jdl.nn.ResNet, basic blocks,
    'cifar' stem: ``stage_sizes`` blocks with ``num_filters`` x 1, 2, 4 filters, global average
    pooling 'pool', a dense 'head'; He et al. 2016) or 'bnconvnet' (jdl.nn.BNConvNet with
    ``features``), with ``num_classes`` outputs."""
    if cfg.backbone == "resnet":
        return ResNet(stage_sizes=list(cfg.stage_sizes), block_cls=ResNetBlock,
                      num_classes=num_classes, num_filters=cfg.num_filters, stem="cifar")
    return BNConvNet(num_classes=num_classes, features=tuple(cfg.features))


def with_augmentation(grad_fn: Callable, cfg: TransferConfig) -> Callable:
    """``grad_fn`` on randomly cropped (padding ``augment_pad``, edge mode) and, when
    ``augment_flip``, mirrored training images (jdl.data.augment, inside the jitted step);
    ``grad_fn`` itself when neither is asked."""
    if cfg.augment_pad == 0 and not cfg.augment_flip:
        return grad_fn
    return augmented(grad_fn, partial(augment, pad=cfg.augment_pad, flip=cfg.augment_flip,
                                      mode="edge"))


def pretrain_optimizer(cfg: TransferConfig, steps: int) -> optax.GradientTransformation:
    """The source classifier's optimiser over ``steps`` updates, cosine-decayed from
    ``pretrain_lr``: SGD with Nesterov momentum 0.9 and L2 2.5e-4 (the lecture's regularised
    cost), or Adam."""
    if cfg.pretrain_optimizer == "sgd":
        return optim.sgd(optim.cosine(cfg.pretrain_lr, steps), 0.9, nesterov=True, l2=2.5e-4)
    return adam_cosine(cfg.pretrain_lr, steps)


def adam_cosine(lr: float, steps: int) -> optax.GradientTransformation:
    """Adam (Kingma & Ba 2015) with the learning rate lr * (1 + cos(pi t / steps)) / 2."""
    return optim.adam(optim.cosine(lr, steps))


def train_steps(model, params, model_state, tx, data: dict, *, steps: int, batch_size: int,
                seed: int, loss="cross_entropy", metrics: Callable | None = None,
                workdir: str | None = None, grad_fn: Callable | None = None):
    """``steps`` updates of ``model`` from (params, model_state) on ``data`` ({'x', 'y'}) with
    jdl.train.fit: epochs of floor(N / b) batches of b = min(batch_size, N) examples, as many
    epochs as ``steps`` needs (the last one cut short is not run: ceil is taken on epochs, so
    the run makes at least ``steps`` updates). Returns the FitResult."""
    n = len(data["x"])
    b = min(batch_size, n)
    epochs = math.ceil(steps / (n // b))
    kw = {} if metrics is None else {"metrics": metrics}
    state = create_state(params, tx, jax.random.PRNGKey(seed), model_state=model_state)
    step = make_train_step(grad_fn or backprop(model, loss=loss, **kw), tx)
    return fit(step, state, data, epochs=epochs, batch_size=b, seed=seed, workdir=workdir,
               progress=False, log_every=max(1, n // b), tensorboard=False)


def score(model, state, data: dict, loss="cross_entropy", metrics: Callable | None = None,
          batch_size: int = 1000) -> dict:
    """Mean loss and metrics of ``model`` in inference mode over ``data``."""
    kw = {} if metrics is None else {"metrics": metrics}
    return evaluate(make_eval_step(evaluate_fn(model, loss=loss, **kw)), state, data, batch_size)


def source_classifier(cfg: TransferConfig, x, y, workdir: str | None = None):
    """The source classifier (source_model, K classes): trained by pretrain_optimizer for
    ``pretrain_epochs`` on (x, y), augmented (with_augmentation), its checkpoints written
    under ``workdir``; or,
    when ``cfg.pretrained`` names the workdir of such a run (e.g. transfer_fashion's
    pretrain/), read back from its last checkpoint (jdl.transfer.load_backbone) instead.
    Returns (model, TrainState, seconds spent)."""
    t0 = time.perf_counter()
    model = source_model(cfg, len(cfg.source_classes))
    if cfg.pretrained:
        params, model_state = split_variables(load_backbone(cfg.pretrained, model, x[:1]))
        state = create_state(params, optax.identity(), jax.random.PRNGKey(0), model_state)
        return model, state, time.perf_counter() - t0
    spe = len(x) // min(cfg.pretrain_batch_size, len(x))
    tx = pretrain_optimizer(cfg, cfg.pretrain_epochs * spe)
    state = init_state(model, tx, x[:1], jax.random.PRNGKey(0))
    step = make_train_step(with_augmentation(backprop(model), cfg), tx)
    result = fit(step, state, {"x": x, "y": y},
                 epochs=cfg.pretrain_epochs, batch_size=min(cfg.pretrain_batch_size, len(x)),
                 seed=0, workdir=workdir, progress=False, log_every=50)
    return model, result.state, time.perf_counter() - t0


def transfer_model(backbone, num_outputs: int, backbone_train: bool) -> TransferModel:
    """backbone -> a new Dense head of ``num_outputs`` on the flattened backbone output (a
    vector when cut at 'pool')."""
    return TransferModel(backbone=backbone, head=nn.Dense(num_outputs), pool="flatten",
                         backbone_train=backbone_train)


def train_arm(arm: str, cfg: TransferConfig, backbone, backbone_vars, data: dict,
              num_outputs: int, seed: int, loss="cross_entropy",
              metrics: Callable | None = None, lp_steps: int = 100):
    """Train one gradient arm ('head', 'finetune', 'lpft' or 'scratch', see the module
    docstring) on ``data``; returns (model, FitResult). 'lpft' (Kumar et al. 2022, "Fine-Tuning
    can Distort Pretrained Features"): ``lp_steps`` updates of the head alone (the 'head' arm,
    cut short), then the 'finetune' arm's ``cfg.steps`` updates starting from that head."""
    if arm not in ("head", "finetune", "lpft", "scratch"):
        raise ValueError(f"arm must be 'head', 'finetune', 'lpft' or 'scratch', got {arm!r}")
    rng = jax.random.PRNGKey(1000 + seed)
    probe_head = None
    if arm == "lpft":
        lp_cfg = dataclasses.replace(cfg, steps=lp_steps)
        _, lp = train_arm("head", lp_cfg, backbone, backbone_vars, data, num_outputs, seed,
                          loss, metrics)
        probe_head, arm = lp.state.params["head"], "finetune"
    if arm == "scratch":
        model = transfer_model(backbone, num_outputs, backbone_train=True)
        variables = model.init(rng, data["x"][:1], train=False)
        tx = adam_cosine(cfg.scratch_lr, cfg.steps)
    else:
        model = transfer_model(backbone, num_outputs,
                               backbone_train=cfg.backbone_train and arm == "finetune")
        variables = init_transfer(model, rng, data["x"][:1], backbone_vars)
        if probe_head is not None:   # LP-FT: the head learnt on the frozen backbone
            variables["params"] = {**variables["params"], "head": probe_head}
        body = "frozen" if arm == "head" else "finetune"
        transforms = {"head": adam_cosine(cfg.head_lr, cfg.steps)}
        if body == "finetune":
            transforms["finetune"] = adam_cosine(cfg.finetune_lr, cfg.steps)
        tx = group_optimizer(transforms, {"backbone": body, "head": "head"})
    params, model_state = split_variables(variables)
    kw = {} if metrics is None else {"metrics": metrics}
    grad_fn = with_augmentation(backprop(model, loss=loss, **kw), cfg)
    result = train_steps(model, params, model_state, tx, data, steps=cfg.steps,
                         batch_size=cfg.batch_size, seed=seed, grad_fn=grad_fn)
    return model, result


def logistic_regression(train_features, train_y, val_features, val_y,
                        cs=(0.01, 0.1, 1.0, 10.0)):
    """scikit-learn's multinomial LogisticRegression on standardised features, its inverse
    regularisation C chosen among ``cs`` by validation accuracy; returns (classifier, scaler,
    C, validation accuracy)."""
    from jdl.extras import require
    LogisticRegression = require("sklearn.linear_model", "the features arm").LogisticRegression
    StandardScaler = require("sklearn.preprocessing", "the features arm").StandardScaler

    scaler = StandardScaler().fit(train_features)
    ftr, fva = scaler.transform(train_features), scaler.transform(val_features)
    best = None
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=2000).fit(ftr, train_y)
        acc = float(clf.score(fva, val_y))
        if best is None or acc > best[3]:
            best = (clf, scaler, c, acc)
    return best


def features_arm(backbone, backbone_vars, train: dict, val: dict, test: dict) -> dict:
    """The 'features' arm: logistic regression on the frozen backbone's features; returns its
    validation and test accuracy and the chosen C."""
    f = {k: extract_features(backbone, backbone_vars, d["x"], pool="flatten")
         for k, d in (("train", train), ("val", val), ("test", test))}
    clf, scaler, c, val_acc = logistic_regression(f["train"], train["y"], f["val"], val["y"])
    test_acc = float(clf.score(scaler.transform(f["test"]), test["y"]))
    return {"val_accuracy": val_acc, "test_accuracy": test_acc, "C": c}


def normalized(norm, x) -> np.ndarray:
    """``norm(x)`` as float32 NHWC."""
    return np.asarray(norm(x), np.float32)


# --- the scripts' common frame ------------------------------------------------------------------
@dataclasses.dataclass
class Source:
    """What every transfer script starts from: the data, the input normaliser, the source
    classifier (model, TrainState), its pretraining seconds and its test accuracy."""
    train: object
    test: object
    norm: object
    x_source: np.ndarray                # normalised pretraining images
    model: object
    state: object
    pretrain_s: float
    source_test_accuracy: float


def prepare(cfg: TransferConfig, workdir: str) -> Source:
    """Validate ``cfg``, load the data and train (or load, with
    ``cfg.pretrained``) the source classifier into workdir/pretrain; print its test accuracy
    on the test images of the source classes."""
    cfg.validate()
    os.makedirs(workdir, exist_ok=True)   # its config.json: jdl.runs.supervised.start's
    train, test, _ = load_images(cfg)
    (xs, ys), norm = source_data(cfg, train)
    xs = normalized(norm, xs)
    model, state, seconds = source_classifier(cfg, xs, ys, os.path.join(workdir, "pretrain"))
    xst, yst = class_subset(test.images, test.labels, cfg.source_classes)
    acc = score(model, state, {"x": normalized(norm, xst), "y": yst})["accuracy"]
    print(f"source classifier (classes {cfg.source_classes}, {seconds:.0f}s): test accuracy "
          f"{acc:.4f}", flush=True)
    return Source(train, test, norm, xs, model, state, seconds, acc)


def stats(values) -> dict:
    """{'per_seed': values, 'mean', 'std'} (population std over the seeds)."""
    v = np.asarray(values, np.float64)
    return {"per_seed": v.tolist(), "mean": float(v.mean()), "std": float(v.std())}


def summarize(results: dict, keys) -> dict:
    """{(arm, n): [per-seed records]} -> {arm: {str(n): {key: stats(...) for key in keys}}}."""
    table = {}
    for (arm, n), recs in results.items():
        table.setdefault(arm, {})[str(n)] = {k: stats([r[k] for r in recs]) for k in keys}
    return table


def plot_vs_labels(table: dict, metric: str, styles: dict, path: str, xlabel: str,
                   ylabel: str, title: str) -> None:
    """``metric`` of each arm of ``table`` (summarize's) against the label count, log x: the
    mean as a line, each seed a dot; ``styles``: {arm: (color, marker, legend label)}."""
    from jdl.runs import plots

    fig = plots.figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for arm, (color, marker, label) in styles.items():
        if arm not in table:
            continue
        ns = sorted(int(n) for n in table[arm])
        ax.plot(ns, [table[arm][str(n)][metric]["mean"] for n in ns], color=color,
                marker=marker, label=label, ls="-" if len(ns) > 1 else "none", ms=7)
        for n in ns:
            seeds = table[arm][str(n)][metric]["per_seed"]
            ax.scatter([n] * len(seeds), seeds, color=color, s=12, alpha=0.5)
    ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    plots.save(fig, path, dpi=120)


def script_main(config_cls, run: Callable, name: str, metric: str, argv=None,
                description: str = "") -> dict:
    """Command line of a transfer script: flags from ``config_cls``, the workdir checked and
    its config.json written by jdl.runs.supervised.start (default workdir runs/<name>; --resume
    continues a run: the scripts skip the finished runs of their records), ``run(cfg, workdir)``, then the mean ``metric`` per arm and label count printed as JSON;
    returns the summary. Errors are one line (jdl.runs.command_line.command)."""
    from jdl.runs.command_line import command
    from jdl.runs.supervised import start

    with command(name, config_cls, argv):
        cfg, ns = start(config_cls, name, argv, description)
        summary = run(cfg, ns.workdir)
    print(json.dumps({a: {n: round(v[metric]["mean"], 4) for n, v in t.items()}
                      for a, t in summary["arms"].items()}))
    return summary


# --- finished runs, kept so that an interrupted experiment continues where it stopped -----------
RUN_FIELDS = ("dataset", "source_classes", "backbone", "features", "stage_sizes", "num_filters",
              "cut_layer", "pretrain_epochs", "pretrain_optimizer", "pretrain_lr",
              "augment_pad", "augment_flip", "steps", "batch_size", "head_lr", "finetune_lr",
              "scratch_lr", "backbone_train", "max_examples")


def run_signature(cfg, extra: tuple = ()) -> dict:
    """The config fields a single run's result depends on (RUN_FIELDS and ``extra``)."""
    d = dataclasses.asdict(cfg)
    return {k: list(d[k]) if isinstance(d[k], tuple) else d[k] for k in RUN_FIELDS + extra}


def load_records(path: str, signature: dict) -> dict:
    """{(arm, n, seed): record} of the finished runs in the JSON-lines file ``path`` made with
    the same ``signature`` (others are ignored); {} when there is no such file."""
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r["signature"] == signature:
                    out[r["arm"], r["n"], r["seed"]] = r["record"]
    return out


def append_record(path: str, signature: dict, arm: str, n: int, seed: int, record: dict):
    """Append one finished run to the JSON-lines file ``path``."""
    with open(path, "a") as f:
        f.write(json.dumps({"signature": signature, "arm": arm, "n": n, "seed": seed,
                            "record": record}) + "\n")
