"""Compiling a train step once: per process (the same step object reuses its jit) and across
processes (JAX's persistent compilation cache on disk, for experiments: a re-run or a resume
loads the compiled program instead of compiling it again).

In one process, ``jit_once(fn, tag, make)`` returns the same ``make(fn)`` (a ``jax.jit``) for
the same ``(fn, tag)``, so JAX's own caches (trace, lowering, executable: keyed on that jit
object and the argument shapes) serve a second ``fit`` of the same step: no retrace, no
recompilation. A step is "the same" when it is the same Python object: callers that rebuild
their step each call (``jdl.rbm.train_rbm``) memoise it on what it is made of (model,
optimiser, options). The cache keeps the ``CAPACITY`` most recently used entries.

Across processes, :func:`enable_compilation_cache` points JAX at a directory where every
compiled program that took at least ``min_compile_time_s`` to compile is stored, keyed on its
HLO, the compile options, the backend and the JAX version (JAX's own key). Experiments call it
from their command line (``--compilation-cache`` on by default, ``--no-compilation-cache``).
The cache is trusted code: keep it in a directory only you can write.
"""
from __future__ import annotations

import collections
import os
from typing import Callable, Hashable

CAPACITY = 32
_JITS: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()
ENV_DIR = "JDL_COMPILATION_CACHE_DIR"


def jit_once(fn: Callable, tag: Hashable, make: Callable[[Callable], Callable]) -> Callable:
    """``make(fn)`` (typically a ``jax.jit`` around ``fn``), built once per ``(fn, tag)`` in
    this process and reused afterwards (least recently used beyond ``CAPACITY`` dropped)."""
    key = (fn, tag)
    try:
        hit = _JITS.pop(key)
    except TypeError:           # an unhashable fn: nothing to reuse
        return make(fn)
    except KeyError:
        hit = make(fn)
    _JITS[key] = hit
    while len(_JITS) > CAPACITY:
        _JITS.popitem(last=False)
    return hit


def memoize(factory: Callable, *args, **kwargs):
    """``factory(*args, **kwargs)``, the same object for equal hashable arguments (kept in
    :func:`jit_once`'s cache); unhashable arguments build a fresh one."""
    key = (args, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:
        return factory(*args, **kwargs)
    return jit_once(factory, key, lambda f: f(*args, **kwargs))


def default_cache_dir() -> str:
    """$JDL_COMPILATION_CACHE_DIR, else ~/.cache/jdl/xla."""
    return os.environ.get(ENV_DIR) or os.path.join(os.path.expanduser("~"), ".cache", "jdl",
                                                   "xla")


def enable_compilation_cache(directory: str | None = None,
                             min_compile_time_s: float = 1.0) -> str:
    """Store and look up compiled programs in ``directory`` (default :func:`default_cache_dir`)
    from now on in this process; programs that compiled in less than ``min_compile_time_s``
    are not stored. Returns the directory. Call it before the first compilation you want
    cached (JAX's cache state is reset here, so earlier compilations do not disable it)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    directory = os.path.abspath(directory or default_cache_dir())
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    cc.reset_cache()
    return directory


def disable_compilation_cache() -> None:
    """Stop using the persistent compilation cache in this process."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    jax.config.update("jax_compilation_cache_dir", None)
    cc.reset_cache()


__all__ = ["CAPACITY", "ENV_DIR", "default_cache_dir", "disable_compilation_cache",
           "enable_compilation_cache", "jit_once", "memoize"]
