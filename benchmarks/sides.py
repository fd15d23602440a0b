"""The two sides of each benchmark workload: jdl, and a peer computing the same thing.

A side is ``make(workload, opts) -> Side``: ``Side.run(n)`` runs n units of work (train steps, or
one epoch / one fit for the epoch workloads) and returns their seconds; ``Side.items`` is how
many samples one unit processes, ``compile_s`` the seconds of the first (compiling) call and
``loss0`` the loss on the first batch before training with weights shared between the sides (or
None where the sides do not share weights). The orchestrator (benchmarks/__main__.py) runs each
side in its own process, so each one's peak resident memory is its own.

Classifier workloads: the same random 28x28x1 batches (numpy seed 0, cycled), softmax
cross-entropy, SGD lr 0.01 + momentum 0.9 + L2 on every parameter (jdl: ``sgd(0.01, 0.9,
l2=L2)``, whose penalty gradient 2 L2 w is PyTorch's ``weight_decay=2 L2``). The jdl side is
``jit(make_train_step(backprop(model), tx))`` with the state donated; 'flax' is the
hand-written flax + optax step of benchmarks/step_overhead.py; 'torch' the same network in
PyTorch (CPU, ``threads`` threads, OMP_WAIT_POLICY=PASSIVE set by the orchestrator), its weights
copied from jdl's initial ones (HWIO -> OIHW, (in, out) -> (out, in); the flatten before the
first dense layer is taken in NHWC order so the dense weights carry over unchanged).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Callable

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

L2 = 2.5e-5
LR = 0.01
NBATCH = 4


@dataclasses.dataclass
class Side:
    label: str
    run: Callable[[int], float]
    items: int                       # samples per unit of run()
    unit: str = "samples/s"
    compile_s: float | None = None
    loss0: float | None = None


def classifier_batches(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 28, 28, 1)).astype(np.float32),
             rng.integers(0, 10, batch).astype(np.int32)) for _ in range(NBATCH)]


# ----------------------------------------------------------------------------- jdl models
def jdl_model(name: str, quick: bool):
    from jdl import nn as jnn
    if name == "lenet5":
        return jnn.LeNet5(activation="relu", pool="max")
    if name == "convnet":
        return jnn.FashionConvNet()
    if name == "keras_example":
        return jnn.KerasExample()
    if name == "mlp":
        return jnn.MLP(hidden=(64, 64) if quick else (1024, 1024))
    if name == "resnet":
        return jnn.SMALL_ZOO["resnet18"]()
    if name.startswith("zoo_"):
        return jnn.SMALL_ZOO[name[4:]](num_classes=10)
    raise KeyError(name)


def _eval_loss(model, variables, x, y) -> float:
    import optax
    logits = model.apply(variables, x, train=False)
    return float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())


def _timed_first(run, side: Side) -> Side:
    side.compile_s = run(1)
    return side


def jdl_side(name: str, batch: int, quick: bool, shared: str | None, **_) -> Side:
    import jax

    from jdl.optim import sgd
    from jdl.train import backprop, init_state, make_train_step

    model = jdl_model(name, quick)
    tx = sgd(LR, 0.9, l2=L2)
    data = [{"x": jax.device_put(x), "y": jax.device_put(y)} for x, y in classifier_batches(batch)]
    state = init_state(model, tx, data[0]["x"], jax.random.PRNGKey(0))
    variables = {"params": state.params, **state.model_state}
    loss0 = _eval_loss(model, variables, data[0]["x"], data[0]["y"])
    if shared:
        leaves = jax.tree.leaves(state.params)
        np.savez(os.path.join(shared, f"{name}.npz"), *[np.asarray(a) for a in leaves])
    step = jax.jit(make_train_step(backprop(model), tx), donate_argnums=0)
    box = {"state": state}

    def run(n: int) -> float:
        t0 = time.perf_counter()
        s = box["state"]
        for i in range(n):
            s, _ = step(s, data[i % NBATCH])
        jax.block_until_ready(s)
        box["state"] = s
        return time.perf_counter() - t0
    return _timed_first(run, Side(f"jdl (jax {jax.__version__})", run, batch, loss0=loss0))


def flax_side(name: str, batch: int, quick: bool, **_) -> Side:
    """The hand-written flax + optax step (benchmarks/step_overhead.py), same model, same
    initial weights, same optimiser; for models with batch norm, the same step with the
    batch statistics threaded by hand (``mutable=['batch_stats']``)."""
    import jax
    import optax

    from benchmarks.step_overhead import hand_written
    from jdl.optim import sgd
    from jdl.train import init_state

    model = jdl_model(name, quick)
    tx = sgd(LR, 0.9, l2=L2)
    data = [(jax.device_put(x), jax.device_put(y)) for x, y in classifier_batches(batch)]
    state0 = init_state(model, tx, data[0][0], jax.random.PRNGKey(0))
    variables = {"params": state0.params, **state0.model_state}
    loss0 = _eval_loss(model, variables, *data[0])
    params, stats = state0.params, state0.model_state.get("batch_stats")
    if stats is None:
        step = jax.jit(hand_written(model, tx), donate_argnums=(0, 1))
    else:
        def bn_step(ps, opt_state, key, x, y):
            p, bs = ps

            def loss(p_):
                logits, upd = model.apply({"params": p_, "batch_stats": bs}, x, train=True,
                                          rngs={"dropout": key}, mutable=["batch_stats"])
                return (optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(),
                        upd["batch_stats"])
            (l, new_bs), g = jax.value_and_grad(loss, has_aux=True)(p)
            u, opt_state = tx.update(g, opt_state, p)
            return (optax.apply_updates(p, u), new_bs), opt_state, l
        step = jax.jit(bn_step, donate_argnums=(0, 1))
        params = (params, stats)
    box = {"p": params, "o": tx.init(state0.params), "k": jax.random.PRNGKey(1)}

    def run(n: int) -> float:
        t0 = time.perf_counter()
        p, o = box["p"], box["o"]
        for i in range(n):
            p, o, _ = step(p, o, jax.random.fold_in(box["k"], i), *data[i % NBATCH])
        jax.block_until_ready(p)
        box["p"], box["o"] = p, o
        return time.perf_counter() - t0
    return _timed_first(run, Side("flax + optax by hand", run, batch, loss0=loss0))


# ----------------------------------------------------------------------------- PyTorch
def torch_model(name: str, quick: bool):
    """The workload's network in PyTorch (NCHW), layer for layer as jdl's."""
    from torch import nn

    class NHWCFlatten(nn.Module):   # flatten as jdl does (H, W, C order)
        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    if name == "lenet5":
        return nn.Sequential(nn.ZeroPad2d(2), nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 120, 5), nn.ReLU(), NHWCFlatten(),
                             nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    if name == "convnet":
        return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             NHWCFlatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(),
                             nn.Dropout(0.4), nn.Linear(1024, 10))
    if name == "keras_example":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Dropout(0.25), NHWCFlatten(),
                             nn.Linear(12 * 12 * 32, 128), nn.Sigmoid(), nn.Linear(128, 10))
    if name == "mlp":
        h = 64 if quick else 1024
        return nn.Sequential(nn.Flatten(), nn.Linear(784, h), nn.ReLU(), nn.Linear(h, h),
                             nn.ReLU(), nn.Linear(h, 10))
    if name == "resnet":
        return torch_resnet18_small()
    raise KeyError(f"no PyTorch form of {name!r}")


def torch_resnet18_small(width: int = 16, classes: int = 10):
    """ResNet-18 with a CIFAR stem (conv 3x3/1, no max-pool) at ``width`` base filters, as
    jdl.nn.SMALL_ZOO['resnet18'] (not weight-shared: its BN/init layout differs)."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = (nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

        def forward(self, x):
            return nn.functional.relu(self.body(x) + self.skip(x))

    layers = [nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for i in range(4):
        for j in range(2):
            layers.append(Block(cin, width * 2 ** i, 2 if i > 0 and j == 0 else 1))
            cin = width * 2 ** i
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def load_jdl_weights(net, path: str) -> bool:
    """Copy jdl's parameter leaves (kernel/bias pairs in layer order, as flax stores them)
    into ``net``'s Conv2d/Linear layers; False (nothing copied) if the layouts differ."""
    import torch
    from torch import nn

    arrays = np.load(path)
    leaves = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(leaves) != 2 * len(layers):
        return False
    with torch.no_grad():
        for i, m in enumerate(layers):
            bias, kernel = leaves[2 * i], leaves[2 * i + 1]   # flax sorts 'bias' < 'kernel'
            k = kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
            if tuple(m.weight.shape) != k.shape or m.bias is None:
                return False
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(k)))
            m.bias.copy_(torch.from_numpy(bias))
    return True


def torch_side(name: str, batch: int, quick: bool, shared: str | None, threads: int = 2,
               **_) -> Side:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torch_model(name, quick)
    data = [(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
             torch.from_numpy(y.astype(np.int64))) for x, y in classifier_batches(batch)]
    loss_fn = torch.nn.CrossEntropyLoss()
    loss0 = None
    path = os.path.join(shared, f"{name}.npz") if shared else None
    if path and os.path.exists(path) and load_jdl_weights(net, path):
        net.eval()
        with torch.no_grad():
            loss0 = float(loss_fn(net(data[0][0]), data[0][1]))
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9, weight_decay=2 * L2)

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            x, y = data[i % NBATCH]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            opt.step()
        return time.perf_counter() - t0
    return _timed_first(run, Side(f"PyTorch {torch.__version__} CPU, {threads} threads", run,
                                  batch, loss0=loss0))


# ----------------------------------------------------------------------------- recurrent nets
def rnn_side(cell: str, side: str, threads: int = 2, **_) -> Side:
    """LSTM / GRU training steps of benchmarks/lstm_vs_torch.py (B=128, T=28, H=128)."""
    from benchmarks import lstm_vs_torch as lt
    if side == "jdl":
        run, _box = lt.jdl_stepper(cell=cell)
        label = f"jdl SequenceModel('{cell}')"
    else:
        run, _box = lt.torch_stepper(threads, cell=cell)
        label = f"PyTorch nn.{cell.upper()}, {threads} threads"
    return _timed_first(run, Side(label, run, lt.B, unit="sequences/s"))


# ----------------------------------------------------------------------------- RBM epoch
def rbm_data(quick: bool):
    if quick:
        rng = np.random.default_rng(0)
        return (rng.random((400, 784)) < 0.3).astype(np.float32)
    from jdl.data import binarize, fashion_mnist
    x = binarize(fashion_mnist.load("train").images)
    return np.asarray(x, np.float32).reshape(len(x), -1)


RBM_HIDDEN, RBM_BATCH, RBM_LR = 500, 100, 0.05


def rbm_side(side: str, quick: bool, **_) -> Side:
    """One PCD-1 epoch (500 hidden, batch 100, lr 0.05, no momentum; benchmarks/
    rbm_vs_sklearn.py's settings): 'jdl' (jdl.rbm.train_rbm, compilation excluded),
    'sklearn32' / 'sklearn64' (BernoulliRBM on float32 / float64 data), 'scan' (a hand-written
    JAX PCD-1 epoch, all its steps in one lax.scan)."""
    x = rbm_data(quick)
    hidden = 16 if quick else RBM_HIDDEN
    n = len(x) - len(x) % RBM_BATCH
    x = x[:n]
    if side == "jdl":
        import jax

        from jdl import optim, rbm
        key = jax.random.PRNGKey(0)
        box = {}

        def run(units: int) -> float:
            total = 0.0
            for _ in range(units):
                r = rbm.train_rbm(x, hidden, key, epochs=1, batch_size=RBM_BATCH,
                                  tx=optim.sgd(RBM_LR), persistent=True, reconstruction=False,
                                  verbose=False)
                total += r.train_time
                box["compile"] = r.compile_time
            return total
        s = Side("jdl train_rbm", run, n)
        run(1)
        s.compile_s = box["compile"]
        return s
    if side in ("sklearn32", "sklearn64"):
        import sklearn
        from sklearn.neural_network import BernoulliRBM
        data = x if side == "sklearn32" else x.astype(np.float64)

        def run(units: int) -> float:
            t0 = time.perf_counter()
            for _ in range(units):
                BernoulliRBM(n_components=hidden, learning_rate=RBM_LR, batch_size=RBM_BATCH,
                             n_iter=1, random_state=0).fit(data)
            return time.perf_counter() - t0
        bits = 32 if side == "sklearn32" else 64
        return _timed_first(run, Side(f"scikit-learn {sklearn.__version__} float{bits}", run, n))
    if side == "scan":
        run = scanned_rbm_epoch(x, hidden)
        return _timed_first(run, Side("hand-written JAX lax.scan epoch", run, n))
    raise KeyError(side)


def scanned_rbm_epoch(x: np.ndarray, hidden: int) -> Callable[[int], float]:
    """A hand-written PCD-1 epoch in plain JAX, every step inside one lax.scan:
    p = sigma(v W + c), h~ ~ Bern(sigma(v~ W + c)), v~' ~ Bern(sigma(h~ W^T + b)),
    p~ = sigma(v~' W + c), W += lr (v^T p - v~'^T p~) / B, b += lr mean(v - v~'),
    c += lr mean(p - p~); v~ <- v~' (Tieleman 2008)."""
    import jax
    import jax.numpy as jnp

    nv = x.shape[1]
    batches = jnp.asarray(x.reshape(-1, RBM_BATCH, nv))
    key = jax.random.PRNGKey(0)
    params = {"W": 0.01 * jax.random.normal(key, (nv, hidden)), "b": jnp.zeros(nv),
              "c": jnp.zeros(hidden)}
    chains = (jax.random.uniform(jax.random.fold_in(key, 1), (RBM_BATCH, nv)) < 0.5
              ).astype(jnp.float32)

    def step(carry, inp):
        (p, v_neg), (v, k) = carry, inp
        k1, k2 = jax.random.split(k)
        w, b, c = p["W"], p["b"], p["c"]
        h_neg = jax.random.bernoulli(k1, jax.nn.sigmoid(v_neg @ w + c)).astype(v.dtype)
        v_neg = jax.random.bernoulli(k2, jax.nn.sigmoid(h_neg @ w.T + b)).astype(v.dtype)
        p_pos, p_neg = jax.nn.sigmoid(v @ w + c), jax.nn.sigmoid(v_neg @ w + c)
        lr = RBM_LR / RBM_BATCH
        dw = jnp.concatenate([v, v_neg]).T @ jnp.concatenate([p_pos, -p_neg])
        new = {"W": w + lr * dw, "b": b + lr * (v - v_neg).sum(0),
               "c": c + lr * (p_pos - p_neg).sum(0)}
        return (new, v_neg), None

    @jax.jit
    def epoch(p, v_neg, k):
        keys = jax.random.split(k, batches.shape[0])
        return jax.lax.scan(step, (p, v_neg), (batches, keys))[0]

    box = {"carry": (params, chains), "k": key}

    def run(units: int) -> float:
        t0 = time.perf_counter()
        carry = box["carry"]
        for i in range(units):
            carry = epoch(*carry, jax.random.fold_in(box["k"], i))
        jax.block_until_ready(carry)
        box["carry"] = carry
        return time.perf_counter() - t0
    return run


# ----------------------------------------------------------------------------- Keras example fit
def keras_fit_side(side: str, quick: bool, examples: int | None = None, **_) -> Side:
    """The lecture's Keras example trained for 2 epochs with fit (benchmarks/
    keras_example_vs_keras.py), compilation included: jdl.runs.supervised.run vs Keras 3 model.fit
    on its JAX backend, the same arrays."""
    from benchmarks import keras_example_vs_keras as kv
    epochs = 1 if quick else 2
    n = examples or (256 if quick else 60000)
    fn = kv.run_jdl if side == "jdl" else kv.run_keras
    box = {}

    def run(units: int) -> float:
        total = 0.0
        for _ in range(units):
            r = fn(epochs, n)
            total += r["wall_s"]
            box["r"] = r
        return total
    # items: training examples seen (Keras' validation split: 90% of n)
    s = Side("jdl fit" if side == "jdl" else "Keras 3 fit (jax backend)", run,
             int(0.9 * n) * epochs, unit="samples/s (2 epochs, compile incl.)")
    return s


SIDES = {"jdl": jdl_side, "flax": flax_side, "torch": torch_side}
