# Sourced by scripts/quickstart.sh and scripts/test.sh: make .venv and install jdl into it, once.
# Sets ROOT (the repository) and puts the venv first on PATH; does not change directory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="${JDL_VENV:-$ROOT/.venv}"
STAMP="$VENV/.jdl-installed"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[jdl] creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "[jdl] installing jdl with its experiments and test extras (jax, flax, optax, orbax," \
       "matplotlib, scikit-learn, pytest, ...) into $VENV; the first time takes a few minutes"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q --progress-bar on -e "$ROOT[experiments,test]"
  touch "$STAMP"
  echo "[jdl] installed"
fi
export PATH="$VENV/bin:$PATH"
