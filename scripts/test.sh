#!/usr/bin/env bash
# One command: make the environment, install jdl, run the whole test suite (CI runs this).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
# Two pytest-xdist workers (JDL_TEST_WORKERS; 0 runs the tests in this process), each test
# file kept on one worker (--dist loadfile: a module's fixtures are built once). JAX compiles
# on one thread, so on two cores two workers took 530 s where one took 721-863 s
# (BUILD_NOTES.md, seventh session).
WORKERS="${JDL_TEST_WORKERS:-2}"
if [ "$WORKERS" = "0" ]; then
  python -m pytest -p no:warnings -p no:unraisableexception "$@"
else
  python -m pytest -p no:warnings -p no:unraisableexception -n "$WORKERS" --dist loadfile "$@"
fi
