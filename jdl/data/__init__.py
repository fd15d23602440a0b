"""Data: IDX reader, Fashion-MNIST/MNIST, scikit-learn digits, normalisation, splits, batching,
augmentation (random crops with padding, horizontal flips), class subsets and few-label samples,
rotated images (a regression target)."""
from jdl.data import digits, fashion_mnist, sequences, text
from jdl.data.batching import batch_indices, epoch_permutation, num_batches, padded_batches
from jdl.data.fashion_mnist import DatasetNotFoundError, Split
from jdl.data.idx import IDXError, read_idx, write_idx
from jdl.data.normalize import Normalizer, binarize, fit_normalizer
from jdl.data.split import train_val_split
from jdl.data.subsets import class_subset, per_class_sample

__all__ = [
    "augment", "digits", "fashion_mnist", "rotation", "sequences", "text", "batch_indices",
    "epoch_permutation", "num_batches",
    "padded_batches", "DatasetNotFoundError", "Split", "IDXError", "read_idx", "write_idx",
    "Normalizer", "binarize", "fit_normalizer", "train_val_split", "class_subset",
    "per_class_sample",
]

_LAZY = ("augment", "rotation")   # submodules that import JAX


def __getattr__(name):
    """Submodules that import JAX (``jdl.data.augment``, ``jdl.data.rotation``) load on first
    use, so that a script's --help, which imports jdl.data, does not start JAX."""
    if name in _LAZY:
        import importlib
        return importlib.import_module(f"jdl.data.{name}")
    raise AttributeError(f"module 'jdl.data' has no attribute {name!r}")
