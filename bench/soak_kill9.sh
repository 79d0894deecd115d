#!/usr/bin/env bash
# Long soak of the kill -9 test (tests/test_kill9.py): the server killed with SIGKILL at
# HPCML_KILL9_TRIALS random moments (default 70) and restarted on the same data dir.
# Prints the seed, then kills / runs / accepted / cancels and the time, and where the full
# pytest output is. Replay a failure with HPCML_KILL9_SEED=<seed>. Arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
export HPCML_KILL9_TRIALS="${HPCML_KILL9_TRIALS:-70}"
log="$(mktemp -t hpcml-kill9-XXXXXX.log)"
.venv/bin/pytest -q -s -p no:cacheprovider \
  tests/test_kill9.py "$@" >"$log" 2>&1
status=$?
grep -E "kill -9 test: seed|kills,|^E  |passed|failed" "$log" | cut -c1-2000
echo "full output: $log"
exit $status
