"""LeNet-5 (LeCun et al. 1998) on Fashion-MNIST, SGD + momentum, cosine-decayed rate.

    python experiments/lenet_fashion.py [--workdir runs/lenet_fashion] [--activation relu --pool max]

Runtime on the 2-core dev machine: TBD. Result: test accuracy TBD (target >= 0.905).
"""
import dataclasses

from jdl.experiment import ExperimentConfig, main
from jdl.nn import LeNet5


@dataclasses.dataclass
class Config(ExperimentConfig):
    activation: str = "tanh"
    pool: str = "avg"
    batch_size: int = 64
    epochs: int = 30
    learning_rate: float = 0.05
    momentum: float = 0.9
    schedule: str = "cosine"


def build_model(cfg: Config):
    return LeNet5(activation=cfg.activation, pool=cfg.pool)


if __name__ == "__main__":
    main(Config, build_model, "lenet_fashion", description=__doc__)
