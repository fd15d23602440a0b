"""The lecture's Keras example with its own hyper-parameters: two conv 32 3x3 valid + ReLU,
max-pool 2, dropout 0.25, dense 128 sigmoid, dense 10 softmax; SGD lr 0.05, momentum 0.8,
batch 32, 2 epochs, the last 10% of the training set held out for validation (Keras'
validation_split), categorical cross-entropy.

    python experiments/keras_example.py [--workdir runs/keras_example]

Runtime on the 2-core dev machine: 196 s for the two epochs, compilation included (Keras 3 on
the same data: 213 s). Result: test accuracy 0.8915 with seed 0 (Keras 3: 0.8932); mean of
seeds 0-4 0.8913 (Keras 3: 0.8924; per seed in BUILD_NOTES.md).
The side-by-side against Keras 3: python benchmarks/keras_example_vs_keras.py
"""
import dataclasses

from jdl.runs.supervised import ExperimentConfig, main


@dataclasses.dataclass
class Config(ExperimentConfig):
    conv_depth: int = 32               # feature maps of each convolution
    kernel_size: int = 3               # convolution kernels are kernel_size x kernel_size
    pool_size: int = 2                 # max-pooling window
    drop_prob: float = 0.25            # dropout rate, in [0, 1)
    hidden_size: int = 128             # units of the dense hidden layer
    batch_size: int = 32
    epochs: int = 2
    learning_rate: float = 0.05
    momentum: float = 0.8
    schedule: str = "constant"
    val_split: str = "last"
    log_every: int = 200


def build_model(cfg: Config):
    from jdl.nn import KerasExample   # here, not at the top: --help answers without importing JAX
    return KerasExample(conv_depth=cfg.conv_depth, kernel_size=cfg.kernel_size,
                        pool_size=cfg.pool_size, drop_prob=cfg.drop_prob,
                        hidden_size=cfg.hidden_size)


if __name__ == "__main__":
    main(Config, build_model, "keras_example", description=__doc__)
