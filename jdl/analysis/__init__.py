"""Analysis of trained networks: the loss surface's curvature (Hessian spectra, the index of
negative curvature, after Dauphin et al. 2014) and the quality of learnt codes as clusterings.

    lanczos      matrix-free Lanczos with full reorthogonalisation, Ritz values, Gauss quadrature
    hessian      Hessian-vector products of a loss over a params pytree, its extreme eigenvalues
                 and its spectral density by stochastic Lanczos quadrature, the index
    clustering   a clustering against class labels: contingency table, NMI, purity
    kmeans       k-means (Lloyd's iterations, k-means++ seeding)
    pca          principal component analysis (the linear baseline of autoencoders)
    codes        scores of learnt codes: summed squared error, k-NN accuracy, precision@k
"""
from jdl.analysis.clustering import contingency, normalized_mutual_info, purity
from jdl.analysis.codes import code_scores, summed_squared_error
from jdl.analysis.hessian import (HessianSpectrum, extreme_eigenvalues, flat_hvp,
                                  hessian_spectrum, hvp, index)
from jdl.analysis.kmeans import KMeansResult, kmeans, kmeans_plus_plus, lloyd
from jdl.analysis.lanczos import LanczosResult, lanczos, ritz
from jdl.analysis.pca import PCA, fit_pca

__all__ = ["contingency", "normalized_mutual_info", "purity", "HessianSpectrum",
           "extreme_eigenvalues", "flat_hvp", "hessian_spectrum", "hvp", "index",
           "LanczosResult", "lanczos", "ritz", "code_scores", "summed_squared_error",
           "KMeansResult", "kmeans", "kmeans_plus_plus", "lloyd", "PCA", "fit_pca"]
