"""Optional dependencies: the packages only some of jdl needs, imported when first used.

jdl's own dependencies are jax, flax, optax, orbax-checkpoint, chex and numpy. Figures
(matplotlib), the digits data set and the logistic-regression probes (scikit-learn), progress
bars (tqdm) and TensorBoard events (tensorboardX) come with the ``experiments`` extra::

    pip install -e ".[experiments]"

:func:`require` imports one of them and, when it is missing, raises an ImportError that names
the module, what needs it and the extra to install.
"""
from __future__ import annotations

import importlib

EXTRA = {"matplotlib": "experiments", "sklearn": "experiments", "tqdm": "experiments",
         "tensorboardX": "experiments"}


def require(module: str, needed_for: str = ""):
    """``importlib.import_module(module)``, or an ImportError saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        extra = EXTRA.get(top, "experiments")
        what = f" (needed for {needed_for})" if needed_for else ""
        raise ImportError(f"{module} is not installed{what}; it comes with jdl's '{extra}' "
                          f"extra: pip install 'jdl[{extra}]' (or pip install -e \".[{extra}]\" "
                          f"in a checkout)") from e


class _NoBar:
    """What a disabled tqdm bar does (nothing), without tqdm."""

    def __init__(self, initial: int = 0):
        self.n = initial

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(*, disable: bool = False, initial: int = 0, **kw):
    """A ``tqdm.auto.tqdm(initial=initial, **kw)`` progress bar; a silent stand-in when
    ``disable`` (so that training without a terminal does not need tqdm)."""
    if disable:
        return _NoBar(initial)
    return require("tqdm.auto", "progress bars").tqdm(initial=initial, **kw)


def write_line(text: str, file) -> None:
    """Print ``text`` to ``file`` above any open tqdm bar (plain print without tqdm)."""
    import sys
    if "tqdm" in sys.modules:
        sys.modules["tqdm"].tqdm.write(text, file=file)
    else:
        print(text, file=file)
