"""RBM features plus logistic regression on scikit-learn's 8x8 digits, as scikit-learn's example
"Restricted Boltzmann Machine features for digit classification" does, side by side with that
example's own pipeline and with a joint RBM over (image, label) that classifies by free energy.

    python experiments/rbm_digits.py                 # ~30 s here

The data and settings are the example's: the 1,797 digits nudged by one pixel in each of the
four directions (8,985 images), min-max scaled to [0, 1], 80/20 train/test split with
random_state 0; an RBM of 100 hidden units, learning rate 0.06, batches of 10, 10 epochs, PCD-1;
logistic regression with C = 6000 on the RBM's p(h | v), C = 100 on raw pixels. The example's
``tol=1`` stops newton-cg before it has learnt anything in recent scikit-learn, so every logistic
regression here is newton-cg with scikit-learn's default tolerance, 1e-4 (at C = 6000 the
result depends on convergence: lbfgs or tol 1e-3 lose 0.5 to 2.5 points).

Rows printed and written to runs/rbm_digits/summary.json:
- raw pixels + logistic regression;
- scikit-learn BernoulliRBM features + logistic regression (the example's pipeline);
- jdl RBM features + logistic regression (same settings, ``jdl.rbm.train_rbm``);
- jdl joint RBM on [v, one-hot label] (Hinton 2007's discriminative use of a generative RBM:
  label = argmin_y F(v, y), ``jdl.rbm.inference.classify``).

Result here (seed 0, 32 s wall on the 2 shared cores): test accuracy raw pixels 0.7807,
scikit-learn RBM features 0.9354, jdl RBM features 0.9482, jdl joint RBM by free energy 0.8959
(BUILD_NOTES.md, "RBM features on the digits").
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional

import numpy as np

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import script  # noqa: E402
from jdl.runs.supervised import answer_help, start  # noqa: E402


@dataclasses.dataclass
class RBMDigitsConfig:
    hidden: int = 100                    # hidden units
    learning_rate: float = 0.06          # learning rate
    batch_size: int = 10                 # examples per update
    epochs: int = 10                     # passes over the training set
    k: int = 1                           # Gibbs steps per update (CD-k / PCD-k)
    persistent: bool = True              # persistent chains (PCD-k, Tieleman 2008), else CD-k
    c_rbm: float = 6000.0               # logistic regression's C on RBM features
    c_raw: float = 100.0                # on raw pixels
    joint_hidden: int = 200             # joint (image, label) RBM
    joint_epochs: int = 30               # epochs of the joint RBM
    joint_learning_rate: float = 0.05    # learning rate of the joint RBM
    joint_momentum: float = 0.5          # momentum of the joint RBM
    seed: int = 0                        # seed of the initialisation and the batches
    devices: Optional[int] = None       # data parallelism: None all local devices, or the first N


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(RBMDigitsConfig, "rbm_digits", __doc__, checkpoints=False)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jdl import optim, rbm  # noqa: E402
from jdl.runs import plots  # noqa: E402


def nudge(x):
    """scikit-learn example's augmentation: the images (n, 64) of 8x8 digits followed by their
    copies shifted by one pixel up, left, right and down (zero-filled): (5n, 64)."""
    from scipy.ndimage import convolve
    shifts = [[[0, 1, 0], [0, 0, 0], [0, 0, 0]], [[0, 0, 0], [1, 0, 0], [0, 0, 0]],
              [[0, 0, 0], [0, 0, 1], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 1, 0]]]
    moved = [np.stack([convolve(v.reshape(8, 8), np.array(w), mode="constant").ravel()
                       for v in x]) for w in shifts]
    return np.concatenate([x] + moved)


def nudged_digits(seed: int = 0):
    """The example's data: the 1,797 digits and their four one-pixel shifts (:func:`nudge`),
    min-max scaled to [0, 1] per feature, split 80/20 with
    ``train_test_split(test_size=0.2, random_state=seed)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import minmax_scale

    digits = load_digits()
    x = nudge(np.asarray(digits.data, np.float32))
    y = np.concatenate([digits.target] * 5)
    x = minmax_scale(x, feature_range=(0, 1)).astype(np.float32)
    return train_test_split(x, y, test_size=0.2, random_state=seed)


def logistic_accuracy(f_train, y_train, f_test, y_test, c: float) -> float:
    from sklearn.linear_model import LogisticRegression
    clf = LogisticRegression(C=c, solver="newton-cg", tol=1e-4, max_iter=1000)
    clf.fit(f_train, y_train)
    return float(clf.score(f_test, y_test))


def run(cfg: RBMDigitsConfig, workdir: str, progress: bool = False) -> dict:
    from sklearn.neural_network import BernoulliRBM

    t_start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    x_train, x_test, y_train, y_test = nudged_digits(cfg.seed)
    out = {"n_train": int(len(x_train)), "n_test": int(len(x_test))}
    out["raw_pixels"] = logistic_accuracy(x_train, y_train, x_test, y_test, cfg.c_raw)

    t0 = time.perf_counter()
    sk = BernoulliRBM(n_components=cfg.hidden, learning_rate=cfg.learning_rate,
                      batch_size=cfg.batch_size, n_iter=cfg.epochs, random_state=cfg.seed)
    sk.fit(x_train)
    out["sklearn_rbm_train_s"] = time.perf_counter() - t0
    out["sklearn_rbm"] = logistic_accuracy(sk.transform(x_train), y_train,
                                           sk.transform(x_test), y_test, cfg.c_rbm)

    key = jax.random.PRNGKey(cfg.seed)
    res = rbm.train_rbm(x_train, cfg.hidden, key, epochs=cfg.epochs,
                        batch_size=cfg.batch_size, tx=optim.sgd(cfg.learning_rate), k=cfg.k,
                        persistent=cfg.persistent, seed=cfg.seed, progress=progress,
                        devices=cfg.devices)
    params = res.state.params
    out["jdl_rbm_train_s"] = res.train_time + res.compile_time
    features = jax.jit(rbm.p_h_given_v)
    out["jdl_rbm"] = logistic_accuracy(np.asarray(features(params, x_train)), y_train,
                                       np.asarray(features(params, x_test)), y_test, cfg.c_rbm)
    plots.plot_image_grid(rbm.inference.hidden_weight_images(params, (8, 8), 100),
                          os.path.join(workdir, "filters.png"), vmin=None, vmax=None,
                          title="jdl RBM: weights of the 100 hidden units")

    # joint RBM over [v, one-hot(y)]: generative training, classification by free energy
    joint_x = np.concatenate([x_train, np.eye(10, dtype=np.float32)[y_train]], axis=1)
    tx = optim.sgd(optim.cosine(cfg.joint_learning_rate,
                                cfg.joint_epochs * (len(joint_x) // cfg.batch_size)),
                   cfg.joint_momentum)
    joint = rbm.train_rbm(joint_x, cfg.joint_hidden, jax.random.fold_in(key, 1),
                          epochs=cfg.joint_epochs, batch_size=cfg.batch_size, tx=tx, k=cfg.k,
                          persistent=False, seed=cfg.seed, progress=progress,
                          devices=cfg.devices)
    predicted = np.asarray(rbm.inference.classify(joint.state.params, jnp.asarray(x_test), 10))
    out["joint_rbm_free_energy"] = float(np.mean(predicted == y_test))
    out["wall_time_s"] = time.perf_counter() - t_start
    run_dir.RunDir(workdir).write_summary({
        "experiment": "rbm_digits", "test": {"accuracy": out["jdl_rbm"]},
        "test_model": "jdl RBM features + logistic regression (final RBM); the other "
                      "classifiers' accuracies are raw_pixels, sklearn_rbm, joint_rbm_free_energy",
        "resumed": False, "config": dataclasses.asdict(cfg), **out})
    return out


@script("rbm_digits", RBMDigitsConfig)
def main(argv=None):
    cfg, ns = start(RBMDigitsConfig, "rbm_digits", argv, __doc__, checkpoints=False)
    workdir = ns.workdir
    out = run(cfg, workdir, progress=not ns.no_progress)
    print("test accuracy on the nudged digits "
          f"({out['n_train']} train, {out['n_test']} test):")
    for name, label in (("raw_pixels", "raw pixels + logistic regression"),
                        ("sklearn_rbm", "scikit-learn BernoulliRBM + logistic regression"),
                        ("jdl_rbm", "jdl RBM + logistic regression"),
                        ("joint_rbm_free_energy", "jdl joint RBM, free-energy classifier")):
        print(f"  {label:50s} {out[name]:.4f}")
    print(f"wall {out['wall_time_s']:.0f} s | outputs in {workdir}")
    return out


if __name__ == "__main__":
    main()
