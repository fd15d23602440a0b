#!/usr/bin/env bash
# One command: make the environment, install jdl, run the quickstart experiment.
# Extra arguments go to experiments/quickstart.py (e.g. --dataset digits --epochs 20).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python experiments/quickstart.py "$@"
