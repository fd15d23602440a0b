"""Variables as trees of named leaves: the paths 'collection/layer/.../leaf' that transfer
learning cuts, copies and labels, and the checked selection of a sub-tree.

A Flax variables dict ``{'params': {...}, 'batch_stats': {...}}`` is a nested dict whose leaves
are arrays; a leaf's *path* is its keys joined by '/', e.g. ``params/backbone/C1/kernel``.
``select(template, tree)`` walks ``template`` in its own (insertion, i.e. forward) order and
takes, for every leaf, the leaf of ``tree`` at the same path, checking its shape: the result is
the sub-tree of ``tree`` that has ``template``'s structure, and the first path that is missing
or has another shape is named in the error.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import numpy as np


def join(keys) -> str:
    return "/".join(map(str, keys))


def iter_keys(tree, keys: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(keys, leaf) for every leaf of a nested mapping, depth first, in the mapping's order."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from iter_keys(v, keys + (k,))
    else:
        yield keys, tree


def iter_leaves(tree) -> Iterator[tuple[str, Any]]:
    """(path, leaf) for every leaf of a nested mapping, depth first, in the mapping's order."""
    for keys, leaf in iter_keys(tree):
        yield join(keys), leaf


def map_with_path(fn: Callable, tree, keys: tuple = ()):
    """The nested mapping ``tree`` (as plain dicts) with each leaf x replaced by fn(path, x)."""
    if isinstance(tree, Mapping):
        return {k: map_with_path(fn, v, keys + (k,)) for k, v in tree.items()}
    return fn(join(keys), tree)


def ordered(tree, key_paths) -> dict:
    """``tree`` rebuilt as nested dicts whose keys follow the order of ``key_paths`` (tuples of
    keys, e.g. the
    creation order of a Flax module's variables, which jax's sorted pytree flattening loses)."""
    out: dict = {}
    for keys in key_paths:
        src, dst = tree, out
        for k in keys[:-1]:
            src = src[k]
            dst = dst.setdefault(k, {})
        dst[keys[-1]] = src[keys[-1]]
    return out


def shape_of(x) -> tuple:
    return tuple(getattr(x, "shape", np.shape(x)))


def dtype_of(x) -> str:
    dt = getattr(x, "dtype", None)
    return str(np.dtype(dt)) if dt is not None else type(x).__name__


def select(template, tree, what: str = "variables", keys: tuple = ()):
    """The sub-tree of ``tree`` with ``template``'s structure: for every leaf of ``template``,
    in ``template``'s order, the leaf of ``tree`` at the same path (the same object, not a
    copy). Leaves of ``tree`` that ``template`` lacks are left out (``tree`` may be a
    super-tree, e.g. a full network's variables for a cut one). Raises ValueError naming the
    first path that ``tree`` lacks or holds with another shape."""
    if not isinstance(template, Mapping):
        if isinstance(tree, Mapping):
            raise ValueError(f"{what}: {join(keys)!r} is a sub-tree with keys "
                             f"{sorted(map(str, tree))}, expected an array of shape "
                             f"{shape_of(template)}")
        if shape_of(tree) != shape_of(template):
            raise ValueError(f"{what}: {join(keys)!r} has shape {shape_of(tree)}, expected "
                             f"{shape_of(template)}")
        return tree
    if not isinstance(tree, Mapping):
        raise ValueError(f"{what}: {join(keys) or 'the top level'!r} is {type(tree).__name__}, "
                         f"expected a sub-tree with keys {sorted(map(str, template))}")
    out = {}
    for k, t in template.items():
        if k not in tree:
            first_keys, first = next(iter_keys(t, keys + (k,)))
            raise ValueError(f"{what} has no {join(first_keys)!r} (expected shape "
                             f"{shape_of(first)}):"
                             f" at {join(keys) or 'the top level'} it has "
                             f"{sorted(map(str, tree))}")
        out[k] = select(t, tree[k], what, keys + (k,))
    return out
