#!/usr/bin/env bash
# One command: make the environment, install jdl, run the quickstart experiment.
# Extra arguments go to experiments/quickstart.py (e.g. --dataset digits --epochs 20); it runs in
# the directory you call this from, so a relative --workdir (default runs/quickstart) is there.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python "$ROOT/experiments/quickstart.py" "$@"
