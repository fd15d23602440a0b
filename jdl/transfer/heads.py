"""A re-used backbone with a new output: the transfer model.

The lecture: re-use a trained network "by creating new convNet output and perform learning of
new output layers + fine-tuning of re-used layers", so that it "can be adapted to another task,
using only a SMALL training set", including regression outputs. ``TransferModel`` computes

    y = g(pool(h(x)))

with h a cut backbone (jdl.transfer.cut), ``pool`` one of 'flatten', 'avg', 'max' or None
(jdl.transfer.cut.pool_features) and g the new head: any linen module, e.g. ``nn.Dense(5)`` for
five new classes, ``nn.Dense(k)`` for a k-dimensional regression output (train it with the
'quadratic' loss), or ``jdl.nn.MLP(hidden=(64,), num_outputs=5)``. Its variables are
``{'params': {'backbone': ..., 'head': ...}, 'batch_stats': {'backbone': ...}, ...}``.

``backbone_train``: with True (the default) the backbone runs in the mode of the call
(``train=True`` while training: batch norm normalises with the batch's statistics and updates
its running averages, dropout is on); with False it always runs in inference mode: batch norm
normalises with its running averages and never changes them, dropout is off, so the backbone
computes during training exactly the function it computed when it was trained (the usual choice
when its layers are frozen or fine-tuned on a small data set). The head always follows ``train``.

``init_transfer`` initialises the transfer model and inserts the pretrained backbone variables
(checked leaf by leaf, the first missing or mis-shaped path named in the error); the head keeps
its fresh initialisation.
"""
from __future__ import annotations

import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl.train.state import create_state
from jdl.transfer.cut import POOLS, pool_features, variable_shapes, variables_of
from jdl.transfer.subtree import select


def _takes_train(module) -> bool:
    try:
        return "train" in inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        return False


class TransferModel(nn.Module):
    """y = head(pool(backbone(x))) (see the module docstring)."""
    backbone: Any                 # a linen module called as backbone(x, train=...)
    head: Any                     # a linen module called as head(z) or head(z, train=...)
    pool: str | None = None       # 'flatten', 'avg', 'max' or None
    backbone_train: bool = True   # False: the backbone always in inference mode

    def __post_init__(self):
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = self.backbone(x, train=train and self.backbone_train)
        z = pool_features(h, self.pool)
        return self.head(z, train=train) if _takes_train(self.head) else self.head(z)

    def features(self, x, train: bool = False):
        """pool(backbone(x)): the representation the head sees."""
        return pool_features(self.backbone(x, train=train and self.backbone_train), self.pool)


def init_transfer(model: TransferModel, rng, example_x, backbone_variables) -> dict:
    """Variables of ``model`` with the pretrained backbone inserted and a fresh head.

    ``model.init(rng, example_x, train=False)`` makes the head's variables (``rng`` draws its
    initial weights); every collection's 'backbone' sub-tree is then taken from
    ``backbone_variables`` (a variables dict, e.g. from ``cut``, ``load_backbone`` or
    jdl.transfer.torchvision, or a jdl TrainState; leaves the backbone does not create, such as
    the layers after the cut, are left out), converted to the dtype the backbone expects.
    Raises ValueError naming the first path that is missing or has another shape."""
    if not isinstance(model, TransferModel):
        raise TypeError(f"model must be a TransferModel, got {type(model).__name__}")
    init = jax.jit(lambda rng, x: model.init(rng, x, train=False))   # one compilation
    variables = {k: dict(v) for k, v in dict(init(rng, example_x)).items()}
    template = variable_shapes(model.backbone, example_x)
    given = select(template, variables_of(backbone_variables),
                   f"backbone variables for {type(model.backbone).__name__}")
    for col, tree in given.items():
        expected = variables[col]["backbone"]
        variables[col]["backbone"] = jax.tree.map(
            lambda v, e: jnp.asarray(v, dtype=e.dtype), tree, dict(expected))
    return variables


def split_variables(variables) -> tuple:
    """(params, model_state) of a variables dict, as jdl.train.create_state takes them."""
    variables = dict(variables_of(variables))
    return variables.pop("params"), variables


def transfer_state(model: TransferModel, tx, rng, example_x, backbone_variables):
    """A jdl TrainState for ``model``: ``init_transfer`` (the head drawn from a key split off
    ``rng``) and ``tx.init`` of its parameters, ready for jdl.train.make_train_step / fit."""
    init_rng, run_rng = jax.random.split(rng)
    params, model_state = split_variables(
        init_transfer(model, init_rng, example_x, backbone_variables))
    return create_state(params, tx, run_rng, model_state=model_state)
