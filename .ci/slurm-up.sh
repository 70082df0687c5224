#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for the tests marked `slurm` (Debian 12, root,
# no systemd). Debian's slurm-wlm 22.05 and munge; daemons in the foreground (-D / -F) in the
# background, their pids in $STATE/*.pid, so `stop` ends exactly the processes `up` started.
#
#   bash .ci/slurm-up.sh          # install if missing, configure, start, wait until the node is idle
#   bash .ci/slurm-up.sh stop     # stop the daemons started here
#   FAKE_GPUS=2 bash .ci/slurm-up.sh   # also declare 2 fake GPUs (gres/gpu) for --gres / gpus_per_node jobs
#
# A throwaway cluster: every `up` starts from empty state, so job ids restart at 1.
set -euo pipefail
STATE=${ALVIT_SLURM_STATE:-/tmp/alvit-slurm}
FAKE_GPUS=${FAKE_GPUS:-0}
mkdir -p "$STATE"

stop() {
  local pids=() name pid
  for name in slurmd slurmctld munged; do
    [[ -f $STATE/$name.pid ]] || continue
    pid=$(cat "$STATE/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; pids+=("$pid"); echo "stopping $name ($pid)"; fi
    rm -f "$STATE/$name.pid"
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  # slurmctld leaves /run/slurmctld.pid behind; a stale one makes a later `apt-get purge` fail.
  [[ -f /run/slurmctld.pid ]] && ! kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null && rm -f /run/slurmctld.pid
  [[ -f /run/slurmd.pid ]] && ! kill -0 "$(cat /run/slurmd.pid)" 2>/dev/null && rm -f /run/slurmd.pid
  return 0
}

if [[ ${1:-up} == stop ]]; then stop; exit 0; fi
if [[ $(id -u) != 0 ]]; then echo "slurm-up.sh must run as root (it writes /etc/slurm and starts daemons)" >&2; exit 1; fi
stop  # a cluster this script started before

# 1. Packages, when missing. policy-rc.d keeps the packages from starting services themselves.
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# 2. munge: a key only root's munge user reads; setpriv execs munged itself, so $! is its pid.
[[ -s /etc/munge/munge.key ]] || mungekey --create --force
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge && chmod 755 /run/munge
setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F > "$STATE/munged.log" 2>&1 &
echo $! > "$STATE/munged.pid"
for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
munge -n | unmunge | grep -q 'STATUS: *Success' || { echo "munge does not work; see $STATE/munged.log" >&2; exit 1; }

# 3. slurm.conf: one node with this machine's CPUs and memory; no cgroups, no accounting.
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm
GRES=""
rm -f /etc/slurm/gres.conf
if (( FAKE_GPUS > 0 )); then
  # slurmd drains a node whose GPU GRES has no device files, so each fake GPU is a character
  # device of NVIDIA's major number (195), made under $STATE; without cgroups nothing opens it.
  mkdir -p "$STATE/fakedev"
  for ((i = 0; i < FAKE_GPUS; i++)); do
    [[ -e $STATE/fakedev/nvidia$i ]] || mknod "$STATE/fakedev/nvidia$i" c 195 "$i"
  done
  echo "NodeName=localhost Name=gpu File=$STATE/fakedev/nvidia[0-$((FAKE_GPUS - 1))]" > /etc/slurm/gres.conf
  GRES="Gres=gpu:$FAKE_GPUS"
fi
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=alvit-ci
SlurmctldHost=localhost
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# scancel sends SIGTERM, which submitit's jobs ignore (they checkpoint on SIGUSR2), then SIGKILL
# after KillWait (default 30 s); 2 s makes a cancelled test job die mid-run.
KillWait=2
MpiDefault=none
$( (( FAKE_GPUS > 0 )) && echo GresTypes=gpu )
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM $GRES State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# 4. Daemons from empty state: no old jobs, no drained node.
rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
/usr/sbin/slurmctld -D > "$STATE/slurmctld.out" 2>&1 &
echo $! > "$STATE/slurmctld.pid"
/usr/sbin/slurmd -D -N localhost > "$STATE/slurmd.out" 2>&1 &
echo $! > "$STATE/slurmd.pid"
for _ in $(seq 150); do
  sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break; sleep 0.2
done
if ! sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  echo "the node did not come up; see $STATE/slurmctld.out, $STATE/slurmd.out and /var/log/slurm/" >&2
  sinfo >&2 || true
  exit 1
fi
echo "slurm up: $(sinfo -h -o '%P %D node(s) %c CPUs %T') (stop: bash $0 stop)"
