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
    backbone: str = option("resnet", "the network: a ResNet (basic blocks, 'cifar' stem) or "
                           "BNConvNet (conv + batch norm + ReLU + max-pool blocks)",
                           choices=("resnet", "bnconvnet"))
    features: tuple[int, ...] = (16, 32, 64)    # BNConvNet widths of the backbone
    stage_sizes: tuple[int, ...] = option((2, 2, 2), "ResNet blocks per stage", low=1)
    num_filters: int = option(16, "ResNet filters of the first stage", low=1)
    cut_layer: str = "pool"             # the backbone's output (global average pool)
    pretrain_epochs: int = option(8, "epochs of the source classifier's training", low=1)
    pretrain_optimizer: str = option("sgd", "the source classifier's optimiser: SGD with "
                                     "Nesterov momentum 0.9 and L2 2.5e-4, or Adam",
                                     choices=("sgd", "adam"))
    pretrain_lr: float = 0.1            # its learning rate (cosine decay)
    augment_pad: int = option(2, "random-crop padding (pixels) of every training image, "
                              "pretraining and transfer alike (0: no crops)", low=0)
    augment_flip: bool = option(True, "random horizontal flips of every training image")
    pretrain_batch_size: int = option(128, "its batch size", low=1)
    steps: int = option(300, "Adam updates of each transfer / scratch run", low=1)
    batch_size: int = option(32, "examples per update of the transfer runs", low=1)
    head_lr: float = 3e-3               # new head's Adam learning rate
    finetune_lr: float = 1e-3           # backbone's learning rate when fine-tuned
    scratch_lr: float = 5e-3            # every layer's learning rate from scratch
    backbone_train: bool = True        # fine-tuned backbone's batch norm in training mode
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
        if self.backbone not in ("resnet", "bnconvnet"):
            errs.append(f"backbone must be 'resnet' or 'bnconvnet', got {self.backbone!r}")
        if self.pretrain_optimizer not in ("sgd", "adam"):
            errs.append(f"pretrain_optimizer must be 'sgd' or 'adam', got "
                        f"{self.pretrain_optimizer!r}")
        for name in ("pretrain_lr", "head_lr", "finetune_lr", "scratch_lr"):
            if not getattr(self, name) > 0:
                errs.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_examples is not None and self.max_examples <= 0:
            errs.append(f"max_examples must be positive or None, got {self.max_examples}")
        if errs:
            raise ValueError("invalid configuration: " + "; ".join(errs))
