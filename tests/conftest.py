import os

os.environ.setdefault("XLA_FLAGS", "")  # multi-device tests set their own in a subprocess
# scripts/test.sh runs two pytest-xdist workers: on a GPU, neither may take 75% of its memory
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# One persistent compilation cache for the whole session, fresh each session and removed at
# its end: the programs the tests compile again (a worker subprocess training what the test
# trained in-process, the three runs of a kill-and-resume check, a parametrised test's
# repeats, another jit of the same step) load from it instead of compiling (test_train.py:
# 104 s -> 85 s). JAX reads these variables at start-up, and subprocesses and pytest-xdist
# workers inherit them. Experiments run in-process (--compilation-cache) use the same
# directory, out of ~/.cache.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
if "JDL_COMPILATION_CACHE_DIR" not in os.environ:
    _session_cache = tempfile.mkdtemp(prefix="jdl-test-xla-cache-")
    os.environ["JDL_COMPILATION_CACHE_DIR"] = _session_cache
    atexit.register(shutil.rmtree, _session_cache, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["JDL_COMPILATION_CACHE_DIR"])
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import sys  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Strict dtype promotion and rank promotion for the whole suite (as equinox's suite runs): an
# implicit float32 + float64 or int + float mix, or a silent broadcast between arrays of
# different rank, raises instead of passing unnoticed. Set here once, switched on with
# JDL_STRICT_PROMOTION=1 until the library passes under it (jdl.rbm does; optax.adam, the
# bias adds of jdl.nn's Conv and Autoencoder do not yet: see BUILD_NOTES).
if os.environ.get("JDL_STRICT_PROMOTION") == "1":
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def digits_small():
    """A small, normalised slice of scikit-learn's digits: (train dict, val dict)."""
    from jdl.data import digits, fit_normalizer
    tr = digits.load("train")
    norm = fit_normalizer(tr.images[:400])
    x = norm(tr.images[:480])
    y = tr.labels[:480]
    return {"x": x[:400], "y": y[:400]}, {"x": x[400:], "y": y[400:]}


@pytest.fixture
def no_persistent_cache():
    """Compilations counted in the test are real ones (none loaded from the session's cache);
    afterwards the session's cache is back as conftest set it up, whatever the test switched."""
    from jdl.parallel import compilation_cache as cc
    cc.disable_compilation_cache()
    yield
    cc.enable_compilation_cache(os.environ["JAX_COMPILATION_CACHE_DIR"],
                                float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


@pytest.fixture
def rng():
    return jax.random.PRNGKey(0)


def tree_max_abs_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


_default_unraisable = sys.unraisablehook


def _quiet_orbax_unraisable(u):
    """The corrupt-checkpoint test leaves orbax read coroutines that raise when collected at
    interpreter exit, after pytest's summary; drop exactly those, keep every other report."""
    if "_read_array_index_and_device_put" in repr(getattr(u, "object", "")):
        return
    _default_unraisable(u)


sys.unraisablehook = _quiet_orbax_unraisable


# The longest test files first (per-file totals of `--durations=0`, BUILD_NOTES.md "The suite's
# time"): scripts/test.sh hands whole files to two workers in collection order, and a long
# file collected last keeps one worker busy after the other has finished.
LONGEST_FIRST = ("test_train.py", "test_torchvision_transfer.py", "test_convolution.py",
                 "test_readme.py", "test_zoo.py", "test_resnet.py", "test_rbm.py",
                 "test_transfer_experiments.py", "test_regularisation_experiments.py",
                 "test_conv_autoencoder.py", "test_parallel.py", "test_hessian.py",
                 "test_rnn.py", "test_sequence_experiments.py", "test_transfer.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: files whole
