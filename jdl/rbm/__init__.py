"""Restricted Boltzmann machines as pure functions over a params pytree
``{'W': (n_visible, n_hidden), 'b': (n_visible,), 'c': (n_hidden,)}``.

    energy               E(v, h), F(v), initialisation (Bernoulli or Gaussian visible units)
    conditionals         p(h | v), p(v | h) and sampling from them
    gibbs                block Gibbs steps and chains (lax.scan), clamped input completion
    contrastive_divergence
                         CD-k (Hinton 2002) and persistent CD (Tieleman 2008) as grad_fns for
                         jdl.train.make_train_step
    likelihood           exact log Z and log p(v), AIS (Salakhutdinov & Murray 2008),
                         pseudo-likelihood (Besag 1975)
    inference            completion, generation, classification by free energy,
                         reconstruction error, hidden units' weights as images
    training             train_rbm: one RBM by CD-k / PCD-k with the common step and fit loop;
                         rbm_eval_fn: held-out reconstruction error and free energy
    dbn                  deep belief networks: greedy layer-wise training (Hinton, Osindero &
                         Teh 2006), up/down passes, conversion to a jdl MLP for fine-tuning
"""
from jdl.rbm import dbn, inference
from jdl.rbm.conditionals import (bernoulli, p_h_given_v, p_v_given_h, sample_h, sample_v,
                                  sample_visible_from_mean)
from jdl.rbm.contrastive_divergence import contrastive_divergence, example_keys, init_chains
from jdl.rbm.energy import (VISIBLE_UNITS, base_rate_bias, energy, free_energy,
                            free_energy_from_input, hidden_free_energy, hidden_input,
                            init_params, layer_sizes, visible_input)
from jdl.rbm.gibbs import gibbs_chain, gibbs_samples, gibbs_step
from jdl.rbm.training import flatten_examples, rbm_eval_fn, rbm_train_setup, train_rbm
from jdl.rbm.likelihood import (AISEstimate, ais_log_partition, ais_schedule,
                                ais_log_likelihood, exact_pseudo_log_likelihood,
                                log_likelihood, log_partition, pseudo_log_likelihood)

__all__ = ["dbn", "inference", "bernoulli", "p_h_given_v", "p_v_given_h", "sample_h", "sample_v",
           "sample_visible_from_mean", "contrastive_divergence", "example_keys", "init_chains",
           "VISIBLE_UNITS", "base_rate_bias", "energy", "free_energy",
           "free_energy_from_input", "hidden_free_energy",
           "hidden_input", "init_params", "layer_sizes", "visible_input", "gibbs_chain",
           "gibbs_samples", "gibbs_step", "flatten_examples", "rbm_eval_fn",
           "rbm_train_setup", "train_rbm", "AISEstimate",
           "ais_log_partition", "ais_log_likelihood", "ais_schedule",
           "exact_pseudo_log_likelihood", "log_likelihood", "log_partition",
           "pseudo_log_likelihood"]
