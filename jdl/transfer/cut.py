"""Cutting a trained network at a named layer: the backbone and its features.

The lecture (transfer learning): "by removing last layer(s) ... one obtains a transformation of
any input image into a semi-abstract representation". For a network f = f_L o ... o f_1 whose
layers are named (contract C1: a model field ``output_layer`` and a method ``layer_names()``),
cutting after layer k gives the backbone

    h_k(x) = f_k o ... o f_1 (x),

``model.clone(output_layer=k)``, whose variables are the sub-tree of the full model's that
layers 1..k own (same names, same shapes). ``cut`` returns that module and that sub-tree;
``extract_features`` evaluates h_k in inference mode (batch norm with its running averages, no
dropout) over a data set in fixed-size jitted batches and returns the features as a numpy
array, flattened per example or globally pooled over the spatial positions, ready for a
linear classifier (e.g. scikit-learn's LogisticRegression), the lecture's "just using learnt
representation as features".
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jdl.transfer.subtree import iter_keys, ordered, select

POOLS = ("flatten", "avg", "max", None)


def layer_names(model) -> tuple[str, ...]:
    """The valid cut points of ``model`` in forward order (the last is its logits layer)."""
    names = getattr(model, "layer_names", None)
    if names is None or not hasattr(model, "output_layer"):
        raise TypeError(f"{type(model).__name__} cannot be cut: it needs an 'output_layer' field "
                        f"and a layer_names() method (contract C1 of jdl.nn's image models)")
    return tuple(names())


def variables_of(state) -> dict:
    """The Flax variables ``{'params': ..., **model_state}`` of a jdl TrainState (or of a
    variables dict, returned as a plain dict)."""
    if hasattr(state, "params") and hasattr(state, "model_state"):
        return {"params": state.params, **dict(state.model_state or {})}
    if isinstance(state, dict) or hasattr(state, "items"):
        if "params" not in state:
            raise ValueError(f"variables must hold a 'params' collection, got keys {sorted(state)}")
        return dict(state)
    raise TypeError(f"expected a TrainState or a variables dict, got {type(state).__name__}")


def variable_shapes(model, example_x) -> dict:
    """Shapes and dtypes (jax.ShapeDtypeStruct leaves) of ``model.init(rng, example_x)``'s
    variables, computed without allocating them (jax.eval_shape), as nested dicts in the order
    Flax creates them (forward order: the first layer first)."""
    x = jax.ShapeDtypeStruct(np.shape(example_x), getattr(example_x, "dtype", np.float32))
    paths = []

    def init(x):
        variables = model.init(jax.random.PRNGKey(0), x, train=False)
        paths.extend(keys for keys, _ in iter_keys(variables))
        return variables

    shapes = jax.eval_shape(init, x)
    return ordered(shapes, paths)


def cut(model, variables, layer: str, example_x) -> tuple:
    """``(backbone, backbone_variables)``: ``model`` cut right after ``layer``.

    ``backbone = model.clone(output_layer=layer)`` computes h_layer(x) (see the module
    docstring); ``backbone_variables`` is the sub-tree of ``variables`` (a variables dict, or a
    jdl TrainState) that the backbone creates on ``example_x`` (any batch, or a
    jax.ShapeDtypeStruct, of the model's input shape): the same arrays, not copies. Raises
    ValueError for a name not in ``layer_names(model)``, and for variables that lack a leaf
    of the backbone or hold it with another shape (naming the first such path)."""
    names = layer_names(model)
    if layer not in names:
        raise ValueError(f"layer must be one of {names} for {type(model).__name__}, got {layer!r}")
    backbone = model.clone(output_layer=layer)
    template = variable_shapes(backbone, example_x)
    return backbone, select(template, variables_of(variables),
                            f"variables of {type(model).__name__}")


def pool_features(h, pool: str | None = "flatten"):
    """Per-example features from a layer's activation h of shape (N, ...):

    - 'flatten': h.reshape(N, -1) (a convolutional map (N, H, W, C) in (h, w, c) order);
    - 'avg': global average pooling over the spatial axes, mean_{h,w} h[n, h, w, c] -> (N, C);
    - 'max': global max pooling, max_{h,w} h[n, h, w, c] -> (N, C);
    - None: h unchanged.

    For an activation of rank 2 (N, D), 'avg' and 'max' leave it unchanged."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if pool is None:
        return h
    if pool == "flatten":
        return h.reshape((h.shape[0], -1))
    axes = tuple(range(1, h.ndim - 1))
    if not axes:
        return h
    return jnp.mean(h, axis=axes) if pool == "avg" else jnp.max(h, axis=axes)


@partial(jax.jit, static_argnames=("backbone", "pool"))
def _features(backbone, variables, x, pool):
    return pool_features(backbone.apply(variables, x, train=False), pool)


def extract_features(backbone, variables, x, batch_size: int = 256,
                     pool: str | None = "flatten") -> np.ndarray:
    """Features ``pool_features(backbone(x), pool)`` of every example of ``x`` (N, ...), as a
    numpy array (N, D), computed in inference mode in jitted batches of ``batch_size`` (the
    last one zero-padded, so one compilation serves the whole data set)."""
    x = np.asarray(x)
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"x must hold at least one example, got shape {x.shape}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    variables = variables_of(variables)
    n, b = len(x), min(batch_size, len(x))
    out = []
    for start in range(0, n, b):
        chunk = x[start:start + b]
        k = len(chunk)
        if k < b:
            chunk = np.concatenate([chunk, np.zeros((b - k, *x.shape[1:]), x.dtype)])
        out.append(np.asarray(_features(backbone, variables, chunk, pool))[:k])
    return np.concatenate(out)
