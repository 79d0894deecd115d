#!/usr/bin/env bash
# Long soak of the kill -9 test (tests/test_kill9.py): the server killed with SIGKILL at
# HPCML_KILL9_TRIALS random moments (default 70) and restarted on the same data dir.
# Prints the seed first and, at the end, kills / runs / accepted / cancelled and the time.
# Replay a failure with HPCML_KILL9_SEED=<seed>. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export HPCML_KILL9_TRIALS="${HPCML_KILL9_TRIALS:-70}"
exec .venv/bin/pytest -q -s -p no:cacheprovider tests/test_kill9.py "$@" 2>&1 \
  | grep -E "kill -9 test|kills,|passed|failed|Error|seed"
