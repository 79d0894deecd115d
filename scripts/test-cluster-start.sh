#!/usr/bin/env bash
# A real one-node Slurm cluster + an sshd on loopback, for the Slurm-over-SSH tests and bench.
#
#   sudo scripts/test-cluster-start.sh      # idempotent: installs, configures, starts what is missing
#   sudo scripts/test-cluster-stop.sh       # stops the daemons (keeps packages and the test user)
#
# Debian bookworm packages; no systemd needed. Everything listens on 127.0.0.1 only and
# slurm.conf is written BEFORE any Slurm command runs (otherwise the clients look the
# controller up in DNS). Writes into $HPCML_TEST_CLUSTER_DIR (default /tmp/hpcml-test-cluster):
#   id_ed25519        the test user's key (generated here, never committed)
#   known_hosts       the sshd's host key for [127.0.0.1]:PORT
#   ssh_config        Host hpcml-test-cluster (HostName, Port, User, IdentityFile, UserKnownHostsFile)
#   cluster.env       HPCML_TEST_SSH_{HOST,PORT,USER,KEY,KNOWN_HOSTS,CONFIG}, HPCML_TEST_PYTHON
#   logs/             daemon logs
# The test user (default hpcml-test) gets a venv in ~/venv with mlflow-skinny plus what the
# digits example (examples/digits) needs: scikit-learn, and pandas + skops for mlflow.sklearn
# to log and load its model (pip wheels from PyPI; log in logs/pip.log).
set -euo pipefail

DIR=${HPCML_TEST_CLUSTER_DIR:-/tmp/hpcml-test-cluster}
PORT=${HPCML_TEST_SSH_PORT:-2222}
TUSER=${HPCML_TEST_USER:-hpcml-test}
CSHUSER=${HPCML_TEST_CSH_USER:-hpcml-csh}  # a second account whose login shell is tcsh
CLUSTER=hpcmltest
NODE=hpcml-node
MARK="# jupyterlab-hpcml test cluster (scripts/test-cluster-start.sh)"
PKGS=(munge slurm-wlm slurmctld slurmd slurm-client slurm-wlm-basic-plugins slurmdbd
      slurm-wlm-mysql-plugin mariadb-server openssh-server python3-venv tcsh)

T0=$(date +%s.%N)
STEP_T=$T0
step() {  # print how long the previous step took, then the name of the next one
  local now; now=$(date +%s.%N)
  [ -n "${STEP_NAME:-}" ] && printf '  %-34s %6.1f s\n' "$STEP_NAME" "$(echo "$now - $STEP_T" | bc)"
  STEP_NAME=${1:-}; STEP_T=$now
}
die() { echo "test-cluster-start: $*" >&2; exit 1; }
wait_for() {  # <seconds> <description> <command...>
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$what did not come up within ${secs}s (logs in $DIR/logs)"
}
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages, writes /etc/slurm and starts daemons)"
command -v bc >/dev/null || PKGS+=(bc)
mkdir -p "$DIR/logs"
chmod 755 "$DIR"

# ------------------------------------------------------------------ packages
step "packages"
missing=()
for p in "${PKGS[@]}" bc; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  ok=
  for attempt in 1 2 3 4 5 6; do
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >"$DIR/logs/apt.log" 2>&1; then ok=1; break; fi
    echo "apt-get failed (attempt $attempt; the apt lock may be busy), retrying in 10 s" >&2
    sleep 10
  done
  [ -n "$ok" ] || die "could not install ${missing[*]} (see $DIR/logs/apt.log)"
fi

# ------------------------------------------------------------------ slurm.conf first
step "slurm config"
if [ -f /etc/slurm/slurm.conf ] && ! grep -qF "$MARK" /etc/slurm/slurm.conf; then
  die "/etc/slurm/slurm.conf exists and is not ours: refusing to overwrite a real cluster's config"
fi
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /run/slurm
HOST=$(hostname -s)
cat > /etc/slurm/slurm.conf.new <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmctldLogFile=$DIR/logs/slurmctld.log
SlurmdLogFile=$DIR/logs/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MinJobAge=3600
KillWait=3
InactiveLimit=0
MessageTimeout=20
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=16 RealMemory=8000 Features=cpu,test State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
cat > /etc/slurm/slurmdbd.conf <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=/run/slurm/slurmdbd.pid
LogFile=$DIR/logs/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=root
EOF
chmod 600 /etc/slurm/slurmdbd.conf

# ------------------------------------------------------------------ munge
step "munge"
mkdir -p /run/munge && chown munge:munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
if ! munge -n </dev/null >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged munge -n
fi

# ------------------------------------------------------------------ mariadb + slurmdbd
step "mariadb"
if ! mariadb-admin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1; then
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$DIR/logs/mariadb-install.log" 2>&1
  nohup mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
    --pid-file=/run/mysqld/mysqld.pid --log-error="$DIR/logs/mariadb.log" >/dev/null 2>&1 &
  wait_for 30 mariadb mariadb-admin --socket=/run/mysqld/mysqld.sock ping
fi
step "slurmdbd"
if ! running /run/slurm/slurmdbd.pid; then
  slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
fi
if ! sacctmgr -n -P list cluster format=cluster | grep -x "$CLUSTER" >/dev/null; then
  sacctmgr -i add cluster "$CLUSTER" >/dev/null || true  # "already exists" when another start raced us
fi

# ------------------------------------------------------------------ slurmctld + slurmd
step "slurmctld + slurmd"
if ! running /run/slurm/slurmctld.pid; then
  slurmctld -i
fi
wait_for 30 slurmctld scontrol ping
if ! running /run/slurm/slurmd.pid; then
  slurmd -N "$NODE"
fi
node_up() { sinfo -h -n "$NODE" -o %t | grep -Eq '^(idle|mix|alloc)'; }
for _ in $(seq 300); do node_up && break; sleep 0.1; done
if ! node_up; then
  scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
  wait_for 20 "the slurm node" node_up
fi

# ------------------------------------------------------------------ test user + venv
step "test user"
if ! id "$TUSER" >/dev/null 2>&1; then
  useradd -m -s /bin/bash "$TUSER"
fi
usermod -p '*' "$TUSER"  # useradd leaves the account locked ('!'), which sshd refuses
THOME=$(getent passwd "$TUSER" | cut -d: -f6)
if [ ! -f "$DIR/id_ed25519" ]; then
  ssh-keygen -q -t ed25519 -N '' -C "hpcml-test-cluster" -f "$DIR/id_ed25519"
fi
chmod 600 "$DIR/id_ed25519"
install -d -m 700 -o "$TUSER" -g "$TUSER" "$THOME/.ssh"
install -m 600 -o "$TUSER" -g "$TUSER" "$DIR/id_ed25519.pub" "$THOME/.ssh/authorized_keys"
if ! id "$CSHUSER" >/dev/null 2>&1; then
  useradd -m -s /usr/bin/tcsh "$CSHUSER"
fi
usermod -p '*' "$CSHUSER"
CSHHOME=$(getent passwd "$CSHUSER" | cut -d: -f6)
install -d -m 700 -o "$CSHUSER" -g "$CSHUSER" "$CSHHOME/.ssh"
install -m 600 -o "$CSHUSER" -g "$CSHUSER" "$DIR/id_ed25519.pub" "$CSHHOME/.ssh/authorized_keys"
step "test user venv (mlflow + sklearn)"
# mlflow-skinny for the toy project; scikit-learn for the digits example, whose
# mlflow.sklearn.log_model also needs pandas (mlflow.types) and skops (the model format).
VENV_PKGS=(mlflow-skinny scikit-learn pandas skops)
VENV_CHECK="import mlflow.sklearn, sklearn.neural_network, skops.io"
if [ ! -x "$THOME/venv/bin/python" ]; then
  runuser -u "$TUSER" -- /usr/bin/python3 -m venv "$THOME/venv"
fi
if ! runuser -u "$TUSER" -- "$THOME/venv/bin/python" -c "$VENV_CHECK" 2>/dev/null; then
  echo "installing into $THOME/venv: ${VENV_PKGS[*]}"
  runuser -u "$TUSER" -- env HOME="$THOME" "$THOME/venv/bin/pip" install -q --disable-pip-version-check \
    --prefer-binary "${VENV_PKGS[@]}" >"$DIR/logs/pip.log" 2>&1 \
    || die "pip install ${VENV_PKGS[*]} into $THOME/venv failed (see $DIR/logs/pip.log)"
  runuser -u "$TUSER" -- "$THOME/venv/bin/python" -c "$VENV_CHECK" >>"$DIR/logs/pip.log" 2>&1 \
    || die "$THOME/venv cannot run: python -c '$VENV_CHECK' (see $DIR/logs/pip.log)"
fi

# ------------------------------------------------------------------ sshd on 127.0.0.1:$PORT
step "sshd"
[ -f "$DIR/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh_host_ed25519_key"
mkdir -p /run/sshd && chmod 755 /run/sshd
cat > "$DIR/sshd_config" <<EOF
$MARK
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.pid
AllowUsers $TUSER $CSHUSER
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
MaxSessions 32
MaxStartups 30:50:100
AcceptEnv none
PrintMotd no
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -t -f "$DIR/sshd_config"
if ! running "$DIR/sshd.pid"; then
  /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/logs/sshd.log"
else
  kill -HUP "$(cat "$DIR/sshd.pid")"  # re-reads sshd_config (e.g. a user added since)
fi
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")" > "$DIR/known_hosts"
cat > "$DIR/ssh_config" <<EOF
Host hpcml-test-cluster
  HostName 127.0.0.1
  Port $PORT
  User $TUSER
  IdentityFile $DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $DIR/known_hosts
  StrictHostKeyChecking yes
EOF
cat > "$DIR/cluster.env" <<EOF
export HPCML_TEST_CLUSTER_DIR=$DIR
export HPCML_TEST_SSH_HOST=127.0.0.1
export HPCML_TEST_SSH_PORT=$PORT
export HPCML_TEST_SSH_USER=$TUSER
export HPCML_TEST_CSH_USER=$CSHUSER
export HPCML_TEST_SSH_KEY=$DIR/id_ed25519
export HPCML_TEST_SSH_KNOWN_HOSTS=$DIR/known_hosts
export HPCML_TEST_SSH_CONFIG=$DIR/ssh_config
export HPCML_TEST_PYTHON=$THOME/venv
export HPCML_TEST_SLURM_PARTITION=debug
EOF

step "smoke test (ssh + sbatch)"
out=$(ssh -F "$DIR/ssh_config" -o BatchMode=yes hpcml-test-cluster 'sinfo -h -o "%P %a %D %t"' 2>&1) \
  || die "ssh to the test user failed: $out"
step
printf 'test cluster up in %.1f s: %s; ssh -F %s hpcml-test-cluster\n' \
  "$(echo "$(date +%s.%N) - $T0" | bc)" "$out" "$DIR/ssh_config"
echo "test settings: source $DIR/cluster.env"
