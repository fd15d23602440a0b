"""MLP on Fashion-MNIST: 784-1024-1024-10, ReLU, dropout, SGD + momentum, cosine-decayed rate.

    python experiments/mlp_fashion.py [--workdir runs/mlp_fashion] [--epochs 40] [--resume]

Runtime on the 2-core dev machine: 16 min for 40 epochs (949 s, sharing the cores with another
run; compile 10.8 s). Result: test accuracy 0.9031 (target >= 0.895; the Fashion-MNIST
benchmark's MLPs score 0.883-0.900).
"""
import dataclasses
from typing import Tuple

from jdl.runs.command_line import option
from jdl.runs.supervised import ACTIVATIONS, ExperimentConfig, main


@dataclasses.dataclass
class Config(ExperimentConfig):
    hidden: Tuple[int, ...] = option((1024, 1024), "sizes of the hidden layers", low=1)
    activation: str = option("relu", "activation of the hidden layers", choices=ACTIVATIONS)
    dropout_rate: float = option(0.3, "dropout rate of the hidden layers, in [0, 1)")
    batch_size: int = 128
    epochs: int = 40
    learning_rate: float = 0.05
    momentum: float = 0.9
    schedule: str = "cosine"
    l2: float = 0.0


def build_model(cfg: Config):
    from jdl.nn import MLP   # here, not at the top: --help answers without importing JAX
    return MLP(hidden=cfg.hidden, activation=cfg.activation, dropout_rate=cfg.dropout_rate)


if __name__ == "__main__":
    main(Config, build_model, "mlp_fashion", description=__doc__)
