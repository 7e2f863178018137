#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the tests: munge, MariaDB + slurmdbd
# (so sacct works, as on real clusters), slurmctld and slurmd, and one fake GPU (GRES
# backed by /dev/null) so GPU-tagged rules schedule. Runs as root, without systemd.
#
#   tests/slurm/cluster.sh up     install what is missing (apt), configure, start
#   tests/slurm/cluster.sh down   stop only the daemons that `up` started
#
# State, logs and pid files live in $VIDEO_MINER_SLURM_DIR (default /tmp/video-miner-slurm).
set -euo pipefail

DIR=${VIDEO_MINER_SLURM_DIR:-/tmp/video-miner-slurm}
ACCOUNT=${VIDEO_MINER_SLURM_ACCOUNT:-ci}
RUN=$DIR/run
LOG=$DIR/log
SPOOL=$DIR/spool
STARTED=$RUN/started # pid files of the daemons this script started
ETC=/etc/slurm

say() { echo "[cluster.sh] $*" >&2; }
die() {
    say "ERROR: $*"
    for f in "$LOG"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 20 "$f"; }; done >&2
    exit 1
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # wait_for SECONDS WHAT COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq 1 "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    die "timed out waiting for $what"
}

install_packages() {
    local missing=""
    for p in munge slurmctld slurmd slurm-client slurmdbd mariadb-server; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

write_config() {
    local host hw mem
    host=$(hostname -s)
    hw=$(slurmd -C | head -n1) # NodeName=... CPUs=.. RealMemory=..
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    hw=$(sed -e "s/RealMemory=[0-9]*/RealMemory=$((mem * 85 / 100))/" <<<"$hw") # headroom, else INVALID
    echo "NodeName=$host Name=gpu File=/dev/null" >"$ETC/gres.conf"
    cat >"$ETC/slurm.conf" <<CONF
# written by video-miner tests/slurm/cluster.sh
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
AccountingStoreFlags=job_comment
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
MinJobAge=600
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
MailProg=/bin/true
$hw NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    cat >"$ETC/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
CONF
    chmod 600 "$ETC/slurmdbd.conf"
}

start_daemon() { # start_daemon NAME PIDFILE READY-COMMAND...
    local name=$1 pidfile=$2
    shift 2
    alive "$pidfile" && return 0
    say "starting $name"
    "/usr/sbin/$name"
    wait_for 30 "$name" "$@"
    cp "$pidfile" "$STARTED/$name.pid"
}

up() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    install_packages
    mkdir -p "$RUN" "$LOG" "$SPOOL/ctld" "$SPOOL/d" "$STARTED" "$ETC"
    write_config

    [ -s /etc/munge/munge.key ] || {
        mungekey --create --force
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    }
    mkdir -p /run/munge && chown munge:munge /run/munge
    if ! (munge -n | unmunge) >/dev/null 2>&1; then
        say "starting munged"
        runuser -u munge -- /usr/sbin/munged --force
        wait_for 20 munged bash -c 'munge -n | unmunge'
        cp /run/munge/munged.pid "$STARTED/munged.pid"
    fi

    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if ! mysqladmin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1; then
        say "starting mariadbd"
        nohup /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
            --pid-file=/run/mysqld/mysqld.pid --bind-address=127.0.0.1 >"$LOG/mariadb.log" 2>&1 &
        echo $! >"$STARTED/mariadbd.pid"
        wait_for 60 mariadb mysqladmin --socket=/run/mysqld/mysqld.sock ping
    fi
    mysql --socket=/run/mysqld/mysqld.sock -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

    start_daemon slurmdbd "$RUN/slurmdbd.pid" sacctmgr -n list cluster
    sacctmgr -n list cluster format=cluster | grep -qw ci || sacctmgr -i add cluster ci >/dev/null
    if alive "$RUN/slurmctld.pid"; then scontrol reconfigure || true; fi
    start_daemon slurmctld "$RUN/slurmctld.pid" scontrol ping
    start_daemon slurmd "$RUN/slurmd.pid" alive "$RUN/slurmd.pid"

    local user
    user=$(id -un)
    sacctmgr -n list account format=account | grep -qw "$ACCOUNT" ||
        sacctmgr -i add account "$ACCOUNT" Description=ci Organization=ci >/dev/null
    sacctmgr -n list assoc user="$user" account="$ACCOUNT" format=user | grep -qw "$user" ||
        sacctmgr -i add user "$user" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null

    local host
    host=$(hostname -s)
    for _ in $(seq 1 30); do
        sinfo -h -n "$host" -o %T | grep -Eq '^(idle|mixed|allocated)' && break
        sinfo -h -n "$host" -o %T | grep -Eq 'down|drain' && scontrol update nodename="$host" state=resume 2>/dev/null || true
        sleep 1
    done
    sinfo -h -n "$host" -o %T | grep -Eq '^(idle|mixed|allocated)' || die "node not idle: $(sinfo -h -N -o '%N %T %E')"
    srun -t 1 -N1 -n1 true || die "srun smoke test failed"
    say "up: $(sinfo -h -o '%P %a %D %T %N')"
}

down() {
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        local f=$STARTED/$name.pid pid
        [ -s "$f" ] || continue
        pid=$(cat "$f")
        # Only a process that is still the program we started.
        if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
            say "stopping $name ($pid)"
            kill -TERM "$pid"
            for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        fi
        rm -f "$f"
    done
    # With a config naming a controller that is gone, every `scontrol` (which the SLURM
    # executor plugin runs when Snakemake starts) waits 10 s for it: remove ours.
    if head -n1 "$ETC/slurm.conf" 2>/dev/null | grep -q "written by video-miner"; then
        rm -f "$ETC/slurm.conf" "$ETC/gres.conf"
    fi
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
