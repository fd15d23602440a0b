"""One command for jdl's speed against its peers, side by side, in one run.

    python -m benchmarks                        # every workload, 5 interleaved rounds
    python -m benchmarks --workloads lenet5 mlp --rounds 3 --steps 20
    python -m benchmarks --quick                # tiny sizes, 1 round: a smoke test
    python -m benchmarks --peer-python /work/benchenv/bin/python   # peers from another venv

Each side of a workload (benchmarks/sides.py) runs in its own worker process (so its peak
resident memory, ru_maxrss, is its own), set up once: model, data, and a first compiling call,
whose seconds are reported apart ('first call'). Then, round after round, the orchestrator
asks each side in turn for ``--steps`` units of work (train steps; one epoch or one fit for the
epoch workloads), so the sides alternate on the same machine load. Reported: each side's median
throughput with its min-max over the rounds, the median of the per-round ratios jdl / peer
(> 1: jdl is faster) with their min-max, the first call's seconds, peak RSS, and, where the
sides share their initial weights, the loss each computes on the same first batch (they must
agree). A peer whose library is not installed is skipped and said so.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# workload -> (description, batch, peers); peers are side names of benchmarks.sides
WORKLOADS = {
    "lenet5": ("LeNet-5 (ReLU, max-pool) train step", 128, ("torch",)),
    "convnet": ("benchmark convnet (conv 32-64-1024) train step", 128, ("torch",)),
    "keras_example": ("the lecture's Keras example, train step", 32, ("torch", "flax")),
    "mlp": ("MLP 784-1024-1024-10 train step", 128, ("torch", "flax")),
    "resnet": ("small ResNet-18 (CIFAR stem, 16 filters, BN) train step", 128, ("torch",)),
    "zoo_alexnet": ("SMALL_ZOO alexnet train step", 128, ("flax",)),
    "zoo_vgg11": ("SMALL_ZOO vgg11 train step", 128, ("flax",)),
    "zoo_googlenet": ("SMALL_ZOO googlenet train step", 128, ("flax",)),
    "lstm": ("LSTM B=128 T=28 H=128 train step", 128, ("torch",)),
    "gru": ("GRU B=128 T=28 H=128 train step", 128, ("torch",)),
    "rbm": ("RBM 500h PCD-1 epoch, batch 100", 100, ("sklearn32", "sklearn64", "scan")),
    "keras_fit": ("Keras example, 2 epochs of fit, compile included", 32, ("keras",)),
}
QUICK_BATCH = 8
PEER_MODULES = {"torch": "torch", "sklearn32": "sklearn", "sklearn64": "sklearn",
                "keras": "keras", "flax": "flax", "scan": "jax"}
# units per round when --steps is not given (train steps; epochs or fits for the last two)
DEFAULT_STEPS = {"rbm": 1, "keras_fit": 1}


# ----------------------------------------------------------------------------- worker
def make_side(workload: str, side: str, batch: int, quick: bool, shared: str | None,
              threads: int, examples: int | None):
    from benchmarks import sides
    if workload in ("lstm", "gru"):
        return sides.rnn_side(workload, side, threads=threads)
    if workload == "rbm":
        return sides.rbm_side(side, quick)
    if workload == "keras_fit":
        return sides.keras_fit_side(side, quick, examples)
    return sides.SIDES[side](workload, batch=batch, quick=quick, shared=shared, threads=threads)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: KiB


def worker(a) -> None:
    """Set up one side, then answer 'run N' lines on stdin with the seconds of N units."""
    workload, side = a.worker.split(":")
    s = make_side(workload, side, a.batch, a.quick, a.shared, a.threads, a.examples)
    print("READY " + json.dumps({"label": s.label, "items": s.items, "unit": s.unit,
                                 "compile_s": s.compile_s, "loss0": s.loss0}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd and cmd[0] == "run":
            print("RESULT " + json.dumps({"seconds": s.run(int(cmd[1]))}), flush=True)
        else:
            break
    print("RSS " + json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)


# ----------------------------------------------------------------------------- orchestrator
class Worker:
    def __init__(self, python, workload, side, a, shared):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if side == "torch" or workload in ("lstm", "gru"):
            env["OMP_WAIT_POLICY"] = "PASSIVE"   # idle OpenMP threads sleep on shared cores
        if side == "keras":
            env["KERAS_BACKEND"] = "jax"
        batch = QUICK_BATCH if a.quick else WORKLOADS[workload][1]
        cmd = [python, "-m", "benchmarks", "--worker", f"{workload}:{side}", "--batch",
               str(batch), "--threads", str(a.threads), "--shared", shared]
        cmd += ["--quick"] if a.quick else []
        cmd += ["--examples", str(a.examples)] if a.examples else []
        self.name = side
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        self.info = self._read("READY")

    def _read(self, tag):
        for line in self.proc.stdout:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1:])
        err = self.proc.stderr.read()
        raise RuntimeError(f"worker {self.name} ended without {tag}:\n{err[-3000:]}")

    def run(self, units: int) -> float:
        self.proc.stdin.write(f"run {units}\n")
        self.proc.stdin.flush()
        return self._read("RESULT")["seconds"]

    def close(self) -> float:
        self.proc.stdin.write("exit\n")
        self.proc.stdin.flush()
        rss = self._read("RSS")["peak_rss_mb"]
        self.proc.wait()
        return rss


def available(python: str, module: str) -> bool:
    r = subprocess.run([python, "-c", "import importlib.util, sys; "
                        f"sys.exit(importlib.util.find_spec({module!r}) is None)"],
                       capture_output=True)
    return r.returncode == 0


def spread(values) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}" if len(values) > 1 else ""


def bench_workload(workload: str, a, python_of, shared: str) -> list[dict]:
    """Rows of the table for one workload: one per peer present."""
    _, _, peers = WORKLOADS[workload]
    present, rows = [], []
    for p in peers:
        py = python_of(p)
        if available(py, PEER_MODULES[p]):
            present.append(p)
        else:
            rows.append({"workload": workload, "peer": p,
                         "skipped": f"{PEER_MODULES[p]} is not installed for {py}"})
            print(f"[{workload}] skipping peer {p}: {PEER_MODULES[p]} not installed for {py}",
                  flush=True)
    if not present:
        return rows
    units = a.steps or DEFAULT_STEPS.get(workload, 2 if a.quick else 20)
    jdl = Worker(sys.executable, workload, "jdl", a, shared)   # first: it writes the weights
    others = [Worker(python_of(p), workload, p, a, shared) for p in present]
    times = {w.name: [] for w in [jdl] + others}
    for r in range(a.rounds):
        for w in [jdl] + others:
            times[w.name].append(w.run(units))
        print(f"[{workload}] round {r + 1}/{a.rounds}: " + ", ".join(
            f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
    rss = {w.name: w.close() for w in [jdl] + others}
    rate = lambda w, t: w.info["items"] * units / t   # noqa: E731
    jr = [rate(jdl, t) for t in times["jdl"]]
    for w in others:
        pr = [rate(w, t) for t in times[w.name]]
        ratios = [j / p for j, p in zip(jr, pr)]
        l0, p0 = jdl.info["loss0"], w.info["loss0"]
        rows.append({
            "workload": workload, "peer": w.name, "peer_label": w.info["label"],
            "unit": jdl.info["unit"], "units_per_round": units, "rounds": a.rounds,
            "jdl": statistics.median(jr), "jdl_all": jr, "peer_rate": statistics.median(pr),
            "peer_all": pr, "ratio": statistics.median(ratios), "ratio_all": ratios,
            "jdl_first_s": jdl.info["compile_s"], "peer_first_s": w.info["compile_s"],
            "jdl_rss_mb": rss["jdl"], "peer_rss_mb": rss[w.name],
            "jdl_loss0": l0, "peer_loss0": p0,
            "loss_match": (None if l0 is None or p0 is None
                           else abs(l0 - p0) <= 1e-4 * max(1.0, abs(l0)))})
    return rows


def fmt_s(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def table(rows: list[dict]) -> str:
    out = ["| workload | peer | unit | jdl (median, min-max) | peer (median, min-max) | "
           "jdl / peer (min-max) | first call s jdl / peer | peak RSS MB jdl / peer | "
           "loss on batch 0 jdl / peer |",
           "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['workload']} | {r['peer']} | skipped: {r['skipped']} "
                       "| | | | | | |")
            continue
        rr = r["ratio_all"]
        loss = ("not shared" if r["loss_match"] is None else
                f"{r['jdl_loss0']:.5f} / {r['peer_loss0']:.5f} "
                f"({'equal' if r['loss_match'] else 'DIFFERENT'})")
        out.append(
            f"| {r['workload']} | {r['peer_label']} | {r['unit']} | {r['jdl']:,.0f} "
            f"({spread(r['jdl_all'])}) | {r['peer_rate']:,.0f} ({spread(r['peer_all'])}) | "
            f"**{r['ratio']:.2f}** ({min(rr):.2f}-{max(rr):.2f}) | "
            f"{fmt_s(r['jdl_first_s'])} / {fmt_s(r['peer_first_s'])} | "
            f"{r['jdl_rss_mb']:,.0f} / {r['peer_rss_mb']:,.0f} | {loss} |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="+", default=None, choices=sorted(WORKLOADS),
                    help="default: all")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; "
                    "--quick: 1)")
    ap.add_argument("--steps", type=int, default=None,
                    help="units per side per round (default 20 train steps; 1 epoch / fit)")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: batch 8, MLP 64-64, "
                    "RBM 400 examples x 16 hidden, Keras example on 256 examples")
    ap.add_argument("--examples", type=int, default=None, help="keras_fit: training examples")
    ap.add_argument("--peer-python", default=None,
                    help="python of the venv with the peers (torch, keras, sklearn); jdl and "
                         "the flax/scan sides always run under this python")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument("--shared", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a)
    a.rounds = a.rounds or (1 if a.quick else 5)
    names = a.workloads or list(WORKLOADS)
    jax_sides = ("flax", "scan")
    python_of = lambda p: sys.executable if (p in jax_sides or not a.peer_python) else a.peer_python  # noqa: E731
    print(f"python -m benchmarks: {names}, {a.rounds} rounds, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M %Z')}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as shared:
        for name in names:
            try:
                rows += bench_workload(name, a, python_of, shared)
            except RuntimeError as e:   # a side that failed: its row says why, the rest run
                why = str(e).strip().splitlines()
                rows.append({"workload": name, "peer": "-",
                             "skipped": f"failed: {why[0]} {why[-1]}"[:300]})
                print(f"[{name}] failed: {why[-1]}", flush=True)
    print()
    print(table(rows))
    print(f"\nratios > 1: jdl faster; load average at the end {os.getloadavg()[0]:.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
