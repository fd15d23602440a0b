"""Training objectives of autoencoders as grad_fns for ``jdl.train.make_train_step``:

    grad_fn(params, model_state, batch, rng) -> (grads, model_state, metrics),   batch {'x': ...}

each an objective ``(params, model_state, batch, rng) -> (J, (metrics, model_state))`` turned
into a grad_fn by jdl.train.objective_grad_fn (reverse mode, the one place jdl differentiates
an objective).

:func:`autoencoder_grad_fn` covers the lecture's variants of a deterministic autoencoder
(``jdl.nn.Autoencoder``) with one objective,

    J = L(g(f(x~)), x)                                   reconstruction (x~ = x, or corrupted)
        + beta  * P_sparse(f(x~))                        sparse AE
        + lambda_c * ||J_f(x)||_F^2                      contractive AE
        + lambda * sum_W ||W||_F^2                       weight decay (the lecture's cost)

averaged over the batch, with

- L: 'squared' sum_i (z_i - x_i)^2 (the lecture's loss) or 'cross_entropy' (from the output
  logits; sigmoid outputs only) -- jdl.ae.losses;
- corruption (denoising AE, Vincent et al. 2008): None, ('mask', p), ('gaussian', sigma),
  ('salt_pepper', p) or a callable(rng, x) -- jdl.ae.corruption; the clean x is the target;
- sparsity: None, a number w (L1 penalty w * mean sum_j |h_j|), ``dict(l1=w)`` (the same), or
  ``dict(target=rho, weight=beta)`` (Ng's KL(rho || rho_hat) on the batch's mean code, codes
  in (0, 1)) -- jdl.ae.sparse;
- contractive (Rifai et al. 2011): weight lambda_c of the encoder's Jacobian norm at the clean
  input, exact by JAX differentiation or, for a one-layer sigmoid encoder, Rifai's closed form
  (``contractive_mode``) -- jdl.ae.contractive;
- weight_decay: lambda of lambda * sum of the squared kernels (biases excluded; a tied kernel
  counts once) -- the lecture's "regularization cost lambda sum_ij W_ij^2".

Metrics: 'loss' (J), 'reconstruction_error' (sum_i (z_i - x_i)^2 per example, batch mean,
whatever the training loss), 'cross_entropy' (with that loss), and each penalty's unweighted
value: 'sparsity' (with 'mean_activation', the mean of rho_hat), 'contractive',
'weight_decay'.

:func:`vae_grad_fn` trains a ``jdl.nn.VariationalAutoencoder`` by maximising the ELBO
(Kingma & Welling 2014; jdl.ae.vae) with the reparameterisation trick; the step's rng draws the
noise. Matching eval_fns (masked means, for ``jdl.train.make_eval_step``):
:func:`autoencoder_eval_fn`, :func:`vae_eval_fn`.
"""
from __future__ import annotations

import numbers
from typing import Callable

import jax
import jax.numpy as jnp

from jdl.ae import contractive as cae
from jdl.ae import losses as ae_losses
from jdl.ae import sparse as sp
from jdl.ae.corruption import check_corruption, corrupt
from jdl.ae.vae import decoder_mean, elbo, reparameterize
from jdl.losses import _masked_mean
from jdl.train.objective import objective_grad_fn

SIGMOIDS = ("sigmoid", "logistic")
CONTRACTIVE_MODES = ("auto", "closed_form", "fwd", "rev")


def _float(x):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def parse_sparsity(sparsity) -> tuple[str, float, float | None] | None:
    """(kind, weight, target) from a sparsity option: None, w, dict(l1=w) or
    dict(target=rho, weight=beta)."""
    if sparsity is None:
        return None
    if isinstance(sparsity, numbers.Real):
        kind, weight, target = "l1", float(sparsity), None
    elif isinstance(sparsity, dict) and set(sparsity) == {"l1"}:
        kind, weight, target = "l1", float(sparsity["l1"]), None
    elif isinstance(sparsity, dict) and set(sparsity) == {"target", "weight"}:
        kind, weight, target = "kl", float(sparsity["weight"]), float(sparsity["target"])
        if not 0.0 < target < 1.0:
            raise ValueError(f"sparsity target must be in (0, 1), got {target}")
    else:
        raise ValueError(f"sparsity must be None, an L1 weight, dict(l1=w) or "
                         f"dict(target=rho, weight=beta); got {sparsity!r}")
    if weight < 0:
        raise ValueError(f"sparsity weight must be >= 0, got {weight}")
    return kind, weight, target


def sum_squared_kernels(params):
    """sum of W_ij^2 over every kernel (leaves of rank >= 2) of ``params``."""
    leaves = [jnp.sum(jnp.square(w)) for w in jax.tree.leaves(params) if jnp.ndim(w) >= 2]
    return sum(leaves) if leaves else jnp.zeros(())


def _one_layer_sigmoid(model) -> bool:
    """A one-layer sigmoid MLP encoder (jdl.nn.Autoencoder with encoder=()); other models
    (a ConvAutoencoder has no ``encoder`` sizes) are not."""
    encoder = getattr(model, "encoder", None)
    return (encoder is not None and len(tuple(encoder)) == 0
            and model.code_activation in SIGMOIDS)


def _check_loss_for_model(model, loss):
    ae_losses.check_loss(loss)
    if loss == "cross_entropy" and model.output_activation not in SIGMOIDS:
        raise ValueError("loss='cross_entropy' needs output_activation='sigmoid' (it is "
                         f"computed from the output logits); got {model.output_activation!r}")


def autoencoder_grad_fn(model, loss: str = "squared", corruption=None, sparsity=None,
                        contractive: float = 0.0, weight_decay: float = 0.0,
                        contractive_mode: str = "auto", x_key: str = "x") -> Callable:
    """grad_fn for a ``jdl.nn.Autoencoder`` (see the module docstring for the objective).

    ``contractive_mode``: 'closed_form' (Rifai's formula; one-layer sigmoid encoders only),
    'fwd' / 'rev' (exact Jacobian by jax.jacfwd / jax.jacrev), or 'auto' (the closed form
    where it applies, else the cheaper exact mode). The step's rng draws the corruption."""
    _check_loss_for_model(model, loss)
    check_corruption(corruption)
    sparse = parse_sparsity(sparsity)
    if contractive < 0 or weight_decay < 0:
        raise ValueError(f"penalty weights must be >= 0, got contractive={contractive}, "
                         f"weight_decay={weight_decay}")
    if contractive_mode not in CONTRACTIVE_MODES:
        raise ValueError(f"contractive_mode must be one of {CONTRACTIVE_MODES}, "
                         f"got {contractive_mode!r}")
    closed_form = contractive_mode == "closed_form" or (
        contractive_mode == "auto" and _one_layer_sigmoid(model))
    if closed_form and not _one_layer_sigmoid(model):
        raise ValueError("contractive_mode='closed_form' needs a one-layer sigmoid encoder "
                         "(encoder=(), code_activation='sigmoid')")
    jac_mode = "auto" if contractive_mode in ("auto", "closed_form") else contractive_mode
    use_logits = loss == "cross_entropy"

    def penalties(p, variables, x, code):
        """[(weight, unweighted value, its metrics)] of the sparse, contractive and weight-decay
        terms that apply."""
        terms = []
        if sparse is not None:
            kind, weight, target = sparse
            pen = sp.kl_sparsity(code, target) if kind == "kl" else sp.l1_sparsity(code)
            terms.append((weight, pen, {"sparsity": pen, "mean_activation": jnp.mean(code)}))
        if contractive > 0:
            if closed_form:
                h = code if corruption is None else model.apply(variables, x, method="encode")
                pen = cae.sigmoid_contractive_penalty(p["encoder_0"]["kernel"], h)
            else:
                pen = cae.contractive_penalty(
                    lambda xi: model.apply(variables, xi, method="encode"), x, mode=jac_mode)
            terms.append((contractive, pen, {"contractive": pen}))
        if weight_decay > 0:
            pen = sum_squared_kernels(p)
            terms.append((weight_decay, pen, {"weight_decay": pen}))
        return terms

    def objective(params, model_state, batch, rng):
        x = _float(batch[x_key])
        variables = {"params": params, **model_state}
        x_in = corrupt(rng, x, corruption) if corruption is not None else x
        out, code = model.apply(variables, x_in, logits=use_logits)
        if use_logits:
            rec = ae_losses.binary_cross_entropy(out, x)
            recon = jax.nn.sigmoid(out)
        else:
            rec = ae_losses.squared_error(out, x)
            recon = out
        metrics = {"reconstruction_error": ae_losses.squared_error(recon, x)}
        if use_logits:
            metrics["cross_entropy"] = rec
        total = rec
        for weight, pen, pen_metrics in penalties(params, variables, x, code):
            metrics.update(pen_metrics)
            total = total + weight * pen
        return total, (metrics, model_state)

    return objective_grad_fn(objective)


def autoencoder_eval_fn(model, loss: str = "squared", x_key: str = "x") -> Callable:
    """eval_fn(params, model_state, batch) -> masked means of 'loss' (the reconstruction loss,
    clean input, no penalties) and 'reconstruction_error' (summed squared error)."""
    _check_loss_for_model(model, loss)
    use_logits = loss == "cross_entropy"

    def eval_fn(params, model_state, batch):
        x = _float(batch[x_key])
        mask = batch.get("mask")
        out, _ = model.apply({"params": params, **model_state}, x, logits=use_logits)
        recon = jax.nn.sigmoid(out) if use_logits else out
        err = ae_losses.squared_error(recon, x, mask)
        rec = ae_losses.binary_cross_entropy(out, x, mask) if use_logits else err
        return {"loss": rec, "reconstruction_error": err}

    return eval_fn


def _vae_terms(model, variables, x, rng, n_samples, kl_weight):
    mu, log_var = model.apply(variables, x, method="encode")
    z = reparameterize(rng, mu, log_var, None if n_samples == 1 else n_samples)
    out = model.apply(variables, z, method="decode")
    objective, ll, kl = elbo(x, out, mu, log_var, model.likelihood, model.output_variance,
                             kl_weight)
    flat = jnp.reshape(x, (x.shape[0], -1))
    sq = jnp.sum(jnp.square(decoder_mean(out, model.likelihood) - flat), axis=-1)
    sq = jnp.reshape(sq, (-1, x.shape[0])).mean(axis=0)
    return objective, ll, kl, sq


def _check_vae_options(n_samples, kl_weight):
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if kl_weight < 0:
        raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")


def vae_grad_fn(model, n_samples: int = 1, kl_weight: float = 1.0,
                x_key: str = "x") -> Callable:
    """grad_fn for a ``jdl.nn.VariationalAutoencoder``: loss = -mean_x [E_q log p(x|z) -
    kl_weight * KL(q(z|x) || N(0, I))], the expectation estimated with ``n_samples``
    reparameterised codes per example drawn with the step's rng.

    Metrics: 'loss', 'elbo' (with weight 1), 'log_likelihood' (E_q log p(x|z)), 'kl',
    'reconstruction_error' (sum_i (E[x_i | z] - x_i)^2 per example)."""
    _check_vae_options(n_samples, kl_weight)
    n_samples = int(n_samples)

    def objective(params, model_state, batch, rng):
        x = _float(batch[x_key])
        variables = {"params": params, **model_state}
        obj, ll, kl, sq = _vae_terms(model, variables, x, rng, n_samples, kl_weight)
        metrics = {"elbo": jnp.mean(ll - kl), "log_likelihood": jnp.mean(ll),
                   "kl": jnp.mean(kl), "reconstruction_error": jnp.mean(sq)}
        return -jnp.mean(obj), (metrics, model_state)

    return objective_grad_fn(objective)


def vae_eval_fn(model, n_samples: int = 1, seed: int = 0, x_key: str = "x") -> Callable:
    """eval_fn for a VAE: masked means of 'loss' (-ELBO), 'elbo', 'log_likelihood', 'kl',
    'reconstruction_error', the noise drawn from the fixed key PRNGKey(seed) (an eval_fn takes
    no rng), so repeated evaluations agree."""
    _check_vae_options(n_samples, 1.0)
    n_samples = int(n_samples)

    def eval_fn(params, model_state, batch):
        x = _float(batch[x_key])
        mask = batch.get("mask")
        rng = jax.random.PRNGKey(seed)
        obj, ll, kl, sq = _vae_terms(model, {"params": params, **model_state}, x, rng,
                                     n_samples, 1.0)
        return {"loss": _masked_mean(-obj, mask), "elbo": _masked_mean(obj, mask),
                "log_likelihood": _masked_mean(ll, mask), "kl": _masked_mean(kl, mask),
                "reconstruction_error": _masked_mean(sq, mask)}

    return eval_fn
