#!/usr/bin/env bash
# One command: make the environment, install jdl, run the whole test suite (CI runs this).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
python -m pytest -p no:warnings -p no:unraisableexception "$@"
