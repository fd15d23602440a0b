"""Where the CPU convnet train step spends its time: each operation of LeNet-5, the benchmark
convnet and the lecture's Keras example timed alone, jdl/XLA beside PyTorch, at the models' own
shapes (batch 128; the Keras example 32).

    python benchmarks/conv_profile.py [--models lenet5 convnet keras_example] [--repeats 30]
    (PyTorch from another venv: run this file with that venv's python; it needs jdl and torch)

For every convolution: the forward pass, dL/dx (absent from the real step for the first layer:
marked '(unused)'), and dL/dk three ways: jdl's CPU tap products, XLA's own kernel-gradient
convolution (the one jdl.nn.convolution.taps_pay_off picks is marked '(used)'), and PyTorch's
``aten.convolution_backward`` with only the weight mask set. For every max-pool and dense
layer: forward and backward. Each operation is one jitted function (inputs already on the
device) or one PyTorch call, timed as the median over ``--rounds`` of the mean of
``--repeats`` calls, the two libraries alternating round by round. The table's last column is
PyTorch's time over jdl's (> 1: jdl faster); the 'sum' rows add the operations that the real
step runs (jdl's dL/dk counted once, the formulation it uses).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# (kind, name, shape): conv = (N, H, W, Cin, Cout, k, padding); pool = (N, H, W, C);
# dense = (N, fan_in, fan_out). H, W: the layer's input size.
MODELS = {
    "lenet5": [("conv", "C1 5x5 1->6 valid", (128, 32, 32, 1, 6, 5, "VALID")),
               ("pool", "S2 max 2x2", (128, 28, 28, 6)),
               ("conv", "C3 5x5 6->16 valid", (128, 14, 14, 6, 16, 5, "VALID")),
               ("pool", "S4 max 2x2", (128, 10, 10, 16)),
               ("conv", "C5 5x5 16->120 valid", (128, 5, 5, 16, 120, 5, "VALID")),
               ("dense", "F6 120->84", (128, 120, 84)),
               ("dense", "output 84->10", (128, 84, 10))],
    "convnet": [("conv", "conv1 5x5 1->32 same", (128, 28, 28, 1, 32, 5, "SAME")),
                ("pool", "pool1 max 2x2", (128, 28, 28, 32)),
                ("conv", "conv2 5x5 32->64 same", (128, 14, 14, 32, 64, 5, "SAME")),
                ("pool", "pool2 max 2x2", (128, 14, 14, 64)),
                ("dense", "dense 3136->1024", (128, 3136, 1024)),
                ("dense", "dense 1024->10", (128, 1024, 10))],
    "keras_example": [("conv", "conv1 3x3 1->32 valid", (32, 28, 28, 1, 32, 3, "VALID")),
                      ("conv", "conv2 3x3 32->32 valid", (32, 26, 26, 32, 32, 3, "VALID")),
                      ("pool", "max 2x2", (32, 24, 24, 32)),
                      ("dense", "dense 4608->128", (32, 4608, 128)),
                      ("dense", "dense 128->10", (32, 128, 10))],
}


def jax_ops(kind, shape, first):
    """name -> zero-argument callable running one jitted jdl/XLA operation to completion."""
    import jax
    import jax.numpy as jnp

    from jdl.nn import convolution as cv
    key = jax.random.PRNGKey(0)
    ops = {}

    def timed(f, *args):
        fj = jax.jit(f)
        args = [jax.device_put(a) for a in args]
        return lambda: jax.block_until_ready(fj(*args))
    if kind == "conv":
        n, h, w, ci, co, k, pad = shape
        x = jax.random.normal(key, (n, h, w, ci))
        kern = jax.random.normal(key, (k, k, ci, co)) * 0.1
        y = cv._conv(x, kern, pad)
        g = jax.random.normal(key, y.shape)
        ops["forward"] = timed(lambda a, b: cv._conv(a, b, pad), x, kern)
        ops["dL/dx" + (" (unused)" if first else "")] = timed(
            lambda a, b, gg: jax.vjp(lambda a_: cv._conv(a_, b, pad), a)[1](gg)[0], x, kern, g)
        used = cv.taps_pay_off(x.shape, kern.shape)   # the formulation jdl's step runs on CPU
        ops["dL/dk taps" + (" (used)" if used else "")] = timed(
            lambda a, gg: cv.kernel_grad_taps(a, gg, kern.shape, pad), x, g)
        ops["dL/dk XLA" + ("" if used else " (used)")] = timed(
            lambda a, gg: cv.kernel_grad_xla(a, gg, kern.shape, pad), x, g)
    elif kind == "pool":
        n, h, w, c = shape
        x = jax.random.normal(key, shape)
        g = jax.random.normal(key, (n, h // 2, w // 2, c))
        ops["forward"] = timed(lambda a: cv.max_pool(a, (2, 2), strides=(2, 2)), x)
        ops["backward"] = timed(
            lambda a, gg: jax.vjp(lambda a_: cv.max_pool(a_, (2, 2), strides=(2, 2)), a)[1](gg)[0],
            x, g)
    else:
        n, fi, fo = shape
        x = jax.random.normal(key, (n, fi))
        wgt = jax.random.normal(key, (fi, fo)) * 0.01
        g = jax.random.normal(key, (n, fo))
        ops["forward"] = timed(lambda a, b: a @ b, x, wgt)
        ops["backward"] = timed(lambda a, b, gg: (gg @ b.T, a.T @ gg), x, wgt, g)
    return ops


def torch_ops(kind, shape, first):
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    ops = {}
    aten = torch.ops.aten
    if kind == "conv":
        n, h, w, ci, co, k, pad = shape
        x = torch.randn(n, ci, h, w)
        kern = torch.randn(co, ci, k, k) * 0.1
        p = (k - 1) // 2 if pad == "SAME" else 0
        y = F.conv2d(x, kern, padding=p)
        g = torch.randn_like(y)
        bw = lambda mask: aten.convolution_backward(  # noqa: E731
            g, x, kern, None, [1, 1], [p, p], [1, 1], False, [0, 0], 1, mask)
        ops["forward"] = lambda: F.conv2d(x, kern, padding=p)
        ops["dL/dx" + (" (unused)" if first else "")] = lambda: bw([True, False, False])
        ops["dL/dk"] = lambda: bw([False, True, False])
    elif kind == "pool":
        n, h, w, c = shape
        x = torch.randn(n, c, h, w, requires_grad=True)
        y, idx = F.max_pool2d(x, 2, 2, return_indices=True)
        g = torch.randn_like(y)
        ops["forward"] = lambda: F.max_pool2d(x.detach(), 2, 2)
        ops["backward"] = lambda: aten.max_pool2d_with_indices_backward(
            g, x.detach(), [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
    else:
        n, fi, fo = shape
        x = torch.randn(n, fi)
        wgt = torch.randn(fo, fi) * 0.01
        g = torch.randn(n, fo)
        ops["forward"] = lambda: F.linear(x, wgt)
        ops["backward"] = lambda: (g @ wgt, g.t() @ x)
    return ops


def mean_ms(f, repeats):
    f()
    t0 = time.perf_counter()
    for _ in range(repeats):
        f()
    return (time.perf_counter() - t0) / repeats * 1e3


def in_step(op: str) -> bool:
    """Whether the real train step runs this operation (jdl's side: the dL/dk formulation
    that jdl.nn.convolution.taps_pay_off picks, marked '(used)')."""
    return "(unused)" not in op and (not op.startswith("dL/dk") or op.endswith("(used)"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(a.threads)
        have_torch = True
    except ImportError:
        have_torch = False
        print("# PyTorch is not installed here: the jdl column only")
    import jax
    print(f"# jax {jax.__version__}" + (f", torch {torch.__version__}" if have_torch else "")
          + f", {os.cpu_count()} cores, ms per call (median of {a.rounds} rounds x {a.repeats})")
    for model in a.models:
        print(f"\n## {model}\n| layer | operation | jdl ms | torch ms | torch/jdl |\n|---|---|---|---|---|")
        totals = {"jdl": 0.0, "torch": 0.0}
        for i, (kind, name, shape) in enumerate(MODELS[model]):
            first = i == 0
            jo = jax_ops(kind, shape, first)
            to = torch_ops(kind, shape, first) if have_torch else {}
            times = {("jdl", op): [] for op in jo} | {("torch", op): [] for op in to}
            for _ in range(a.rounds):
                for op, f in jo.items():
                    times[("jdl", op)].append(mean_ms(f, a.repeats))
                for op, f in to.items():
                    times[("torch", op)].append(mean_ms(f, a.repeats))
            med = {key: statistics.median(v) for key, v in times.items()}
            for op in jo:
                tkey = ("torch", "dL/dk" if op.startswith("dL/dk") else op)
                tms = med.get(tkey)
                row = f"| {name} | {op} | {med[('jdl', op)]:.3f} | "
                row += f"{tms:.3f} | {tms / med[('jdl', op)]:.2f} |" if tms is not None else "- | - |"
                print(row)
                if in_step(op):
                    totals["jdl"] += med[("jdl", op)]
                    if tms is not None:
                        totals["torch"] += tms
        ratio = f"{totals['torch'] / totals['jdl']:.2f}" if have_torch else "-"
        print(f"| sum | the step's operations | {totals['jdl']:.3f} | {totals['torch']:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
