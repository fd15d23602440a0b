"""The experiment scripts, for the tests that run them (smoke tests of a script's own main).

The scripts are not part of the installed package (experiments/ is a folder of commands):
:func:`load` imports one by its file path as the module ``experiments.<name>``, without
touching sys.path; :data:`ENV` is the environment in which ``python experiments/<name>.py``
finds jdl from this checkout whether or not it is installed.
"""
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ,
       "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}


def load(name: str):
    """experiments/<name>.py as a module (loaded once, then taken from sys.modules)."""
    qualified = f"experiments.{name}"
    if qualified not in sys.modules:
        path = os.path.join(ROOT, "experiments", f"{name}.py")
        spec = importlib.util.spec_from_file_location(qualified, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module   # dataclasses and typing.get_type_hints look it up
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[qualified]
            raise
    return sys.modules[qualified]
