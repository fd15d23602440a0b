"""Data: IDX reader, Fashion-MNIST/MNIST, scikit-learn digits, normalisation, splits, batching,
augmentation (random crops with padding, horizontal flips)."""
from jdl.data import digits, fashion_mnist, sequences, text
from jdl.data.batching import batch_indices, epoch_permutation, num_batches, padded_batches
from jdl.data.fashion_mnist import DatasetNotFoundError, Split
from jdl.data.idx import IDXError, read_idx, write_idx
from jdl.data.normalize import Normalizer, binarize, fit_normalizer
from jdl.data.split import train_val_split

__all__ = [
    "augment", "digits", "fashion_mnist", "sequences", "text", "batch_indices",
    "epoch_permutation", "num_batches",
    "padded_batches", "DatasetNotFoundError", "Split", "IDXError", "read_idx", "write_idx",
    "Normalizer", "binarize", "fit_normalizer", "train_val_split",
]


def __getattr__(name):
    """Submodules that import JAX load on first use (``jdl.data.augment``), so that a script's
    --help, which imports jdl.data, does not start JAX."""
    if name in ("augment",):
        import importlib
        return importlib.import_module(f"jdl.data.{name}")
    raise AttributeError(f"module 'jdl.data' has no attribute {name!r}")
