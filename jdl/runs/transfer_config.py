"""The transfer experiments' settings (experiments/transfer_fashion.py,
experiments/pose_regression.py), apart from jdl.runs.transfer so that a script's --help
imports no JAX."""
from __future__ import annotations

import dataclasses
from typing import Optional

from jdl.runs.command_line import option

ARMS = ("features", "head", "finetune", "scratch")


@dataclasses.dataclass
class TransferConfig:
    """Fields shared by the transfer experiments (each one a --flag)."""
    dataset: str = option("fashion_mnist", "fashion_mnist, or digits (8x8, for smoke runs)",
                          choices=("fashion_mnist", "digits"))
    data_dir: Optional[str] = None      # IDX folder (else $JDL_FASHION_MNIST_DIR, Debian's)
    source_classes: tuple[int, ...] = (0, 1, 2, 3, 4)  # classes the backbone is pretrained on
    features: tuple[int, ...] = (16, 32, 64)    # BNConvNet widths of the backbone
    cut_layer: str = "pool"             # the backbone's output (BNConvNet: global average pool)
    pretrain_epochs: int = option(1, "epochs of the source classifier's training", low=1)
    pretrain_lr: float = 2e-3           # its Adam learning rate (cosine decay)
    pretrain_batch_size: int = option(128, "its batch size", low=1)
    steps: int = option(150, "Adam updates of each transfer / scratch run", low=1)
    batch_size: int = option(32, "examples per update of the transfer runs", low=1)
    head_lr: float = 1e-2               # new head's Adam learning rate
    finetune_lr: float = 1e-3           # backbone's learning rate when fine-tuned
    scratch_lr: float = 2e-3            # every layer's learning rate from scratch
    backbone_train: bool = False        # fine-tuned backbone's batch norm in training mode
    seeds: int = option(3, "seeds 0..S-1: draws of the labelled examples", low=1)
    max_examples: Optional[int] = None  # cap every split (smoke runs)
    pretrained: Optional[str] = option(None, "workdir of a pretraining run to load instead of "
                                       "training (e.g. <workdir>/pretrain with --resume)",
                                       resumable=True)

    def validate(self) -> None:
        errs = []
        if self.dataset not in ("fashion_mnist", "digits"):
            errs.append(f"dataset must be 'fashion_mnist' or 'digits', got {self.dataset!r}")
        for name in ("pretrain_epochs", "pretrain_batch_size", "steps", "batch_size", "seeds"):
            if getattr(self, name) <= 0:
                errs.append(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("pretrain_lr", "head_lr", "finetune_lr", "scratch_lr"):
            if not getattr(self, name) > 0:
                errs.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_examples is not None and self.max_examples <= 0:
            errs.append(f"max_examples must be positive or None, got {self.max_examples}")
        if errs:
            raise ValueError("invalid configuration: " + "; ".join(errs))
