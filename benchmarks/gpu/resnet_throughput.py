"""ResNet training throughput on one accelerator: images/s, achieved FLOP/s, fraction of peak.

    python benchmarks/gpu/resnet_throughput.py                  # ResNet-50, 224x224, batch 256,
                                                                # float32 then bfloat16 (~2-3 min)
    python benchmarks/gpu/resnet_throughput.py --dtypes bfloat16 --batch 512 --remat
    python benchmarks/gpu/resnet_throughput.py --quick          # tiny CPU smoke run (< 60 s)

What is timed: one jitted jdl train step, ``jax.jit(make_train_step(backprop(model), sgd(0.1,
momentum 0.9)), donate_argnums=0)`` (forward, backward, batch-norm statistics update, NaN guard,
optimiser), on one synthetic batch generated on the device (N(0, 1) images, uniform labels;
data loading is not measured). Compilation is timed apart; ``--warmup`` steps are run and
excluded; then ``--windows`` windows of ``--steps`` steps, each ended by block_until_ready. The
step time reported is the median window's time per step.

Precisions: ``float32`` is the model in float32 (on Ampere/Hopper XLA runs float32 convolutions
and matmuls on TF32 tensor cores by default, so its peak is the TF32 one); ``bfloat16`` is
ResNet's own ``dtype=bfloat16`` with float32 parameters (batch-norm statistics reduced in
float32, float32 logits and loss), i.e. mixed precision with float32 master weights; ``--bf16
wrapper`` uses jdl.train.mixed_precision_backprop over the float32 model instead (every float
parameter, batch-norm ones included, cast to bfloat16 inside the grad_fn).

FLOP/s, two ways:
  XLA:   cost_analysis()['flops'] of the compiled step (everything XLA counts: convolutions,
         batch norm, optimiser; recomputation too under --remat; but not the multiply-adds with
         a convolution's zero padding, so below the model count on small feature maps) / step
         time;
  model: 3 x 2 x forward MACs x batch / step time. Convention: one multiply-add = 2 FLOPs and
         forward + backward = 3 forward passes. ResNet-50 at 224x224: 4.09 G multiply-adds
         forward = 8.2 GFLOP, so 24.5 GFLOP per training image.
% of peak = model FLOP/s / the chip's dense peak for that dtype (model-FLOP utilisation), from
the table below by ``jax.devices()[0].device_kind``, or ``--peak-tflops``.

Prints a markdown table and, if $OUT is set (or --json is given), writes the rows and the set-up
as JSON to $OUT/resnet_throughput.json. Figures go in BUILD_NOTES.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from jdl.nn import RESNETS, forward_macs
from jdl.optim import sgd
from jdl.train import backprop, create_state, make_train_step, mixed_precision_backprop

# Dense (no sparsity) peak TFLOP/s per dtype, from NVIDIA's datasheets. 'float32' is the TF32
# tensor-core peak, which XLA uses for float32 convolutions/matmuls by default on these chips;
# 'fp32_simt' is the non-tensor-core float32 peak, recorded for reference.
PEAKS = [
    ("H100 PCIe", {"bfloat16": 756.0, "float32": 378.0, "fp32_simt": 51.0}),
    ("H100", {"bfloat16": 989.0, "float32": 494.7, "fp32_simt": 67.0}),    # SXM5
    ("H200", {"bfloat16": 989.0, "float32": 494.7, "fp32_simt": 67.0}),    # H100 SXM's compute
    ("A100", {"bfloat16": 312.0, "float32": 156.0, "fp32_simt": 19.5}),
]
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def peak_for(device_kind: str) -> dict | None:
    if "NVL" in device_kind:        # H100 NVL: other clocks, not in the table; use --peak-tflops
        return None
    for key, peaks in PEAKS:
        if key.lower() in device_kind.lower():
            return dict(peaks)
    return None


def parse_peak(text: str | None, dtypes) -> dict | None:
    """'989' (every dtype) or 'bfloat16=989,float32=494.7'."""
    if not text:
        return None
    if "=" not in text:
        return {d: float(text) for d in dtypes}
    return {k.strip(): float(v) for k, v in (kv.split("=") for kv in text.split(","))}


def xla_flops(compiled) -> float | None:
    """'flops' of Compiled.cost_analysis(): a dict in current jax, a list of dicts in older ones."""
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001  (some backends do not implement it)
        return None
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else None
    flops = (ca or {}).get("flops")
    return float(flops) if flops is not None and flops > 0 else None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet50", choices=sorted(RESNETS))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--stem", default=None, choices=["imagenet", "cifar"],
                   help="default: imagenet, or cifar for images under 64 pixels")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--bf16", default="model", choices=["model", "wrapper"],
                   help="bfloat16 via the model's dtype (default) or jdl.train.mixed_precision")
    p.add_argument("--remat", action="store_true", help="rematerialise each residual block")
    p.add_argument("--steps", type=int, default=20, help="steps per timed window")
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--peak-tflops", default=None,
                   help="override the peak: '989' or 'bfloat16=989,float32=494.7'")
    p.add_argument("--json", default=None, help="JSON path (default $OUT/resnet_throughput.json)")
    p.add_argument("--quick", action="store_true",
                   help="ResNet-10, 32x32, batch 4, 10 classes, 1 window of 2 steps: a smoke test")
    a = p.parse_args(argv)
    if a.quick:
        a.model, a.image_size, a.batch, a.num_classes = "resnet10", 32, 4, 10
        a.steps, a.windows, a.warmup = 2, 1, 1
    if a.stem is None:
        a.stem = "imagenet" if a.image_size >= 64 else "cifar"
    a.dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    bad = [d for d in a.dtypes if d not in DTYPES]
    if bad:
        p.error(f"unknown dtypes {bad}; known: {sorted(DTYPES)}")
    return a


def run(args) -> dict:
    dev = jax.devices()[0]
    kind = dev.device_kind
    peaks = parse_peak(args.peak_tflops, args.dtypes) or peak_for(kind)
    make = RESNETS[args.model]
    base = make(num_classes=args.num_classes, stem=args.stem, remat=args.remat)
    macs = forward_macs(base, (args.image_size, args.image_size))
    model_flops_per_step = 3 * 2 * macs * args.batch

    kx, ky = jax.random.split(jax.random.PRNGKey(0))
    # The init key is an 'rbg' key: the same distributions, but one RngBitGenerator op per draw
    # instead of an unrolled threefry hash, so the init compiles ~3x faster on XLA:CPU.
    kp = jax.random.key(0, impl="rbg")
    shape = (args.batch, args.image_size, args.image_size, 3)
    batch = jax.jit(lambda a, b: {
        "x": jax.random.normal(a, shape, jnp.float32),
        "y": jax.random.randint(b, shape[:1], 0, args.num_classes)})(kx, ky)
    t = time.perf_counter()
    variables = jax.jit(lambda k: base.init(k, batch["x"][:1], train=False))(kp)
    jax.block_until_ready(variables)
    init_s = time.perf_counter() - t
    print(f"# {args.model} ({args.stem} stem), {args.image_size}x{args.image_size}x3, "
          f"{args.num_classes} classes, batch {args.batch}, on {kind} ({dev.platform}); "
          f"jax {jax.__version__}; init {init_s:.1f} s", flush=True)
    print(f"# forward {macs / 1e9:.3f} G multiply-adds per image = {2 * macs / 1e9:.2f} GFLOP; "
          f"training ~ 3 x forward = {6 * macs / 1e9:.2f} GFLOP per image", flush=True)

    rows = []
    for name in args.dtypes:
        tx = sgd(0.1, 0.9)
        if name == "bfloat16" and args.bf16 == "wrapper":
            grad_fn = mixed_precision_backprop(base, compute_dtype=jnp.bfloat16)
            how = "mixed_precision wrapper, float32 params"
        else:
            grad_fn = backprop(base.clone(dtype=DTYPES[name]))
            how = "float32" if name == "float32" else "model dtype=bfloat16, float32 params"
        params = jax.tree.map(jnp.copy, variables["params"])
        state = create_state(params, tx, jax.random.PRNGKey(1),
                             {"batch_stats": jax.tree.map(jnp.copy, variables["batch_stats"])})
        step = jax.jit(make_train_step(grad_fn, tx), donate_argnums=0)
        t = time.perf_counter()
        compiled = step.lower(state, batch).compile()
        compile_s = time.perf_counter() - t
        flops_xla = xla_flops(compiled)

        metrics = None
        for _ in range(args.warmup):
            state, metrics = compiled(state, batch)
        jax.block_until_ready(state)
        per_step = []
        for _ in range(args.windows):
            t = time.perf_counter()
            for _ in range(args.steps):
                state, metrics = compiled(state, batch)
            jax.block_until_ready(state)
            per_step.append((time.perf_counter() - t) / args.steps)
        step_s = statistics.median(per_step)
        peak = (peaks or {}).get(name)
        model_tflops = model_flops_per_step / step_s / 1e12
        row = {
            "model": args.model, "dtype": name, "precision": how, "batch": args.batch,
            "image_size": args.image_size, "remat": args.remat,
            "images_per_s": args.batch / step_s, "step_ms": 1e3 * step_s,
            "step_ms_windows": [1e3 * s for s in per_step], "compile_s": compile_s,
            "xla_flops_per_step": flops_xla, "model_flops_per_step": model_flops_per_step,
            "tflops_xla": None if flops_xla is None else flops_xla / step_s / 1e12,
            "tflops_model": model_tflops, "peak_tflops": peak,
            "pct_peak": None if not peak else 100 * model_tflops / peak,
            "pct_peak_xla": None if not peak or flops_xla is None
            else 100 * flops_xla / step_s / 1e12 / peak,
            "final_loss": float(metrics["loss"]), "bad_step": int(state.bad_step),
        }
        rows.append(row)
        print(f"# {name} ({how}): compile {compile_s:.1f} s, "
              f"{row['images_per_s']:.1f} images/s, loss {row['final_loss']:.4f}", flush=True)
        del state, compiled
    return {"device_kind": kind, "platform": dev.platform, "jax": jax.__version__,
            "forward_macs_per_image": macs, "init_s": init_s,
            "peaks_tflops": peaks, "flop_convention": "1 multiply-add = 2 FLOPs; training = "
            "3 x forward; % of peak uses the model FLOPs and the dense peak (TF32 for float32)",
            "args": {k: v for k, v in vars(args).items()}, "rows": rows}


def _f(v, fmt):
    return "n/a" if v is None else format(v, fmt)


def table(result: dict) -> str:
    head = ("| model | dtype | batch | images/s | step ms | compile s | TFLOP/s (XLA) "
            "| TFLOP/s (model) | % of peak |")
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        lines.append(f"| {r['model']}{' remat' if r['remat'] else ''} | {r['dtype']} | "
                     f"{r['batch']} | {r['images_per_s']:.1f} | {r['step_ms']:.2f} | "
                     f"{r['compile_s']:.1f} | {_f(r['tflops_xla'], '.3f')} | "
                     f"{r['tflops_model']:.3f} | {_f(r['pct_peak'], '.1f')} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = run(args)
    print(table(result), flush=True)
    path = args.json or (os.path.join(os.environ["OUT"], "resnet_throughput.json")
                         if os.environ.get("OUT") else None)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        print(f"# wrote {path}", flush=True)
    bad = [r["dtype"] for r in result["rows"] if r["bad_step"] >= 0]
    if bad:
        print(f"# non-finite loss or gradient in: {bad}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
