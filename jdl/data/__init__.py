"""Data: IDX reader, Fashion-MNIST/MNIST, scikit-learn digits, normalisation, splits, batching,
class subsets and few-label samples, rotated images (a regression target)."""
from jdl.data import digits, fashion_mnist, rotation, sequences, text
from jdl.data.batching import batch_indices, epoch_permutation, num_batches, padded_batches
from jdl.data.fashion_mnist import DatasetNotFoundError, Split
from jdl.data.idx import IDXError, read_idx, write_idx
from jdl.data.normalize import Normalizer, binarize, fit_normalizer
from jdl.data.split import train_val_split
from jdl.data.subsets import class_subset, per_class_sample

__all__ = [
    "digits", "fashion_mnist", "rotation", "sequences", "text", "batch_indices", "epoch_permutation", "num_batches",
    "padded_batches", "DatasetNotFoundError", "Split", "IDXError", "read_idx", "write_idx",
    "Normalizer", "binarize", "fit_normalizer", "train_val_split", "class_subset",
    "per_class_sample",
]
