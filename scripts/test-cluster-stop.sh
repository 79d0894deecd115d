#!/usr/bin/env bash
# Stop what scripts/test-cluster-start.sh started (idempotent). Packages, the test user,
# its venv and the Slurm/MariaDB state stay, so the next start is fast.
#   HPCML_TEST_CLUSTER_PURGE=1 also removes the generated keys and $HPCML_TEST_CLUSTER_DIR.
set -uo pipefail

DIR=${HPCML_TEST_CLUSTER_DIR:-/tmp/hpcml-test-cluster}
MARK="# jupyterlab-hpcml test cluster (scripts/test-cluster-start.sh)"

[ "$(id -u)" = 0 ] || { echo "test-cluster-stop: run as root" >&2; exit 1; }
if [ -f /etc/slurm/slurm.conf ] && ! grep -qF "$MARK" /etc/slurm/slurm.conf; then
  echo "test-cluster-stop: /etc/slurm/slurm.conf is not ours: leaving the Slurm daemons alone" >&2
  exit 1
fi

stop_pidfile() {  # <name> <pidfile>: TERM, then wait up to 10 s, then KILL
  local name=$1 file=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null) || return 0
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name ($pid)"
  fi
  rm -f "$file"
}

# Cancel the test user's jobs first so slurmd does not leave job processes behind.
if [ -f /etc/slurm/slurm.conf ] && command -v scancel >/dev/null && scontrol ping >/dev/null 2>&1; then
  scancel -u "${HPCML_TEST_USER:-hpcml-test}" >/dev/null 2>&1 || true
fi
stop_pidfile sshd "$DIR/sshd.pid"
stop_pidfile slurmd /run/slurm/slurmd.pid
stop_pidfile slurmctld /run/slurm/slurmctld.pid
stop_pidfile slurmdbd /run/slurm/slurmdbd.pid
stop_pidfile mariadb /run/mysqld/mysqld.pid
stop_pidfile munged /run/munge/munged.pid

if [ "${HPCML_TEST_CLUSTER_PURGE:-}" = 1 ]; then
  rm -rf "$DIR"
  echo "removed $DIR"
fi
exit 0
