"""Autoencoders (the lecture's "Autoencoders": learn W and W' to minimise sum_k ||z_k - x_k||^2,
with its variants, deep stacked autoencoders and their uses), as pure functions and grad_fns
for jdl.train. The models are ``jdl.nn.autoencoders.Autoencoder`` and
``VariationalAutoencoder``.

    corruption   masking noise (Vincent et al. 2008), Gaussian and salt-and-pepper noise
    losses       reconstruction losses: summed squared error, binary cross-entropy (logits)
    sparse       Ng's KL(rho || rho_hat) sparsity penalty, L1 on the code
    contractive  ||J_f(x)||_F^2, exact (jacfwd/jacrev) and closed form for a sigmoid layer
                 (Rifai et al. 2011)
    vae          ELBO, Gaussian KL, reparameterisation, importance-weighted bound, generation
                 (Kingma & Welling 2014; Burda et al. 2016)
    objective    autoencoder_grad_fn (plain, denoising, sparse, contractive, weight decay)
                 and vae_grad_fn, with their eval_fns
    stacked      greedy layer-wise training of stacked autoencoders (Bengio et al. 2007),
                 assembly into one deep autoencoder, initialisation from a DBN (Hinton &
                 Salakhutdinov 2006)
    code_space   using the codes: compression, retrieval (precision@k), k-NN classification
                 in code space, PSNR
"""
from jdl.ae import code_space, contractive, corruption, losses, objective, sparse, stacked, vae
from jdl.ae.contractive import (contractive_penalty, jacobian_frobenius_sq,
                                sigmoid_contractive_penalty)
from jdl.ae.corruption import corrupt, gaussian_noise, masking_noise, salt_and_pepper
from jdl.ae.losses import (binary_cross_entropy, binary_cross_entropy_per_example,
                           squared_error, squared_error_per_example)
from jdl.ae.objective import (autoencoder_eval_fn, autoencoder_grad_fn, sum_squared_kernels,
                              vae_eval_fn, vae_grad_fn)
from jdl.ae.sparse import kl_divergence_bernoulli, kl_sparsity, l1_sparsity, mean_activation
from jdl.ae.stacked import (StackedAutoencoders, assemble, from_dbn, greedy_layerwise,
                            init_layers, layer_models)
from jdl.ae.code_space import (compression_ratio, encode_dataset, knn_accuracy, knn_classify,
                         nearest_neighbors, precision_at_k, psnr, reconstruct_dataset,
                         reconstruction_error, squared_distances)
from jdl.ae.vae import (elbo, gaussian_kl, generate, importance_weighted_bound,
                        log_likelihood, reparameterize)

__all__ = [
    "code_space", "contractive", "corruption", "losses", "objective", "sparse", "stacked", "vae",
    "contractive_penalty", "jacobian_frobenius_sq", "sigmoid_contractive_penalty", "corrupt",
    "gaussian_noise", "masking_noise", "salt_and_pepper", "binary_cross_entropy",
    "binary_cross_entropy_per_example", "squared_error", "squared_error_per_example",
    "autoencoder_eval_fn", "autoencoder_grad_fn", "sum_squared_kernels", "vae_eval_fn",
    "vae_grad_fn", "kl_divergence_bernoulli", "kl_sparsity", "l1_sparsity", "mean_activation",
    "StackedAutoencoders", "assemble", "from_dbn", "greedy_layerwise", "init_layers",
    "layer_models", "compression_ratio", "encode_dataset", "knn_accuracy", "knn_classify",
    "nearest_neighbors", "precision_at_k", "psnr", "reconstruct_dataset",
    "reconstruction_error", "squared_distances", "elbo", "gaussian_kl", "generate",
    "importance_weighted_bound", "log_likelihood", "reparameterize",
]
