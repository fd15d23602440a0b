"""Quickstart: an MLP on Fashion-MNIST when it is installed, else on scikit-learn's 8x8 digits.

    python experiments/quickstart.py [--dataset digits] [--epochs 10] [--workdir runs/quickstart]

Runtime on the 2-core dev machine (warm env, whole process): digits 14 s; Fashion-MNIST 27 s.
Result (10 epochs): digits test accuracy 0.986; Fashion-MNIST 0.889.
"""
import dataclasses
from typing import Tuple

from jdl.runs.command_line import option
from jdl.runs.supervised import ACTIVATIONS, ExperimentConfig, main


@dataclasses.dataclass
class Config(ExperimentConfig):
    dataset: str = "auto"
    hidden: Tuple[int, ...] = option((256,), "sizes of the hidden layers", low=1)
    activation: str = option("relu", "activation of the hidden layers", choices=ACTIVATIONS)
    dropout_rate: float = option(0.1, "dropout rate of the hidden layers, in [0, 1)")
    batch_size: int = 64
    epochs: int = 10
    learning_rate: float = 0.05
    log_every: int = 50


def build_model(cfg: Config):
    from jdl.nn import MLP   # here, not at the top: --help answers without importing JAX
    return MLP(hidden=cfg.hidden, activation=cfg.activation, dropout_rate=cfg.dropout_rate)


if __name__ == "__main__":
    main(Config, build_model, "quickstart", description=__doc__)
