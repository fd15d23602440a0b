"""Autoencoders on Fashion-MNIST against PCA (Hinton & Salakhutdinov 2006, "Reducing the
dimensionality of data with neural networks", Science 313; Vincent et al. 2008; Kingma &
Welling 2014): a deep autoencoder 784-1000-500-250-30 against PCA with 30 components, 2-D
codes against PCA-2, a denoising against a plain autoencoder, a variational autoencoder,
greedy stacked pretraining plus fine-tuning against end-to-end training from random init,
sparse and contractive against plain autoencoders, a convolutional autoencoder, the
DBN-initialised deep autoencoder against random init, and k-means clustering of the learnt
codes against clustering pixels or PCA codes (the lecture: "much better results than
clustering in input space or using other dimension reduction (PCA)").

    python experiments/ae_fashion.py --parts deep,penalties,conv,dbn,clustering \
        --max-train-examples 5000 --max-test-examples 2000 --deep-epochs 5 --reg-epochs 3 \
        --conv-epochs 3 --dbn-pretrain-epochs 2 --dbn-finetune-epochs 5 \
        --eval-each-epoch false --cluster-inits 5 --workdir runs/ae_new_small  # the new parts, small

    python experiments/ae_fashion.py                     # all nine parts (the first five ~58 min)
    python experiments/ae_fashion.py --parts vae         # one part (also: --resume)
    python experiments/ae_fashion.py --max-train-examples 3000 --max-test-examples 1000 \\
        --deep-epochs 1 --greedy-epochs 1 --finetune-epochs 1 --codes2d-epochs 1 \\
        --denoise-epochs 1 --vae-epochs 1 --workdir runs/ae_fashion_smoke     # smoke, ~2.5 min

Runtime measured here: about 58 min wall while one to three other trainings shared the two
cores (the deep part 50.7 s/epoch loaded; a step of the 784-1000-500-250-30 network costs 50 ms
of CPU time, 23 s per 60,000-image epoch). The run trains the equivalent of ~70 deep-network
epochs: 30 deep, 3 + 15 greedy and fine-tuning, 10 for 2-D codes, 7 denoising, 4 VAE.

Data: the 60,000 training and 10,000 test images, pixels in [0, 1] (intensity / 255), labels
used only to score codes. Every error is the summed squared error per image,
mean_n sum_i (z_ni - x_ni)^2, on the test set (the measure on which PCA-30 gets 12.24; H&S
report 3.00 for their deep autoencoder against 13.87 for PCA-30 on MNIST). PCA is fitted on
the training set (eigenvectors of the covariance matrix, float64).

Parts (``--parts``, comma-separated; default all nine):

- deep: 784-1000-500-250-30 autoencoder (ReLU hidden layers, linear code, sigmoid output,
  untied), random init, trained end to end for 30 epochs; test error against PCA-30's, and the
  k-NN accuracy / retrieval precision@10 of its 30-D codes against PCA-30's.
- greedy: the same network built greedily (Bengio et al. 2007): one one-layer autoencoder per
  layer (784-1000, 1000-500, 500-250, 250-30), 3 epochs each, each on the codes of the layers
  below; then unrolled and fine-tuned end to end for 15 epochs. The layers' 4 x 3 epochs cost
  about as much as 3 epochs of the deep network (the same 2.83M weights), so the greedy route
  gets 18 deep-network epochs of compute against the end-to-end route's 30 (cut from 27
  fine-tuning epochs to fit this session's time).
- codes2d: 784-1000-500-250-2 autoencoder, 10 epochs, against PCA-2: scatter of the test codes
  coloured by class (codes2d.png), k-NN (k = 10, training codes as the reference set) test
  accuracy, retrieval precision@10 of the test queries among the training codes.
- denoise: two 784-500-128 autoencoders, 10 epochs each, one on clean inputs (plain), one
  reconstructing the clean image from a corrupted copy (denoising; masking noise: each pixel
  set to 0 with probability 0.3, Vincent et al. 2008, redrawn every step); PSNR against the
  clean images of the corrupted test images themselves and of each autoencoder's output for
  them (one fixed corruption of the test set), PSNR = 10 log10(1 / MSE), MSE over all pixels.
- vae: 784-400-20 VAE (ReLU), Bernoulli decoder on the grey levels, 15 epochs; test ELBO
  (10 samples per image), the importance-weighted bound with 50 samples (Burda et al. 2016),
  100 samples from the prior (vae_samples.png). Nats per image; as grey levels are not binary,
  these are not densities of the images.

- penalties: three one-layer sigmoid autoencoders 784-256-784 from one initialisation, 10
  epochs each: plain; sparse (Ng's penalty beta sum_j KL(rho || rho_hat_j), rho = 0.05,
  beta = 0.1, rho_hat the batch's mean code); contractive (Rifai et al. 2011, lambda_c
  ||J_f(x)||_F^2 = lambda_c sum_j (h_j (1 - h_j))^2 sum_i W_ij^2, lambda_c = 0.1). Each:
  test error, mean code activation and fraction of codes below 0.1 (1,000 test images), the
  mean ||J_f(x)||_F^2 there, 10-NN accuracy / precision@10 of the codes.
- conv: jdl.nn.ConvAutoencoder 28x28x1 -> [3x3 conv 32, ReLU, 2x2 max pool] -> [3x3 conv 64,
  ReLU, 2x2 max pool] -> 30 (linear code) -> 7x7x64 -> [2x upsampling, 3x3 conv 32, ReLU]
  -> [2x upsampling, 3x3 conv 1, sigmoid], 10 epochs; test error and code scores against
  the deep MLP autoencoder's.
- dbn: Hinton & Salakhutdinov's route: a DBN 784-1000-500-250-30 (Bernoulli units) trained
  greedily with CD-1 (jdl.rbm.dbn.greedy_layerwise; SGD 0.05 cosine, momentum 0.5, weight cost
  2e-4, batches of 100, 5 epochs per RBM), unrolled into a deep sigmoid autoencoder
  (jdl.ae.from_dbn, sigmoid code) and fine-tuned by backprop for 15 epochs, against the same
  network from random init trained the same way; test error before and after, code scores.
- clustering: k-means (k = 10, 10 k-means++ restarts, jdl.analysis.kmeans) of the test images
  as pixels (784-D), PCA-30 codes and the 30-D test codes of the parts run in the same
  invocation (deep AE, conv AE, the DBN's propagate_up codes, the DBN-initialised and the
  random-init sigmoid AE), each scored against the labels by NMI and purity
  (jdl.analysis.clustering); clustering.png. Run it with the parts whose codes it compares
  (``--resume`` restores finished trainings without retraining them).

Every training: Adam, learning rate 1e-3 with cosine decay over the run, batches of 128, the
loss ``--loss``: the summed squared error (default) or the cross-entropy of the sigmoid output
(the greedy layers above the first, whose outputs are ReLU codes, always use the squared
error); the test error is logged per epoch for the learning curves only (the final parameters
are used). The defaults come from a 6,000-image, 5-epoch probe of the deep autoencoder (test
error, 2,000 test images): ReLU + squared 18.4, ReLU + cross-entropy 18.8, sigmoid hidden
layers 46.9 / 47.1 (still at the mean image).

Writes, under runs/ae_fashion: one jdl.train.fit workdir per training (deep/,
greedy/layer1..4/, greedy/finetune/, codes2d/, denoise/plain/, denoise/denoising/, vae/,
penalties/{plain,sparse,contractive}/, conv/, dbn/pretrain/layer0..3/, dbn/dbn_init/,
dbn/random_init/:
metrics.jsonl, checkpoints, learning_curves.png; ``--resume`` continues killed or finished
trainings), config.json, summary.json (every figure, the acceptance checks; a run of some
parts updates the figures of those parts), reconstructions.png (test images, deep AE,
stacked + fine-tuned AE, PCA-30), codes2d.png, denoising.png, vae_samples.png,
clustering.png.

Result here (seed 0, full data; `--finetune-epochs 15 --codes2d-epochs 10`, now the defaults):
- deep autoencoder test error 5.886 against PCA-30's 12.243 (ratio 0.481); its 30-D codes:
  10-NN accuracy 0.8732 and precision@10 0.8257 against PCA-30's 0.8518 and 0.7992;
- greedy stacked pretraining 28.97 before, 6.181 after fine-tuning, against 5.886 end to end;
- 2-D codes: 10-NN accuracy 0.7203 against PCA-2's 0.5293 (+19.1 points), precision@10
  0.6538 against 0.4508, reconstruction error 19.36 against 36.14;
- denoising (masking 0.3): PSNR of the corrupted test images 12.08 dB; plain autoencoder's
  output 14.65 dB, denoising autoencoder's 19.75 dB;
- VAE 784-400-20: test ELBO -244.7 nats (reconstruction term -227.4, KL 17.3), 50-sample
  importance-weighted bound -242.5.

Result here, parts dbn and clustering (seed 0, full data, defaults; 503 s wall on 2 cores
shared with a test run): ``python experiments/ae_fashion.py --parts dbn,clustering``
- DBN 784-1000-500-250-30 (CD-1, 5 epochs per RBM, 131 s): unrolled test error 24.03 before
  fine-tuning; after 15 epochs 10.35 against 19.62 for the same sigmoid AE from random init
  (10-NN accuracy of the codes 0.8447 against 0.7326);
- k-means (k = 10) of the 10,000 test images, NMI / purity: pixels 0.515 / 0.560, PCA-30
  0.514 / 0.560, the DBN's top-layer codes 0.549 / 0.537, the DBN-initialised AE's codes
  **0.585 / 0.598**, the random-init AE's 0.547 / 0.588: learnt codes cluster better than
  pixels and PCA by NMI (the DBN's raw codes not by purity).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Optional

import numpy as np

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import option, script  # noqa: E402
from jdl.runs.supervised import answer_help, start  # noqa: E402

PARTS = ("deep", "greedy", "codes2d", "denoise", "vae", "penalties", "conv", "dbn", "clustering")
NOISES = ("mask", "gaussian", "salt_pepper")


@dataclasses.dataclass
class AEFashionConfig:
    data_dir: Optional[str] = None  # IDX folder (else $JDL_FASHION_MNIST_DIR, Debian's)
    parts: tuple[str, ...] = option(PARTS, "the parts to run (comma-separated); a --resume may "
                                    "run other parts, which updates their figures",
                                    resumable=True)
    seed: int = 0                        # seed of the initialisation and the batches
    max_train_examples: Optional[int] = None   # training subset (smoke runs)
    max_test_examples: Optional[int] = None    # test subset (smoke runs)
    devices: Optional[int] = None               # data parallelism: None all local devices, or N
    # every training
    batch_size: int = 128                # examples per update
    learning_rate: float = 1e-3                 # Adam, cosine decay over each training
    schedule: str = "cosine"             # learning-rate schedule (jdl.optim.make_schedule)
    activation: str = "relu"                    # hidden layers (codes are linear)
    loss: str = "squared"                       # squared | cross_entropy (reconstruction)
    eval_each_epoch: bool = True                # test error per epoch, for the curves only
    # deep autoencoder, end to end
    deep_layers: tuple[int, ...] = (1000, 500, 250)  # the deep AE's encoder layers
    deep_code: int = 30                  # size of the deep autoencoder's code
    deep_epochs: int = 30                # epochs of the deep autoencoder
    # greedy stacked pretraining + fine-tuning of the same network
    greedy_epochs: int = 3                      # per layer
    finetune_epochs: int = 15            # epochs of the fine-tuning
    # 2-D codes
    codes2d_epochs: int = 10             # epochs of the 2-D code autoencoder
    knn_k: int = 10                      # k of the k-nearest-neighbour classifier on the codes
    precision_k: int = 10                # k of the retrieval precision@k
    scatter_points: int = 5000           # test points drawn in the 2-D code scatter plot
    # denoising vs plain
    denoise_layers: tuple[int, ...] = (500,)  # units of the denoising autoencoder's encoder layers
    denoise_code: int = 128              # size of the denoising autoencoder's code
    denoise_epochs: int = 10             # epochs of the denoising and the plain autoencoder
    noise: str = "mask"                         # mask | gaussian | salt_pepper
    noise_level: float = 0.3                    # p (mask, salt_pepper) or sigma (gaussian)
    # VAE
    vae_hidden: tuple[int, ...] = (400,)  # units of the VAE's hidden layers
    vae_latent: int = 20                 # size of the VAE's latent code
    vae_epochs: int = 15                 # epochs of the VAE
    vae_eval_samples: int = 10                  # Monte-Carlo samples of the test ELBO
    vae_iw_samples: int = 50                    # importance-weighted bound (0: skip)
    # plain, sparse and contractive one-layer sigmoid autoencoders 784-reg_code
    reg_code: int = 256                  # code size of the plain / sparse / contractive AEs
    reg_epochs: int = 10                 # epochs of each
    sparsity_target: float = 0.05        # rho of the sparse AE's KL(rho || rho_hat) penalty
    sparsity_weight: float = 0.1         # beta, its weight
    contractive_weight: float = 0.1      # lambda_c of the contractive AE's ||J_f(x)||_F^2
    # convolutional autoencoder (code size deep_code)
    conv_channels: tuple[int, ...] = (32, 64)  # 3x3 conv + 2x2 max pool per level
    conv_epochs: int = 10                # epochs of the convolutional autoencoder
    # DBN-initialised deep autoencoder (Hinton & Salakhutdinov 2006) against random init
    dbn_pretrain_epochs: int = 5         # CD-1 epochs per RBM (784-deep_layers-deep_code)
    dbn_pretrain_lr: float = 0.05        # SGD learning rate of the RBMs (cosine decay)
    dbn_pretrain_momentum: float = 0.5   # momentum of the RBMs
    dbn_pretrain_l2: float = 2e-4        # weight cost of the RBMs
    dbn_batch_size: int = 100            # batch size of the RBMs
    dbn_finetune_epochs: int = 15        # backprop epochs, DBN-initialised and random init
    # clustering of the test set's codes (k-means, k = 10) against the labels
    cluster_inits: int = 10              # k-means++ restarts of each k-means
    n_show: int = 10                            # images per row in the PNGs

    def validate(self) -> None:
        errs = []
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            errs.append(f"parts must be a non-empty subset of {PARTS}, got {self.parts}")
        if self.loss not in ("cross_entropy", "squared"):
            errs.append(f"loss must be cross_entropy or squared, got {self.loss!r}")
        if self.noise not in NOISES:
            errs.append(f"noise must be one of {NOISES}, got {self.noise!r}")
        for name in ("deep_epochs", "greedy_epochs", "finetune_epochs", "codes2d_epochs",
                     "denoise_epochs", "vae_epochs", "batch_size", "knn_k", "precision_k",
                     "deep_code", "denoise_code", "vae_latent", "vae_eval_samples", "reg_code",
                     "reg_epochs", "conv_epochs", "dbn_pretrain_epochs", "dbn_finetune_epochs",
                     "dbn_batch_size", "cluster_inits"):
            if getattr(self, name) <= 0:
                errs.append(f"{name} must be positive, got {getattr(self, name)}")
        if errs:
            raise ValueError("invalid configuration: " + "; ".join(errs))


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(AEFashionConfig, "ae_fashion", __doc__, checkpoints=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jdl.ae as ae  # noqa: E402
from jdl import optim  # noqa: E402
from jdl.runs import plots  # noqa: E402
from jdl.analysis import code_scores, fit_pca, summed_squared_error  # noqa: E402
from jdl.data import fashion_mnist  # noqa: E402
from jdl.nn.autoencoders import Autoencoder, VariationalAutoencoder  # noqa: E402
from jdl.nn.conv_autoencoder import ConvAutoencoder  # noqa: E402
from jdl.train import create_state, evaluate, fit, make_eval_step, make_train_step  # noqa: E402


# ------------------------------------------------------------------------------ helpers


def first_of_each_class(labels, n_classes: int = 10) -> np.ndarray:
    """Index of the first example of each class 0 .. n_classes - 1 present in ``labels``."""
    labels = np.asarray(labels)
    return np.array([int(np.flatnonzero(labels == c)[0]) for c in range(n_classes)
                     if np.any(labels == c)])


def acceptance(summary: dict) -> dict:
    """The issue's acceptance checks on the figures present in ``summary``: each an entry with
    its numbers and ``passed`` (None where a figure is missing)."""
    out = {}
    deep, pca = summary.get("deep_test_error"), summary.get("pca30_test_error")
    if deep is not None and pca is not None:
        out["deep_vs_pca30"] = {"deep_test_error": deep, "pca30_test_error": pca,
                                "ratio": deep / pca, "threshold": 0.75,
                                "passed": bool(deep <= 0.75 * pca)}
    a, p = summary.get("codes2d_ae_knn_accuracy"), summary.get("codes2d_pca2_knn_accuracy")
    if a is not None and p is not None:
        out["codes2d_knn"] = {"ae": a, "pca2": p, "gain_points": 100.0 * (a - p),
                              "threshold_points": 10.0,
                              "passed": bool(a >= p + 0.10 - 1e-12)}
    d, pl = summary.get("denoise_psnr_denoising_ae"), summary.get("denoise_psnr_plain_ae")
    if d is not None and pl is not None:
        out["denoising_psnr"] = {"denoising_ae": d, "plain_ae": pl, "passed": bool(d > pl)}
    elbo = summary.get("vae_test_elbo")
    if elbo is not None:
        out["vae_elbo_reported"] = {"test_elbo": elbo, "passed": bool(math.isfinite(elbo))}
    g, e = summary.get("greedy_finetuned_test_error"), summary.get("deep_test_error")
    if g is not None and e is not None:
        out["greedy_vs_end_to_end"] = {"greedy_finetuned": g, "end_to_end": e,
                                       "passed": bool(math.isfinite(g) and math.isfinite(e))}
    plain = summary.get("plain_ae_mean_activation")
    if plain is not None and summary.get("sparse_ae_mean_activation") is not None:
        sp, jp = summary["sparse_ae_mean_activation"], summary["plain_ae_jacobian_frobenius_sq"]
        jc = summary["contractive_ae_jacobian_frobenius_sq"]
        out["sparse_and_contractive"] = {
            "mean_activation_sparse": sp, "mean_activation_plain": plain,
            "jacobian_contractive": jc, "jacobian_plain": jp,
            "passed": bool(sp < plain and jc < jp)}
    d, r = summary.get("dbn_dbn_init_test_error"), summary.get("dbn_random_init_test_error")
    if d is not None and r is not None:
        out["dbn_init_vs_random"] = {"dbn_init": d, "random_init": r, "passed": bool(d < r)}
    base = {k[len("clustering_"):]: v["nmi"] for k, v in summary.items()
            if k.startswith("clustering_") and isinstance(v, dict)}
    learnt = {n: v for n, v in base.items() if n in ("deep AE", "DBN (pretrained)",
                                                     "DBN-init AE")}
    linear = [v for n, v in base.items() if n == "pixels" or n.startswith("PCA-")]
    if learnt and linear:
        out["clustering_nmi"] = {**{f"nmi {n}": v for n, v in base.items()},
                                 "passed": bool(min(learnt.values()) > max(linear))}
    return out


# ----------------------------------------------------------------------------- training


def load_data(cfg: AEFashionConfig):
    """(x_train, y_train, x_test, y_test): images flattened to (N, 784) float32 in [0, 1]."""
    def prep(split, limit):
        s = fashion_mnist.load(split, data_dir=cfg.data_dir)
        x = s.images.reshape(len(s.images), -1).astype(np.float32) / 255.0
        return (x[:limit], s.labels[:limit]) if limit else (x, s.labels)
    return (*prep("train", cfg.max_train_examples), *prep("test", cfg.max_test_examples))


def _init(model, x, rng):
    return jax.jit(model.init)(rng, jnp.asarray(x[:1]))["params"]


def train_model(cfg, model, x_train, x_test, epochs, workdir, rng, *, resume, progress,
                grad_fn, eval_fn, params=None, title=""):
    """Adam + cosine schedule, ``fit`` in ``workdir`` (resumable), test metrics per epoch."""
    steps = epochs * (len(x_train) // cfg.batch_size)
    tx = optim.adam(optim.make_schedule(cfg.schedule, cfg.learning_rate, total_steps=steps))
    k_init, k_run = jax.random.split(rng)
    if params is None:
        params = _init(model, x_train, k_init)
    state = create_state(params, tx, k_run)
    val = {"x": x_test} if cfg.eval_each_epoch else None
    result = fit(make_train_step(grad_fn, tx), state, {"x": x_train}, epochs=epochs,
                 batch_size=cfg.batch_size, eval_step=make_eval_step(eval_fn) if val else None,
                 val_data=val, seed=cfg.seed, workdir=workdir, resume=resume,
                 progress=progress, log_every=100, monitor="train_loss", devices=cfg.devices)
    if result.history:
        plots.plot_learning_curves(result.history, os.path.join(workdir, "learning_curves.png"),
                                   title)
    return result


def train_autoencoder(cfg, model, x_train, x_test, epochs, workdir, rng, *, resume, progress,
                      loss=None, corruption=None, params=None, title=""):
    loss = cfg.loss if loss is None else loss
    return train_model(cfg, model, x_train, x_test, epochs, workdir, rng, resume=resume,
                       progress=progress, params=params, title=title,
                       grad_fn=ae.autoencoder_grad_fn(model, loss, corruption=corruption),
                       eval_fn=ae.autoencoder_eval_fn(model, loss))


def _s_per_epoch(result, cfg, n_train: int) -> float | None:
    """Seconds per epoch of the steps this process ran (None if it ran none: resumed after
    the last epoch)."""
    if not result.samples_per_s:
        return None
    return (n_train // cfg.batch_size) * cfg.batch_size / result.samples_per_s


def deep_model(cfg, code: int) -> Autoencoder:
    return Autoencoder(encoder=tuple(cfg.deep_layers), code=code, activation=cfg.activation,
                       code_activation="linear", output_activation="sigmoid",
                       features=784)


def reconstruct(model, params, x):
    return np.asarray(ae.reconstruct_dataset(model, params, jnp.asarray(x), 1000))


def encode(model, params, x):
    return np.asarray(ae.encode_dataset(model, params, jnp.asarray(x), 1000))


# -------------------------------------------------------------------------------- parts


def part_deep(cfg, data, pca, workdir, key, resume, progress, shown, codes):
    x_train, y_train, x_test, y_test = data
    model = deep_model(cfg, cfg.deep_code)
    result = train_autoencoder(cfg, model, x_train, x_test, cfg.deep_epochs,
                               os.path.join(workdir, "deep"), jax.random.fold_in(key, 1),
                               resume=resume, progress=progress, title="deep AE, end to end")
    params = result.state.params
    rec = reconstruct(model, params, x_test)
    shown["deep AE"] = rec
    codes_tr, codes_te = encode(model, params, x_train), encode(model, params, x_test)
    codes["deep AE"] = codes_te
    ae_scores = code_scores(codes_tr, y_train, codes_te, y_test, cfg.knn_k, cfg.precision_k)
    pca_scores = code_scores(pca.encode(x_train, cfg.deep_code), y_train,
                             pca.encode(x_test, cfg.deep_code), y_test, cfg.knn_k,
                             cfg.precision_k)
    s = {"deep_test_error": summed_squared_error(x_test, rec),
         "deep_train_error": summed_squared_error(x_train, reconstruct(model, params, x_train)),
         "deep_s_per_epoch": _s_per_epoch(result, cfg, len(x_train)),
         "deep_num_params": int(sum(a.size for a in jax.tree.leaves(params)))}
    s.update({f"deep_codes_{k}": v for k, v in ae_scores.items()})
    s.update({f"pca{cfg.deep_code}_codes_{k}": v for k, v in pca_scores.items()})
    return s


def part_greedy(cfg, data, workdir, key, resume, progress, shown):
    x_train, _, x_test, _ = data
    sizes = tuple(cfg.deep_layers) + (cfg.deep_code,)
    k_layers = jax.random.fold_in(key, 2)
    models, initial = ae.init_layers(k_layers, x_train.shape[1], sizes,
                                     activation=cfg.activation, code_activation="linear",
                                     output_activation="sigmoid")
    h_train, h_test = jnp.asarray(x_train), jnp.asarray(x_test)
    layer_params, layer_errors, t0 = [], [], time.perf_counter()
    for k, (m, p0) in enumerate(zip(models, initial)):
        # the first layer reconstructs pixels (sigmoid output, the chosen loss); the others
        # reconstruct the codes of the layer below (hidden activation): squared error
        loss = cfg.loss if k == 0 else "squared"
        r = train_autoencoder(cfg, m, h_train, h_test, cfg.greedy_epochs,
                              os.path.join(workdir, "greedy", f"layer{k + 1}"),
                              jax.random.fold_in(k_layers, 100 + k), resume=resume,
                              progress=progress, loss=loss, params=p0,
                              title=f"greedy layer {k + 1}: {m.features}-{m.code}")
        layer_params.append(r.state.params)
        layer_errors.append(summed_squared_error(h_test, reconstruct(m, r.state.params,
                                                                     h_test)))
        if k + 1 < len(models):
            h_train = ae.encode_dataset(m, r.state.params, h_train, 1000)
            h_test = ae.encode_dataset(m, r.state.params, h_test, 1000)
    pretrain_s = time.perf_counter() - t0
    deep, deep_params = ae.assemble(models, layer_params)
    assert deep == deep_model(cfg, cfg.deep_code), (deep, deep_model(cfg, cfg.deep_code))
    pretrained_error = summed_squared_error(x_test, reconstruct(deep, deep_params, x_test))
    r = train_autoencoder(cfg, deep, x_train, x_test, cfg.finetune_epochs,
                          os.path.join(workdir, "greedy", "finetune"),
                          jax.random.fold_in(key, 3), resume=resume, progress=progress,
                          params=deep_params, title="deep AE, greedy pretraining + fine-tuning")
    rec = reconstruct(deep, r.state.params, x_test)
    shown["stacked + fine-tuned"] = rec
    return {"greedy_layer_test_errors": layer_errors,
            "greedy_pretrained_test_error": pretrained_error,
            "greedy_finetuned_test_error": summed_squared_error(x_test, rec),
            "greedy_pretrain_s": pretrain_s,
            "greedy_finetune_s_per_epoch": _s_per_epoch(r, cfg, len(x_train))}


def plot_codes2d(path, ae_codes, pca_codes, labels, titles, n_points, seed=0):
    import matplotlib
    idx = np.random.default_rng(seed).permutation(len(labels))[:n_points]
    fig = plots.figure(figsize=(13, 6))
    axes = fig.subplots(1, 2)
    cmap = matplotlib.colormaps["tab10"]
    for ax, codes, title in zip(axes, (ae_codes, pca_codes), titles):
        for c, name in enumerate(fashion_mnist.CLASS_NAMES):
            sel = idx[labels[idx] == c]
            ax.scatter(codes[sel, 0], codes[sel, 1], s=3, color=cmap(c), label=name,
                       alpha=0.6, rasterized=True)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(markerscale=4, fontsize=8, loc="best")
    plots.save(fig, path, dpi=110)


def part_codes2d(cfg, data, pca, workdir, key, resume, progress):
    x_train, y_train, x_test, y_test = data
    model = deep_model(cfg, 2)
    result = train_autoencoder(cfg, model, x_train, x_test, cfg.codes2d_epochs,
                               os.path.join(workdir, "codes2d"), jax.random.fold_in(key, 4),
                               resume=resume, progress=progress, title="2-D codes")
    params = result.state.params
    ae_tr, ae_te = encode(model, params, x_train), encode(model, params, x_test)
    pca_tr, pca_te = pca.encode(x_train, 2), pca.encode(x_test, 2)
    a = code_scores(ae_tr, y_train, ae_te, y_test, cfg.knn_k, cfg.precision_k)
    p = code_scores(pca_tr, y_train, pca_te, y_test, cfg.knn_k, cfg.precision_k)
    pk = f"precision_at_{cfg.precision_k}"
    plot_codes2d(os.path.join(workdir, "codes2d.png"), ae_te, pca_te, y_test,
                 [f"autoencoder 784-{'-'.join(map(str, cfg.deep_layers))}-2: "
                  f"{cfg.knn_k}-NN accuracy {a['knn_accuracy']:.3f}, P@{cfg.precision_k} "
                  f"{a[pk]:.3f}",
                  f"PCA-2: {cfg.knn_k}-NN accuracy {p['knn_accuracy']:.3f}, "
                  f"P@{cfg.precision_k} {p[pk]:.3f}"], cfg.scatter_points, cfg.seed)
    return {"codes2d_ae_knn_accuracy": a["knn_accuracy"],
            "codes2d_pca2_knn_accuracy": p["knn_accuracy"],
            f"codes2d_ae_{pk}": a[pk], f"codes2d_pca2_{pk}": p[pk],
            "codes2d_ae_test_error": summed_squared_error(x_test, reconstruct(model, params,
                                                                              x_test)),
            "codes2d_pca2_test_error": summed_squared_error(x_test, pca.reconstruct(x_test, 2)),
            "codes2d_s_per_epoch": _s_per_epoch(result, cfg, len(x_train))}


def part_denoise(cfg, data, workdir, key, resume, progress, show_idx):
    x_train, _, x_test, _ = data
    model = Autoencoder(encoder=tuple(cfg.denoise_layers), code=cfg.denoise_code,
                        activation=cfg.activation, code_activation="linear",
                        output_activation="sigmoid", features=784)
    corruption = ae.corruption.clipped((cfg.noise, cfg.noise_level))
    k = jax.random.fold_in(key, 5)
    init = _init(model, x_train, jax.random.fold_in(k, 0))      # the same start for both
    out, s = {}, {}
    for name, corr in (("plain", None), ("denoising", corruption)):
        r = train_autoencoder(cfg, model, x_train, x_test, cfg.denoise_epochs,
                              os.path.join(workdir, "denoise", name), jax.random.fold_in(k, 1),
                              resume=resume, progress=progress, corruption=corr, params=init,
                              title=f"{name} AE")
        out[name] = r.state.params
        s[f"denoise_{name}_s_per_epoch"] = _s_per_epoch(r, cfg, len(x_train))
    noisy = np.asarray(jax.jit(corruption)(jax.random.fold_in(k, 2), jnp.asarray(x_test)))
    s["denoise_noise"] = f"{cfg.noise} {cfg.noise_level}"
    s["denoise_psnr_corrupted"] = float(ae.psnr(x_test, noisy))
    if cfg.noise != "gaussian":                 # the formula's value (Gaussian: clipped)
        s["denoise_psnr_corrupted_expected"] = 10.0 * math.log10(
            1.0 / ae.corruption.expected_squared_error(x_test, (cfg.noise, cfg.noise_level)))
    rows = {"clean": x_test, "corrupted": noisy}
    for name, params in out.items():
        from_noisy = reconstruct(model, params, noisy)
        rows[f"{name} AE"] = from_noisy
        s[f"denoise_psnr_{name}_ae"] = float(ae.psnr(x_test, from_noisy))
        clean_rec = reconstruct(model, params, x_test)
        s[f"denoise_psnr_{name}_ae_clean_input"] = float(ae.psnr(x_test, clean_rec))
        s[f"denoise_{name}_test_error"] = summed_squared_error(x_test, clean_rec)
    grid = np.concatenate([v[show_idx] for v in rows.values()]).reshape(-1, 28, 28)
    plots.plot_image_grid(grid, os.path.join(workdir, "denoising.png"), cols=len(show_idx),
                          row_labels=list(rows),
                          title=f"{cfg.noise} noise {cfg.noise_level}: PSNR corrupted "
                                f"{s['denoise_psnr_corrupted']:.2f} dB, plain AE "
                                f"{s['denoise_psnr_plain_ae']:.2f} dB, denoising AE "
                                f"{s['denoise_psnr_denoising_ae']:.2f} dB")
    return s


def part_vae(cfg, data, workdir, key, resume, progress):
    x_train, _, x_test, _ = data
    model = VariationalAutoencoder(encoder=tuple(cfg.vae_hidden), latent=cfg.vae_latent,
                                   activation=cfg.activation, likelihood="bernoulli",
                                   features=784)
    k = jax.random.fold_in(key, 6)
    r = train_model(cfg, model, x_train, x_test, cfg.vae_epochs, os.path.join(workdir, "vae"),
                    jax.random.fold_in(k, 0), resume=resume, progress=progress,
                    grad_fn=ae.vae_grad_fn(model), eval_fn=ae.vae_eval_fn(model), title="VAE")
    params = r.state.params
    test = evaluate(make_eval_step(ae.vae_eval_fn(model, n_samples=cfg.vae_eval_samples,
                                                  seed=cfg.seed + 1)),
                    r.state, {"x": x_test}, 500)
    s = {"vae_test_elbo": test["elbo"], "vae_test_log_likelihood_term": test["log_likelihood"],
         "vae_test_kl": test["kl"], "vae_test_reconstruction_error_sampled":
         test["reconstruction_error"], "vae_elbo_samples": cfg.vae_eval_samples,
         "vae_s_per_epoch": _s_per_epoch(r, cfg, len(x_train))}
    if cfg.vae_iw_samples:
        bound = jax.jit(functools.partial(ae.importance_weighted_bound, model,
                                          n_samples=cfg.vae_iw_samples))
        kb = jax.random.fold_in(k, 1)
        values = [np.asarray(bound(params, x_test[i:i + 200], jax.random.fold_in(kb, i)))
                  for i in range(0, len(x_test), 200)]
        s[f"vae_test_iw_bound_{cfg.vae_iw_samples}"] = float(np.mean(np.concatenate(values)))
    mean_rec = np.asarray(jax.nn.sigmoid(jax.jit(lambda p, x: model.apply({"params": p}, x)[0])(
        params, jnp.asarray(x_test))))
    s["vae_test_error_at_posterior_mean"] = summed_squared_error(x_test, mean_rec)
    samples = np.asarray(ae.generate(model, params, jax.random.fold_in(k, 2), 100))
    plots.plot_image_grid(samples.reshape(-1, 28, 28), os.path.join(workdir, "vae_samples.png"),
                          cols=10, title=f"VAE 784-{'-'.join(map(str, cfg.vae_hidden))}-"
                                         f"{cfg.vae_latent}: E[x | z], z ~ N(0, I); test ELBO "
                                         f"{s['vae_test_elbo']:.1f} nats")
    return s


def _code_figures(prefix, cfg, model, params, data, codes, name):
    """Test error, k-NN accuracy and precision@k of a trained autoencoder's codes; its test
    codes go to ``codes[name]`` for the clustering part."""
    x_train, y_train, x_test, y_test = data
    tr, te = encode(model, params, x_train), encode(model, params, x_test)
    codes[name] = te
    s = {f"{prefix}_test_error": summed_squared_error(x_test, reconstruct(model, params, x_test))}
    s.update({f"{prefix}_codes_{k}": v for k, v in code_scores(
        tr, y_train, te, y_test, cfg.knn_k, cfg.precision_k).items()})
    return s


def part_penalties(cfg, data, workdir, key, resume, progress):
    """Plain, sparse (Ng's KL penalty) and contractive (Rifai et al. 2011's closed form)
    one-layer sigmoid autoencoders 784-reg_code-784 from one initialisation."""
    x_train, y_train, x_test, y_test = data
    model = Autoencoder(encoder=(), code=cfg.reg_code, activation="sigmoid",
                        code_activation="sigmoid", output_activation="sigmoid", features=784)
    k = jax.random.fold_in(key, 7)
    init = _init(model, x_train, jax.random.fold_in(k, 0))
    probe = jnp.asarray(x_test[:1000])
    s = {}
    for name, options in (("plain", {}),
                          ("sparse", {"sparsity": {"target": cfg.sparsity_target,
                                                   "weight": cfg.sparsity_weight}}),
                          ("contractive", {"contractive": cfg.contractive_weight})):
        r = train_model(cfg, model, x_train, x_test, cfg.reg_epochs,
                        os.path.join(workdir, "penalties", name), jax.random.fold_in(k, 1),
                        resume=resume, progress=progress, params=init, title=f"{name} AE",
                        grad_fn=ae.autoencoder_grad_fn(model, cfg.loss, **options),
                        eval_fn=ae.autoencoder_eval_fn(model, cfg.loss))
        p = r.state.params
        s.update(_code_figures(f"{name}_ae", cfg, model, p, data, {}, name))
        h = np.asarray(ae.encode_dataset(model, p, probe, 1000))
        s[f"{name}_ae_mean_activation"] = float(h.mean())
        s[f"{name}_ae_fraction_below_0.1"] = float(np.mean(h < 0.1))
        s[f"{name}_ae_jacobian_frobenius_sq"] = float(ae.sigmoid_contractive_penalty(
            p["encoder_0"]["kernel"], jnp.asarray(h)))
        s[f"{name}_ae_s_per_epoch"] = _s_per_epoch(r, cfg, len(x_train))
    return s


def part_conv(cfg, data, workdir, key, resume, progress, codes):
    """Convolutional autoencoder (jdl.nn.ConvAutoencoder) with a deep_code-unit linear code."""
    x_train, x_test = data[0], data[2]
    model = ConvAutoencoder(image_shape=(28, 28, 1), channels=tuple(cfg.conv_channels),
                            code=cfg.deep_code, activation=cfg.activation)
    r = train_autoencoder(cfg, model, x_train, x_test, cfg.conv_epochs,
                          os.path.join(workdir, "conv"), jax.random.fold_in(key, 8),
                          resume=resume, progress=progress, title="convolutional AE")
    s = _code_figures("conv", cfg, model, r.state.params, data, codes, "conv AE")
    s["conv_num_params"] = int(sum(a.size for a in jax.tree.leaves(r.state.params)))
    s["conv_s_per_epoch"] = _s_per_epoch(r, cfg, len(x_train))
    return s


def part_dbn(cfg, data, workdir, key, resume, progress, codes):
    """Hinton & Salakhutdinov 2006's route: a DBN 784-deep_layers-deep_code trained greedily
    with CD-1, unrolled into a deep sigmoid autoencoder (jdl.ae.from_dbn) and fine-tuned by
    backprop, against the same network from random init trained for the same epochs."""
    from jdl.rbm import dbn
    x_train, _, x_test, _ = data
    sizes = tuple(cfg.deep_layers) + (cfg.deep_code,)
    steps = cfg.dbn_pretrain_epochs * (len(x_train) // cfg.dbn_batch_size)
    tx = optim.sgd(optim.cosine(cfg.dbn_pretrain_lr, steps), cfg.dbn_pretrain_momentum,
                   l2=cfg.dbn_pretrain_l2)
    k = jax.random.fold_in(key, 9)
    t0 = time.perf_counter()
    stack = dbn.greedy_layerwise(x_train, sizes, k, epochs=cfg.dbn_pretrain_epochs,
                                 batch_size=cfg.dbn_batch_size, tx_factory=tx,
                                 progress=progress, seed=cfg.seed, resume=resume,
                                 workdir=os.path.join(workdir, "dbn", "pretrain"))
    s = {"dbn_pretrain_s": time.perf_counter() - t0}
    codes["DBN (pretrained)"] = np.asarray(jax.jit(dbn.propagate_up)(stack, x_test))
    model, params = ae.from_dbn(stack)
    s["dbn_pretrained_test_error"] = summed_squared_error(x_test,
                                                          reconstruct(model, params, x_test))
    for name, init in (("dbn_init", params), ("random_init", None)):
        r = train_autoencoder(cfg, model, x_train, x_test, cfg.dbn_finetune_epochs,
                              os.path.join(workdir, "dbn", name), jax.random.fold_in(k, 1),
                              resume=resume, progress=progress, params=init,
                              title=f"sigmoid deep AE, {name.replace('_', ' ')}")
        label = "DBN-init AE" if name == "dbn_init" else "random-init sigmoid AE"
        s.update(_code_figures(f"dbn_{name}", cfg, model, r.state.params, data, codes, label))
        s[f"dbn_{name}_s_per_epoch"] = _s_per_epoch(r, cfg, len(x_train))
    return s


def plot_clustering(path, names, nmi, pur, title):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names)), 4.5))
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, nmi, 0.4, label="NMI")
    ax.bar(xs + 0.2, pur, 0.4, label="purity")
    for x, a, b in zip(xs, nmi, pur):
        ax.text(x - 0.2, a + 0.01, f"{a:.3f}", ha="center", fontsize=7)
        ax.text(x + 0.2, b + 0.01, f"{b:.3f}", ha="center", fontsize=7)
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def part_clustering(cfg, data, pca, workdir, key, codes):
    """k-means (k = 10, k-means++ restarts) of the test images in pixel space, on PCA codes and
    on the learnt codes of the parts run before (``codes``), scored against the labels by NMI
    and purity (jdl.analysis)."""
    from jdl.analysis import kmeans, normalized_mutual_info, purity
    x_test, y_test = data[2], data[3]
    reps = {"pixels": x_test, f"PCA-{cfg.deep_code}": pca.encode(x_test, cfg.deep_code)}
    reps.update(codes)
    k = jax.random.fold_in(key, 10)
    s, names, nmis, purs = {}, [], [], []
    for i, (name, z) in enumerate(reps.items()):
        r = kmeans(np.asarray(z, np.float32), 10, jax.random.fold_in(k, i),
                   n_init=cfg.cluster_inits)
        a = np.asarray(r.assignments)
        nmi = float(normalized_mutual_info(y_test, a, 10, 10))
        pur = float(purity(y_test, a, 10, 10))
        s[f"clustering_{name}"] = {"dim": int(np.asarray(z).reshape(len(z), -1).shape[1]),
                                   "nmi": nmi, "purity": pur}
        names.append(f"{name} ({s[f'clustering_{name}']['dim']}-D)")
        nmis.append(nmi)
        purs.append(pur)
    plot_clustering(os.path.join(workdir, "clustering.png"), names, nmis, purs,
                    f"k-means (k = 10) of {len(x_test)} test images against the labels")
    return s


# ---------------------------------------------------------------------------------- run


def run(cfg: AEFashionConfig, workdir: str, resume: bool = False, progress: bool = True):
    cfg.validate()
    t_start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    summary = run_dir.RunDir(workdir).read_summary() or {}   # a run of some parts updates them
    data = load_data(cfg)
    x_train, y_train, x_test, y_test = data
    key = jax.random.PRNGKey(cfg.seed)
    show_idx = first_of_each_class(y_test)[:cfg.n_show]
    summary.update({"train_examples": len(x_train), "test_examples": len(x_test),
                    "devices": [str(d) for d in jax.devices()]})
    seconds = summary.setdefault("part_wall_s", {})

    t0 = time.perf_counter()
    pca = fit_pca(x_train)
    for n in sorted({2, cfg.deep_code}):
        summary[f"pca{n}_test_error"] = summed_squared_error(x_test, pca.reconstruct(x_test, n))
    seconds["pca"] = time.perf_counter() - t0

    shown, codes = {}, {}     # reconstructions to draw; test codes for the clustering part
    for part in PARTS:
        if part not in cfg.parts:
            continue
        t0 = time.perf_counter()
        if part == "deep":
            s = part_deep(cfg, data, pca, workdir, key, resume, progress, shown, codes)
        elif part == "greedy":
            s = part_greedy(cfg, data, workdir, key, resume, progress, shown)
        elif part == "codes2d":
            s = part_codes2d(cfg, data, pca, workdir, key, resume, progress)
        elif part == "denoise":
            s = part_denoise(cfg, data, workdir, key, resume, progress, show_idx)
        elif part == "vae":
            s = part_vae(cfg, data, workdir, key, resume, progress)
        elif part == "penalties":
            s = part_penalties(cfg, data, workdir, key, resume, progress)
        elif part == "conv":
            s = part_conv(cfg, data, workdir, key, resume, progress, codes)
        elif part == "dbn":
            s = part_dbn(cfg, data, workdir, key, resume, progress, codes)
        else:
            s = part_clustering(cfg, data, pca, workdir, key, codes)
        seconds[part] = time.perf_counter() - t0
        summary.pop("acceptance", None)
        # a resumed, already finished training measures no time: keep the earlier figure
        summary.update({k: v for k, v in s.items() if v is not None or k not in summary})
        print(f"[{part}] " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in s.items()), flush=True)
        summary["acceptance"] = acceptance(summary)
        write_part_summary(workdir, summary, resume)   # after each part: a killed run keeps it

    if shown:
        pca_name = f"PCA-{cfg.deep_code}"
        rows = {"test": x_test, **shown, pca_name: pca.reconstruct(x_test, cfg.deep_code)}
        grid = np.concatenate([np.asarray(v)[show_idx] for v in rows.values()])
        errs = ", ".join(f"{n} {summed_squared_error(x_test, v):.2f}"
                         for n, v in rows.items() if n != "test")
        plots.plot_image_grid(grid.reshape(-1, 28, 28),
                              os.path.join(workdir, "reconstructions.png"), cols=len(show_idx),
                              row_labels=list(rows),
                              title=f"test reconstructions, summed squared error per image: "
                                    f"{errs}")
    summary.pop("acceptance", None)
    summary["wall_time_s"] = time.perf_counter() - t_start
    summary["acceptance"] = acceptance(summary)
    return write_part_summary(workdir, summary, resume)


def write_part_summary(workdir: str, summary: dict, resume: bool) -> dict:
    """summary.json in jdl.runs.run_dir's schema: the test figures are those of each part's final
    model (``*_test_*`` keys); ``test`` holds the deep autoencoder's when it ran."""
    deep = {k[len("deep_"):]: v for k, v in summary.items()
            if k.startswith("deep_test") and isinstance(v, (int, float))}
    summary.update({"experiment": "ae_fashion", "test": deep or None,
                    "test_model": "final model of each part (keys *_test_*)",
                    "resumed": bool(resume)})
    summary.setdefault("wall_time_s", None)
    return run_dir.RunDir(workdir).write_summary(summary)


@script("ae_fashion", AEFashionConfig)
def main(argv=None):
    cfg, ns = start(AEFashionConfig, "ae_fashion", argv, __doc__)
    workdir = ns.workdir
    s = run(cfg, workdir, resume=ns.resume, progress=not ns.no_progress)
    for name, check in s["acceptance"].items():
        figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in check.items() if k != "passed")
        print(f"acceptance {name}: {'PASS' if check['passed'] else 'FAIL'} ({figures})")
    print(f"ae_fashion: wall {s['wall_time_s']:.0f} s | {workdir}")
    return s


if __name__ == "__main__":
    main()
