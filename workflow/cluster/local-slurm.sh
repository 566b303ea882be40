#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine with two fake GPUs, to try the SLURM profile
# and to run tests/test_slurm.py: munged, slurmctld and slurmd started directly (no systemd).
#
#   workflow/cluster/local-slurm.sh start    # as root: install (Debian 12), configure, start
#   export SLURM_CONF=/tmp/saltnet-slurm/etc/slurm.conf    # printed by start and status
#   workflow/cluster/local-slurm.sh status   # daemons, node and partition; exit 3 if not running
#   workflow/cluster/local-slurm.sh stop     # stops only the daemons this script started
#
# Everything (config, spool, logs, PID files, munge key and socket, fake GPU devices) lives in
# $SALTNET_SLURM_DIR (default /tmp/saltnet-slurm). Partition `gpu` holds the node, whose GRES are
# gpu:2 backed by char devices made with mknod (SLURM drains a node that has GPUs without files).
# Settings that work without cgroups and systemd: /work/shared/notes/local-slurm.md.
set -euo pipefail

STATE=${SALTNET_SLURM_DIR:-/tmp/saltnet-slurm}
PARTITION=gpu
N_GPUS=2
PACKAGES="slurmctld slurmd slurm-client munge"
DAEMONS="munged slurmctld slurmd"

die() { echo "local-slurm: $*" >&2; exit 1; }
say() { echo "local-slurm: $*"; }

pid_file() { echo "$STATE/run/$1.pid"; }

# PID of daemon $1 if this script started it and it still runs, else nothing.
running_pid() {
    local file pid
    file=$(pid_file "$1")
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; then
        echo "$pid"
    fi
}

require_root() {
    [ "$(id -u)" = 0 ] || die "must run as root: it installs Debian packages and starts munged, slurmctld and slurmd (try: sudo $0 $1)"
}

install_packages() {
    local missing=""
    command -v munged >/dev/null && command -v mungekey >/dev/null || missing="yes"
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null || missing="yes"
    [ -z "$missing" ] && return 0
    command -v apt-get >/dev/null || die "SLURM is not installed and apt-get is missing: install $PACKAGES yourself"
    say "installing $PACKAGES"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null; } \
        || die "could not install $PACKAGES with apt-get"
}

write_config() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    mkdir -p "$STATE"/{etc,spool/ctld,spool/d,log,run,dev,munge}
    for i in $(seq 0 $((N_GPUS - 1))); do
        [ -c "$STATE/dev/gpu$i" ] || mknod "$STATE/dev/gpu$i" c 1 3  # same major:minor as /dev/null
    done
    cat >"$STATE/etc/slurm.conf" <<EOF
# Written by workflow/cluster/local-slurm.sh: one node, $N_GPUS fake GPUs, no cgroups, no accounting.
ClusterName=saltnet
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket.2
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for 10 min: the profile's status command is squeue.
MinJobAge=600
SchedulerParameters=sched_interval=2
# A job past its time limit gets SIGTERM, then SIGKILL 5 s later (defaults: 30 s).
KillWait=5
OverTimeLimit=0
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$N_GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1000
EOF
    cat >"$STATE/etc/gres.conf" <<EOF
NodeName=$host Name=gpu File=$STATE/dev/gpu[0-$((N_GPUS - 1))]
EOF
}

# Commands inside jobs run without SLURM_CONF (snakemake's jobstep clears SLURM_* variables before its
# srun), so the default client path must lead to this cluster's config. Never replaces a foreign one.
link_client_config() {
    local link=/etc/slurm/slurm.conf
    [ "$(readlink "$link" 2>/dev/null)" = "$STATE/etc/slurm.conf" ] && return 0
    if [ -e "$link" ] || [ -L "$link" ]; then
        die "$link exists and is not this cluster's: remove it, or use that cluster instead"
    fi
    mkdir -p /etc/slurm
    ln -s "$STATE/etc/slurm.conf" "$link"
}

start_munged() {
    [ -n "$(running_pid munged)" ] && return 0
    local dir="$STATE/munge"
    [ -s "$dir/munge.key" ] || mungekey --create --keyfile="$dir/munge.key" >/dev/null
    chown -R munge:munge "$dir"
    chmod 755 "$dir"  # munged: clients need execute permission on the socket folder
    chmod 400 "$dir/munge.key"
    touch "$(pid_file munged)" && chown munge:munge "$(pid_file munged)"
    runuser -u munge -- munged --socket="$dir/munge.socket.2" --key-file="$dir/munge.key" \
        --pid-file="$(pid_file munged)" --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" \
        || die "munged did not start; see $STATE/munge/munged.log"
}

start_slurm_daemon() {  # $1: slurmctld | slurmd; both daemonise and write their PID files
    [ -n "$(running_pid "$1")" ] && return 0
    rm -f "$(pid_file "$1")"
    "$1" -f "$STATE/etc/slurm.conf" || die "$1 did not start; see $STATE/log/$1.log"
    for _ in $(seq 50); do
        [ -n "$(running_pid "$1")" ] && return 0
        sleep 0.2
    done
    die "$1 wrote no PID file; see $STATE/log/$1.log"
}

wait_for_node() {
    local state
    for _ in $(seq 60); do
        state=$(sinfo -h -p "$PARTITION" -o %t 2>/dev/null || true)
        case "$state" in
            idle*|mix*|alloc*) return 0 ;;
            drain*|down*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    die "node did not become idle (state '${state:-none}'); see $STATE/log/slurmctld.log and slurmd.log"
}

cmd_start() {
    require_root start
    install_packages
    export SLURM_CONF="$STATE/etc/slurm.conf"
    local any_running=""
    for daemon in $DAEMONS; do [ -n "$(running_pid "$daemon")" ] && any_running="yes"; done
    [ -n "$any_running" ] || write_config  # never rewrite the config under running daemons
    link_client_config
    start_munged
    start_slurm_daemon slurmctld
    start_slurm_daemon slurmd
    wait_for_node
    say "running: partition $PARTITION, gpu:$N_GPUS on $(hostname -s)"
    echo "export SLURM_CONF=$SLURM_CONF"
}

cmd_stop() {
    require_root stop
    local pid jobs
    if [ -n "$(running_pid slurmctld)" ]; then  # end this cluster's jobs, else their steps outlive it
        jobs=$(SLURM_CONF="$STATE/etc/slurm.conf" squeue -h -o %i 2>/dev/null || true)
        [ -z "$jobs" ] || SLURM_CONF="$STATE/etc/slurm.conf" scancel $jobs || true
    fi
    for daemon in slurmd slurmctld munged; do
        pid=$(running_pid "$daemon")
        [ -n "$pid" ] || continue
        kill -TERM "$pid"
        for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
        [ -d "/proc/$pid" ] && kill -KILL "$pid"
        say "stopped $daemon ($pid)"
    done
    rm -f "$STATE"/run/*.pid
    [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" != "$STATE/etc/slurm.conf" ] || rm -f /etc/slurm/slurm.conf
}

cmd_status() {
    local pid down=""
    for daemon in $DAEMONS; do
        pid=$(running_pid "$daemon")
        if [ -n "$pid" ]; then say "$daemon running ($pid)"; else say "$daemon not running"; down="yes"; fi
    done
    [ -z "$down" ] || exit 3
    export SLURM_CONF="$STATE/etc/slurm.conf"
    sinfo -o "%P %a %D %t %G %c %m" || exit 3
    echo "export SLURM_CONF=$SLURM_CONF"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status   (state in \$SALTNET_SLURM_DIR, default /tmp/saltnet-slurm)" >&2; exit 2 ;;
esac
