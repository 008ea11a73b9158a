#!/usr/bin/env bash
# Single-node Slurm cluster with accounting (MariaDB + slurmdbd) for tests and local runs.
#
#   bash tools/slurm-local.sh start|stop|status   (stop also removes the configs start wrote)
#   bash tools/slurm-local.sh install             (the packages only: CI installs them beside pip)
#
# Debian/Ubuntu, as root, without systemd: every daemon is started by hand, writes a PID
# file and listens on loopback only (127.0.0.1, or whatever loopback address the hostname
# resolves to; see pick_address). `start` is idempotent: running daemons (found by their PID
# files) are left alone, so a second `start` takes about 1.5 s. `status` exits 0 only when
# all five daemons run. See tools/README-slurm.md.
#
# Environment (all optional):
#   SLURM_LOCAL_DIR        state dir (configs, DB, spool, logs, PID files) [/var/lib/lambda-hat-slurm]
#   SLURM_LOCAL_CLUSTER    cluster name [lambdahat]
#   SLURM_LOCAL_PARTITION  partition name [debug]
#   SLURM_LOCAL_ACCOUNT    account that root and the invoking (sudo) user are put in [lambda]
#   SLURM_LOCAL_USERS      extra users (space-separated) to associate with the account
#   SLURM_LOCAL_DB_PORT    MariaDB TCP port on 127.0.0.1 [3306]
#   SLURM_LOCAL_TIMEOUT    seconds to wait for each daemon / for the node to be idle [90]
#   SLURM_LOCAL_CPUS       CPUs the node offers to Slurm [nproc]; more than the machine has
#                          oversubscribes it (tests with jobs that mostly wait use this)
#   SLURM_LOCAL_FORCE=1    overwrite an /etc/slurm/slurm.conf that this script did not write
#
# Exit codes: 0 ok; 1 failure (messages name the log files); 2 unsupported environment
# (not root, or no apt-get): tests use 2 to skip.
set -euo pipefail

STATE_DIR=${SLURM_LOCAL_DIR:-/var/lib/lambda-hat-slurm}
CLUSTER=${SLURM_LOCAL_CLUSTER:-lambdahat}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
ACCOUNT=${SLURM_LOCAL_ACCOUNT:-lambda}
DB_PORT=${SLURM_LOCAL_DB_PORT:-3306}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-90}

CONF_DIR=/etc/slurm
SLURM_CONF_FILE=$CONF_DIR/slurm.conf
DBD_CONF_FILE=$CONF_DIR/slurmdbd.conf
MARKER="# Written by lambda-hat tools/slurm-local.sh; regenerated on every start."

LOG_DIR=$STATE_DIR/log
RUN_DIR=$STATE_DIR/run
DB_DIR=$STATE_DIR/mysql
MY_CNF=$STATE_DIR/my.cnf
DB_SOCK=$RUN_DIR/mysqld/mysqld.sock
DB_PASS_FILE=$STATE_DIR/db.pass
ENV_FILE=$STATE_DIR/env

PACKAGES=(munge slurm-wlm slurm-client slurmdbd mariadb-server mariadb-client)
# name, PID file and /proc/PID/comm of each daemon, in start order
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
declare -A PIDFILE=(
  [munged]=$RUN_DIR/munge/munged.pid
  [mariadbd]=$RUN_DIR/mysqld/mariadbd.pid
  [slurmdbd]=$RUN_DIR/slurmdbd.pid
  [slurmctld]=$RUN_DIR/slurmctld.pid
  [slurmd]=$RUN_DIR/slurmd.pid
)
declare -A LOGFILE=(
  [munged]=$LOG_DIR/munged.log
  [mariadbd]=$LOG_DIR/mariadb.log
  [slurmdbd]=$LOG_DIR/slurmdbd.log
  [slurmctld]=$LOG_DIR/slurmctld.log
  [slurmd]=$LOG_DIR/slurmd.log
)

say() { printf 'slurm-local: %s\n' "$*" >&2; }
die() { local rc=$1; shift; printf 'slurm-local: ERROR: %s\n' "$*" >&2; exit "$rc"; }
fail() {  # fail MESSAGE DAEMON... : die, naming and tailing the daemons' logs
  local msg=$1; shift
  printf 'slurm-local: ERROR: %s\n' "$msg" >&2
  local d
  for d in "$@"; do
    printf -- '--- last lines of %s ---\n' "${LOGFILE[$d]}" >&2
    tail -n 15 "${LOGFILE[$d]}" >&2 2>/dev/null || true
  done
  printf 'slurm-local: logs are in %s\n' "$LOG_DIR" >&2
  exit 1
}

require_root() { [[ $(id -u) -eq 0 ]] || die 2 "must run as root (uid 0); this is uid $(id -u)"; }
require_apt() { command -v apt-get >/dev/null 2>&1 || die 2 "apt-get not found: only Debian/Ubuntu are supported"; }

# PID of a running daemon according to its PID file, or nothing (exit 1).
# The /proc/PID/comm check guards against a stale PID file whose PID was reused.
daemon_pid() {
  local name=$1 f=${PIDFILE[$1]} pid
  [[ -r $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid && -r /proc/$pid/comm ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
  printf '%s\n' "$pid"
}
running() { daemon_pid "$1" >/dev/null; }

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  # Keep package maintainer scripts from starting system services (systemd or init.d):
  # this script runs its own daemons. Only add a policy-rc.d if there is none.
  local policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  } >"$STATE_DIR/apt.log" 2>&1 || rc=$?
  if ((policy_added)); then rm -f /usr/sbin/policy-rc.d; fi
  ((rc == 0)) || { tail -n 20 "$STATE_DIR/apt.log" >&2; die 1 "apt-get failed (rc=$rc), see $STATE_DIR/apt.log"; }
}

# write_conf FILE MODE CONTENT: write only when the content differs; return 0 if it changed
write_conf() {
  local f=$1 mode=$2 content=$3
  if [[ -f $f ]] && [[ $(cat "$f") == "$content" ]]; then
    chmod "$mode" "$f"
    return 1
  fi
  printf '%s\n' "$content" >"$f.tmp.$$"
  chmod "$mode" "$f.tmp.$$"
  mv -f "$f.tmp.$$" "$f"
  return 0
}

node_memory_mb() {  # RealMemory from `slurmd -C` (fallback /proc/meminfo) minus headroom
  local mem
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n 1)
  [[ -n $mem ]] || mem=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
  local headroom=$((mem / 10))
  ((headroom >= 512)) || headroom=512
  ((mem - headroom >= 256)) || headroom=$((mem / 2))
  echo $((mem - headroom))
}

# Slurm binds its listening sockets either to every address (default) or, with
# CommunicationParameters=NoInAddrAny,NoCtldInAddrAny, to the address that gethostname()
# resolves to. So use that address everywhere when it is a loopback one (127.0.0.1 here;
# 127.0.1.1 on a stock Debian /etc/hosts); otherwise warn and fall back to 127.0.0.1 as
# the address the daemons are contacted on, while they listen on all interfaces.
pick_address() {
  local ip
  ip=$(getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR == 1 {print $1}')
  if [[ $ip == 127.* ]]; then
    ADDR=$ip
    COMM_PARAMS="CommunicationParameters=NoInAddrAny,NoCtldInAddrAny"
  else
    ADDR=127.0.0.1
    COMM_PARAMS="# CommunicationParameters=NoInAddrAny not usable: $(hostname) resolves to '${ip:-nothing}', not a loopback address"
    say "WARNING: $(hostname) resolves to '${ip:-nothing}', not to a loopback address:" \
      "slurmctld/slurmd/slurmdbd will listen on all interfaces (map it to 127.0.0.1 in /etc/hosts to avoid this)"
  fi
}

write_configs() {  # sets CONF_CHANGED=1 when slurm.conf or slurmdbd.conf changed
  local node cpus mem
  node=$(hostname -s)
  cpus=${SLURM_LOCAL_CPUS:-$(nproc)}
  [[ $cpus =~ ^[1-9][0-9]*$ ]] || die 1 "SLURM_LOCAL_CPUS must be a positive integer, not '$cpus'"
  mem=$(node_memory_mb)
  NODE=$node CPUS=$cpus MEM_MB=$mem
  pick_address

  if [[ -f $SLURM_CONF_FILE ]] && ! grep -qF "$MARKER" "$SLURM_CONF_FILE" && [[ ${SLURM_LOCAL_FORCE:-0} != 1 ]]; then
    die 1 "$SLURM_CONF_FILE exists and was not written by this script; refusing to overwrite it (set SLURM_LOCAL_FORCE=1 to override)"
  fi
  mkdir -p "$CONF_DIR"

  if [[ ! -s $DB_PASS_FILE ]]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DB_PASS_FILE")
  fi
  local db_pass
  db_pass=$(cat "$DB_PASS_FILE")

  write_conf "$SLURM_CONF_FILE" 644 "$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$node($ADDR)
$COMM_PARAMS
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
InactiveLimit=0
KillWait=30
Waittime=0
SlurmctldTimeout=120
SlurmdTimeout=300
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/spool/slurmctld
SlurmdSpoolDir=$STATE_DIR/spool/slurmd
SlurmctldPidFile=${PIDFILE[slurmctld]}
SlurmdPidFile=${PIDFILE[slurmd]}
SlurmctldLogFile=${LOGFILE[slurmctld]}
SlurmdLogFile=${LOGFILE[slurmd]}
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$ADDR
AccountingStoragePort=6819
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
NodeName=$node NodeAddr=$ADDR NodeHostname=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP" && CONF_CHANGED=1

  write_conf "$DBD_CONF_FILE" 600 "$MARKER
AuthType=auth/munge
DbdHost=$node
DbdAddr=$ADDR
${COMM_PARAMS/,NoCtldInAddrAny/}
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=${LOGFILE[slurmdbd]}
PidFile=${PIDFILE[slurmdbd]}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db" && CONF_CHANGED=1

  write_conf "$MY_CNF" 644 "# Written by lambda-hat tools/slurm-local.sh
[mysqld]
user=mysql
datadir=$DB_DIR
socket=$DB_SOCK
pid-file=${PIDFILE[mariadbd]}
log-error=${LOGFILE[mariadbd]}
bind-address=127.0.0.1
port=$DB_PORT
skip-name-resolve
innodb_buffer_pool_size=256M
innodb_log_file_size=64M
innodb_lock_wait_timeout=900" || true
}

prepare_dirs() {
  mkdir -p "$LOG_DIR" "$RUN_DIR/munge" "$RUN_DIR/mysqld" "$DB_DIR" \
    "$STATE_DIR/spool/slurmctld" "$STATE_DIR/spool/slurmd"
  chown munge:munge "$RUN_DIR/munge"
  chown mysql:mysql "$RUN_DIR/mysqld" "$DB_DIR"
  touch "${LOGFILE[munged]}" "${LOGFILE[mariadbd]}"
  chown munge:munge "${LOGFILE[munged]}"
  chown mysql:mysql "${LOGFILE[mariadbd]}"
  # munged's default socket dir (libslurm's auth/munge connects there); /run is a tmpfs
  install -d -o munge -g munge -m 755 /run/munge
}

start_munged() {
  running munged && return 0
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged --force \
    --pid-file="${PIDFILE[munged]}" --log-file="${LOGFILE[munged]}" 9>&- ||
    fail "munged did not start" munged
  wait_for "$TIMEOUT" bash -c 'munge -n | unmunge' || fail "munge credentials do not work" munged
}

db_sql() { mariadb --no-defaults --protocol=socket --socket="$DB_SOCK" -uroot -e "$1"; }

start_mariadbd() {
  if ! running mariadbd; then
    if [[ ! -d $DB_DIR/mysql ]]; then
      say "initialising MariaDB in $DB_DIR"
      mariadb-install-db --defaults-file="$MY_CNF" --auth-root-authentication-method=socket \
        --skip-test-db >>"${LOGFILE[mariadbd]}" 2>&1 || fail "mariadb-install-db failed" mariadbd
    fi
    say "starting mariadbd (127.0.0.1:$DB_PORT)"
    setsid /usr/sbin/mariadbd --defaults-file="$MY_CNF" </dev/null >>"${LOGFILE[mariadbd]}" 2>&1 9>&- &
    wait_for "$TIMEOUT" mariadb-admin --no-defaults --socket="$DB_SOCK" -uroot ping ||
      fail "mariadbd did not come up" mariadbd
    wait_for 10 running mariadbd || fail "mariadbd wrote no PID file ${PIDFILE[mariadbd]}" mariadbd
  fi
  local pass u
  pass=$(cat "$DB_PASS_FILE")
  for u in "'slurm'@'localhost'" "'slurm'@'127.0.0.1'"; do
    db_sql "CREATE USER IF NOT EXISTS $u IDENTIFIED BY '$pass';
            ALTER USER $u IDENTIFIED BY '$pass';
            GRANT ALL PRIVILEGES ON slurm_acct_db.* TO $u;" || fail "could not create the DB user" mariadbd
  done
}

start_slurm_daemon() {  # start_slurm_daemon NAME: slurmdbd/slurmctld/slurmd daemonise themselves
  local name=$1
  running "$name" && return 0
  say "starting $name"
  "/usr/sbin/$name" </dev/null >>"${LOGFILE[$name]}" 2>&1 9>&- || fail "$name exited with an error" "$name"
  wait_for "$TIMEOUT" running "$name" || fail "$name is not running (no live PID in ${PIDFILE[$name]})" "$name"
}

sacctmgr_q() { sacctmgr -n -P "$@" 2>/dev/null; }

setup_accounting() {
  wait_for "$TIMEOUT" sacctmgr -n -P show cluster || fail "slurmdbd does not answer sacctmgr" slurmdbd mariadbd
  if ! sacctmgr_q show cluster format=Cluster | grep -qx "$CLUSTER"; then
    say "adding cluster $CLUSTER"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail "sacctmgr add cluster failed" slurmdbd
  fi
  if ! sacctmgr_q show account "$ACCOUNT" format=Account | grep -qx "$ACCOUNT"; then
    say "adding account $ACCOUNT"
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="lambda-hat local" \
      organization=lambda-hat >/dev/null || fail "sacctmgr add account failed" slurmdbd
  fi
  local users=(root) u
  if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then users+=("$SUDO_USER"); fi
  for u in ${SLURM_LOCAL_USERS:-}; do users+=("$u"); done
  for u in "${users[@]}"; do
    id -u "$u" >/dev/null 2>&1 || { say "skipping unknown user $u"; continue; }
    if ! sacctmgr_q show assoc where cluster="$CLUSTER" account="$ACCOUNT" user="$u" format=User | grep -qx "$u"; then
      say "associating user $u with account $ACCOUNT"
      sacctmgr -i add user "$u" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null ||
        fail "sacctmgr add user $u failed" slurmdbd
    fi
    if [[ $(sacctmgr_q show user "$u" format=DefaultAccount) != "$ACCOUNT" ]]; then
      sacctmgr -i modify user "$u" set defaultaccount="$ACCOUNT" >/dev/null ||
        fail "sacctmgr modify user $u failed" slurmdbd
    fi
  done
}

node_state() { sinfo -h -o %T -p "$PARTITION" 2>/dev/null | head -n 1; }

wait_node_up() {
  local deadline=$((SECONDS + TIMEOUT)) state resumed=0
  while :; do
    state=$(node_state || true)
    case $state in
      idle | mixed | allocated | completing) return 0 ;;
      *drain* | down)
        if ((!resumed)); then
          say "node is '$state', resuming it"
          scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
          resumed=1
        fi ;;
    esac
    ((SECONDS < deadline)) || fail "node not idle after ${TIMEOUT}s (sinfo says '${state:-nothing}')" slurmctld slurmd
    sleep 0.2
  done
}

write_env() {
  write_conf "$ENV_FILE" 644 "SLURM_LOCAL_PARTITION=$PARTITION
SLURM_LOCAL_ACCOUNT=$ACCOUNT
SLURM_LOCAL_CLUSTER=$CLUSTER
SLURM_LOCAL_NODE=$NODE
SLURM_LOCAL_CPUS=$CPUS
SLURM_LOCAL_MEM_MB=$MEM_MB
SLURM_LOCAL_LOG_DIR=$LOG_DIR
SLURM_CONF=$SLURM_CONF_FILE" || true
}

alive_as() { [[ -e /proc/$1 && $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]]; }

# stop_daemons NAME...: SIGTERM the named daemons (found by PID file) together, wait up to
# 60 s for all of them to exit, then SIGKILL stragglers. Never matches processes by name.
stop_daemons() {
  local name pid i left
  local -A pids=()
  for name in "$@"; do
    if pid=$(daemon_pid "$name"); then
      say "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids[$name]=$pid
    else
      rm -f "${PIDFILE[$name]}"
    fi
  done
  for ((i = 0; i < 600; i++)); do  # 60 s
    left=0
    for name in "${!pids[@]}"; do alive_as "${pids[$name]}" "$name" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for name in "${!pids[@]}"; do
    if alive_as "${pids[$name]}" "$name"; then
      say "$name (pid ${pids[$name]}) ignored SIGTERM for 60 s, sending SIGKILL"
      kill -KILL "${pids[$name]}" 2>/dev/null || true
    fi
    rm -f "${PIDFILE[$name]}"
  done
}

cmd_install() {
  require_root
  require_apt
  mkdir -p "$STATE_DIR"
  # Serialise concurrent installs and starts. fd 9 holds the lock (for the rest of a start
  # too): daemons are started with 9>&-, or they would inherit it and every later start
  # would block forever.
  exec 9>"$STATE_DIR/lock"
  flock -w 600 9 || die 1 "another start holds $STATE_DIR/lock"
  install_packages
}

cmd_start() {
  cmd_install
  CONF_CHANGED=0
  write_configs
  if ((CONF_CHANGED)); then
    # a changed slurm.conf/slurmdbd.conf needs the Slurm daemons restarted
    if running slurmd || running slurmctld || running slurmdbd; then
      say "configuration changed: restarting the Slurm daemons"
      stop_daemons slurmd slurmctld
      stop_daemons slurmdbd
    fi
  fi
  prepare_dirs
  start_munged
  start_mariadbd
  start_slurm_daemon slurmdbd
  setup_accounting
  start_slurm_daemon slurmctld
  start_slurm_daemon slurmd
  wait_node_up
  write_env
  echo "Slurm is up: cluster=$CLUSTER partition=$PARTITION account=$ACCOUNT node=$NODE cpus=$CPUS mem=${MEM_MB}M"
  echo "SLURM_LOCAL_PARTITION=$PARTITION"
  echo "SLURM_LOCAL_ACCOUNT=$ACCOUNT"
  echo "(also in $ENV_FILE; logs in $LOG_DIR)"
}

# remove_own_conf FILE: delete FILE if this script wrote it (its first line is the marker)
remove_own_conf() {
  local f=$1
  if [[ -f $f ]] && [[ $(head -n 1 "$f") == "$MARKER" ]]; then
    rm -f "$f"
    say "removed $f"
  fi
}

cmd_stop() {
  require_root
  # slurmdbd outlives slurmctld (which reports to it on shutdown), MariaDB outlives slurmdbd
  stop_daemons slurmd slurmctld
  stop_daemons slurmdbd
  stop_daemons mariadbd munged
  # A slurm.conf naming a controller that is down makes every Slurm client (and so every
  # `snakemake` start, through the Slurm plugin's `scontrol show config`) wait ~9 s.
  remove_own_conf "$SLURM_CONF_FILE"
  remove_own_conf "$DBD_CONF_FILE"
  echo "Slurm stopped"
}

cmd_status() {
  local d pid all=0
  for d in "${DAEMONS[@]}"; do
    if pid=$(daemon_pid "$d"); then
      printf '%-10s running (pid %s)\n' "$d" "$pid"
    else
      printf '%-10s stopped\n' "$d"
      all=1
    fi
  done
  if running slurmctld && command -v sinfo >/dev/null 2>&1; then
    sinfo || true
  fi
  return $all
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 64 ;;
esac
