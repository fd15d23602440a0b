"""Freezing re-used layers and fine-tuning them with their own learning rate.

Parameters are put in groups by their path (jdl.transfer.subtree: 'backbone/C1/kernel', ...)
with ``param_groups(params, rules)``: ``rules`` maps glob patterns (fnmatch: ``*`` matches any
characters, '/' included) to group labels, and a leaf takes the label of the FIRST pattern that
matches its path or one of its prefixes ('backbone' matches every leaf under 'backbone/').
``group_optimizer(transforms, rules)`` is ``optax.multi_transform``: group G's gradients go
through ``transforms[G]`` alone, with its own state, so for parameters W_G

    W_G(t+1) = W_G(t) + u_G(t),   u_G(t) = transforms[G](g_G(t), state_G, W_G(t))

e.g. ``{'frozen': frozen(), 'finetune': jdl.optim.sgd(1e-3, 0.9), 'head': jdl.optim.sgd(1e-2,
0.9, l2=1e-4)}``: re-used layers fine-tuned at a learning rate 10x smaller than the new head's,
momentum and weight decay per group (a group's weight decay and momentum never touch another
group's parameters).

Frozen parameters: ``frozen()`` returns the update -0.0 for every leaf. Adding -0.0 is the exact
identity of IEEE-754 arithmetic (w + (-0.0) = w for every w, +0.0 and -0.0 included, whereas
-0.0 + 0.0 = +0.0), so frozen parameters stay bit-identical whatever the other groups do.

Frozen batch statistics (running averages are model state, not parameters, so an optimiser
cannot freeze them). Two routes:

- ``TransferModel(..., backbone_train=False)``: the whole backbone runs in inference mode while
  training (batch norm normalises with its running averages and does not update them). Use it
  when the backbone is frozen, or fine-tuned on a small data set, as a whole.
- ``freeze_model_state(grad_fn, patterns)``: the returned grad_fn gives back the OLD value of
  every model-state leaf whose path matches (bit-identical), others as ``grad_fn`` computes
  them. The frozen layers still normalise with the statistics of each training batch (training
  mode); only their running averages, used at inference, stay those of the pretrained network.
  Use it to freeze some layers while others of the same backbone, batch norm included, are
  fine-tuned in training mode.
"""
from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from jdl.parallel.axis import BATCH_AXIS
from jdl.parallel.grad_fn import data_parallel_grad_fn
from jdl.transfer.subtree import join

FROZEN = "frozen"


def frozen() -> optax.GradientTransformation:
    """Updates of -0.0 for every leaf: w + (-0.0) == w bit for bit (see the module docstring)."""
    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: jnp.full_like(g, -0.0), updates), state

    return optax.GradientTransformation(init_fn, update_fn)


def matches(path: str, pattern: str) -> bool:
    """fnmatch of ``pattern`` against ``path`` or a prefix of it ending at a '/'."""
    return fnmatchcase(path, pattern) or fnmatchcase(path, pattern + "/*")


def _rules(rules) -> list[tuple[str, str]]:
    items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(s, str) for s in item)):
            raise TypeError(f"rules must map patterns (str) to labels (str), got {item!r}")
    return items


def label_of(path: str, rules, default: str | None = None) -> str | None:
    """The label of the first rule whose pattern matches ``path``, else ``default``."""
    for pattern, label in _rules(rules):
        if matches(path, pattern):
            return label
    return default


def param_groups(params, rules, default: str | None = None):
    """A pytree shaped like ``params`` whose leaves are group labels (see the module docstring).

    ``rules``: {pattern: label} (or a sequence of (pattern, label) pairs), tried in order.
    A leaf no pattern matches gets ``default``; with ``default=None`` it is an error that names
    the first such path. Works on arrays, tracers or shapes alike: only paths are read."""
    rules = _rules(rules)

    def label(kp, _):
        path = _keypath(kp)
        found = label_of(path, rules, default)
        if found is None:
            raise ValueError(f"parameter {path!r} matches none of the patterns "
                             f"{[p for p, _ in rules]} and no default label was given")
        return found

    return jax.tree_util.tree_map_with_path(label, params)


def _keypath(kp) -> str:
    return join(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in kp)


def group_optimizer(transforms: Mapping[str, optax.GradientTransformation], rules,
                    default: str | None = None) -> optax.GradientTransformation:
    """``optax.multi_transform(transforms, labels)`` with labels from ``param_groups(params,
    rules, default)``. The label 'frozen' maps to ``frozen()`` unless ``transforms`` gives one.
    Raises ValueError for a label of ``rules`` (or ``default``) that ``transforms`` lacks."""
    transforms = dict(transforms)
    labels = {label for _, label in _rules(rules)} | ({default} if default is not None else set())
    if FROZEN in labels and FROZEN not in transforms:
        transforms[FROZEN] = frozen()
    missing = sorted(labels - set(transforms))
    if missing:
        raise ValueError(f"transforms has no optimiser for the group(s) {missing}; it has "
                         f"{sorted(transforms)}")
    return optax.multi_transform(transforms, lambda params: param_groups(params, rules, default))


def freeze_model_state(grad_fn: Callable, patterns: str | Sequence[str] | Mapping[str, str],
                       axis_name: str | None = BATCH_AXIS) -> Callable:
    """A grad_fn that returns the old value of every frozen model-state leaf.

    ``patterns``: a pattern or a list of patterns, matched against the path of each leaf
    inside its collection (e.g. 'backbone/BatchNorm_0' matches
    batch_stats/backbone/BatchNorm_0/mean), or the ``rules`` of ``param_groups``, whose leaves
    labelled 'frozen' (first match wins) are frozen. The gradients and metrics are
    ``grad_fn``'s. ``grad_fn`` is first wrapped for data parallelism over ``axis_name``
    (jdl.parallel.data_parallel_grad_fn, as make_train_step does), so that the frozen leaves
    are restored after the device average and stay bit-identical under pmap too."""
    if isinstance(patterns, str):
        rules = [(patterns, FROZEN)]
    elif isinstance(patterns, Mapping):
        rules = _rules(patterns)
    else:
        rules = [(p, FROZEN) for p in patterns]
        _rules(rules)
    inner = data_parallel_grad_fn(grad_fn, axis_name) if axis_name is not None else grad_fn

    def wrapped(params, model_state, batch, rng):
        grads, new_state, metrics = inner(params, model_state, batch, rng)

        def keep(kp, new, old):
            path = _keypath(kp[1:])          # inside its collection
            return old if label_of(path, rules) == FROZEN else new

        new_state = jax.tree_util.tree_map_with_path(keep, dict(new_state), dict(model_state))
        return grads, new_state, metrics

    wrapped.data_parallel_axis = axis_name
    wrapped.__wrapped__ = grad_fn
    return wrapped
