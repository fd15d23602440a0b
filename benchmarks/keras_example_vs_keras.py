"""Side by side: the lecture's Keras example in jdl and in Keras 3 (JAX backend), same data.

    python benchmarks/keras_example_vs_keras.py [--seeds 0 1 2] [--epochs 2] [--max-train-examples N]

Both train on Fashion-MNIST normalised to zero mean / unit variance (training-set statistics),
the last 10% of the training set held out as Keras' validation_split does, SGD lr 0.05 momentum
0.8, batch 32, 2 epochs; each runs in its own fresh process, one after the other. Reported: wall
time of the two epochs *including compilation* (Keras: model.fit; jdl: jdl.train.fit) and test
accuracy, then the ratios. Needs `pip install keras` (the `bench` extra).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def keras_example():
    """(Config, build_model) of experiments/keras_example.py, the script run as a module."""
    import runpy
    script = runpy.run_path(os.path.join(ROOT, "experiments", "keras_example.py"))
    return script["Config"], script["build_model"]


def run_keras(epochs: int, max_train: int | None, seed: int = 0) -> dict:
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    import numpy as np

    from jdl.runs.supervised import load_data
    Config, _ = keras_example()

    cfg = Config(epochs=epochs, max_train_examples=max_train, seed=seed)
    (xtr, ytr), (xva, yva), (xte, yte), _ = load_data(cfg)
    x_all, y_all = np.concatenate([xtr, xva]), np.concatenate([ytr, yva])  # validation_split re-splits
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, padding="valid", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="valid", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Dropout(0.25),
        keras.layers.Flatten(),
        keras.layers.Dense(128, kernel_initializer="lecun_uniform", activation="sigmoid"),
        keras.layers.Dense(10, kernel_initializer="lecun_uniform", activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.8),
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x_all, y_all, batch_size=32, epochs=epochs, verbose=0,
              validation_split=len(xva) / len(x_all))
    wall = time.perf_counter() - t0
    _, acc = model.evaluate(xte, yte, verbose=0, batch_size=1000)
    return {"framework": f"keras {keras.__version__} (jax backend)", "wall_s": wall,
            "test_accuracy": float(acc)}


def run_jdl(epochs: int, max_train: int | None, seed: int = 0) -> dict:
    import tempfile

    from jdl.runs.supervised import run
    Config, build_model = keras_example()

    cfg = Config(epochs=epochs, max_train_examples=max_train, seed=seed)
    with tempfile.TemporaryDirectory() as d:
        s = run(cfg, build_model, d, progress=False, title="keras_example")
    return {"framework": "jdl", "wall_s": s["fit_wall_time_s"], "compile_s": s["compile_time_s"],
            "test_accuracy": s["final_test"]["accuracy"]}   # the final model, as Keras's


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="one jdl run and one Keras run per seed (weights, dropout, shuffling)")
    p.add_argument("--worker", choices=["keras", "jdl"], default=None)
    a = p.parse_args()
    if a.worker:
        fn = run_keras if a.worker == "keras" else run_jdl
        print("RESULT " + json.dumps(fn(a.epochs, a.max_train_examples, a.seeds[0])))
        return
    res = {"jdl": [], "keras": []}
    for seed in a.seeds:
        for w in ("jdl", "keras"):
            cmd = [sys.executable, __file__, "--worker", w, "--epochs", str(a.epochs), "--seeds", str(seed)]
            if a.max_train_examples:
                cmd += ["--max-train-examples", str(a.max_train_examples)]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if not line:
                sys.exit(f"{w} worker failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            r = json.loads(line[0][7:])
            res[w].append(r)
            print(f"seed {seed}  {r['framework']:<32} wall {r['wall_s']:7.1f} s   test acc {r['test_accuracy']:.4f}",
                  flush=True)
    mean = lambda w, k: sum(r[k] for r in res[w]) / len(res[w])  # noqa: E731
    print(f"mean over seeds {a.seeds}: jdl wall {mean('jdl', 'wall_s'):.1f} s, acc {mean('jdl', 'test_accuracy'):.4f} | "
          f"keras wall {mean('keras', 'wall_s'):.1f} s, acc {mean('keras', 'test_accuracy'):.4f}")
    print(f"time ratio jdl/keras = {mean('jdl', 'wall_s') / mean('keras', 'wall_s'):.3f} (<= 1 means jdl is faster); "
          f"accuracy jdl - keras = {mean('jdl', 'test_accuracy') - mean('keras', 'test_accuracy'):+.4f}")


if __name__ == "__main__":
    main()
