# Sourced by scripts/quickstart.sh and scripts/test.sh: make .venv and install jdl into it, once.
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
  echo "[jdl] installing jdl and its dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
