#!/usr/bin/env bash
# Tears the e2e cluster down, including a half-done or failed up.sh: kills
# every process it started (and every pod process), unmounts everything under
# /var/lib/kubelet, the run dir and the ec2csi e2e state dir, detaches loop
# devices backed by files there, removes the CNI bridge, its netns and
# iptables rules, restores /etc/hosts and ip_forward, and then checks that
# nothing is left. Exits non-zero if something is.
set -uo pipefail
# No `set -e`: teardown must push on past every individual failure.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_root

NODE_NAME="${EC2CSI_E2E_NODE_NAME:-ec2csi-e2e-node}"
POD_CIDR="${EC2CSI_E2E_POD_CIDR:-10.244.0.0/24}"
BRIDGE="${EC2CSI_E2E_BRIDGE:-ec2csie2e0}"
CNI_NET=ec2csi-e2e
if [ -f "$RUN/cluster.env" ]; then
  # up.sh's record wins over defaults: it knows what was really chosen.
  # shellcheck disable=SC1091
  . "$RUN/cluster.env"
fi
PIDS="$RUN/pids"
CTRD_SOCK="$RUN/containerd/containerd.sock"
HOSTS_MARK="# ec2csi-e2e"
# Extra loop-backing prefixes, for a driver that sees the state dir under
# another path inside its container.
read -r -a LOOP_PREFIXES <<< "$RUN/ $EC2CSI_STATE_DIR/ ${EC2CSI_E2E_LOOP_PREFIXES:-}"

T_DOWN=$(date +%s)

# cmdline PID prints the process's argv joined by spaces.
cmdline() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null; }

# stop_pid PID: TERM, then KILL after a grace period.
stop_pid() {
  local pid=$1 _
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  log "pid $pid ignored SIGTERM, killing"
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
}

# component_pid NAME: the pid from NAME's pid file, but only if that process
# is still NAME, so a recycled pid is never hit.
component_pid() {
  local pidf="$PIDS/$1.pid" pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if [ -n "$pid" ] && cmdline "$pid" | grep -q -- "$1"; then echo "$pid"; fi
}

# stop_components NAME...: TERM all at once, then wait for each; parallel
# because each takes a couple of seconds to shut down.
stop_components() {
  local n pid pids=()
  for n in "$@"; do
    pid=$(component_pid "$n")
    [ -n "$pid" ] || continue
    log "stopping $n (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    pids+=("$pid")
  done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  for n in "$@"; do rm -f "$PIDS/$n.pid"; done
}

# pod_cgroups lists kubelet's pod cgroup dirs (cgroupfs driver), deepest first.
pod_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$h" ] && find "$h" -depth -type d
  done
}

kill_pods() {
  local round pids
  for round in 1 2 3 4 5; do
    pids=$(pod_pids)
    [ -z "$pids" ] && break
    log "killing $(echo "$pids" | wc -w) pod processes (round $round)"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    sleep 0.5
  done
}

# Shims outlive containerd by design and carry our socket path in argv.
kill_shims() {
  local p
  for p in $(pgrep -f -- "-address $CTRD_SOCK" || true); do
    [ "$p" = $$ ] && continue
    log "stopping containerd shim (pid $p)"
    kill -KILL "$p" 2>/dev/null
  done
}

# our_daemons lists processes that are one of the daemons up.sh starts and
# whose argv points into our run dir (every daemon's flags do), even when
# the pid files are gone. Clients that merely name the run dir (a test's
# kubectl --kubeconfig, the test binary calling us) are not touched.
our_daemons() {
  local p exe
  for p in $(pgrep -f -- "$RUN/" || true); do
    [ "$p" = $$ ] && continue
    exe=$(tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | head -1)
    case "${exe##*/}" in
      etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|containerd|containerd-shim*) echo "$p" ;;
    esac
  done
}

kill_stragglers() {
  local p
  for p in $(our_daemons); do
    log "stopping leftover pid $p: $(cmdline "$p" | cut -c1-120)"
    stop_pid "$p"
  done
}

stop_processes() {
  # The kubelet goes first so it cannot restart what we kill next.
  stop_components kubelet
  kill_pods
  kill_shims
  stop_components containerd kube-scheduler kube-controller-manager kube-apiserver etcd
  kill_shims
  kill_stragglers
}

# Pod netns created by the CRI live in /run/netns (containerd 1.6 has no
# setting to move them). Ours are those newer than up.sh's stamp or holding
# an address of our pod CIDR.
remove_netns() {
  local ns prefix="${POD_CIDR%.*}."
  for ns in /run/netns/cni-*; do
    [ -e "$ns" ] || continue
    if { [ -f "$RUN/started" ] && [ "$ns" -nt "$RUN/started" ]; } \
       || ip netns exec "$(basename "$ns")" ip -4 -o addr 2>/dev/null | grep -q " inet $prefix"; then
      log "removing netns $(basename "$ns")"
      ip netns delete "$(basename "$ns")" 2>/dev/null || { umount "$ns" 2>/dev/null; rm -f "$ns"; }
    fi
  done
  if [ -d "$RUN" ] && [ ! -f "$RUN/run-netns.existed" ]; then rmdir /run/netns 2>/dev/null; fi
}

unmount_all() {
  local d
  for d in "$KUBELET_DIR" "$RUN" "$EC2CSI_STATE_DIR"; do
    umount_under "$d"
  done
  # The kubelet's rshared self-bind of /var/lib/kubelet can be stacked if it
  # ran more than once; peel until nothing is mounted there.
  local _
  for _ in 1 2 3 4 5; do
    grep -q " $KUBELET_DIR " /proc/mounts || break
    umount "$KUBELET_DIR" 2>/dev/null || umount -l "$KUBELET_DIR"
  done
}

pod_pids() {
  local d
  for d in $(pod_cgroups); do cat "$d/cgroup.procs" 2>/dev/null; done | sort -u
}

# container_prefixes prints the paths under which running pod containers see
# one of our host dirs (e.g. "/state/" for a hostPath of the state dir),
# read from their mountinfo: a mount of the same device whose root lies in
# our dir.
container_prefixes() {
  local p dev fsroot target rel keys=() pid ns seen=" " mdev mroot mpoint k
  for p in "${LOOP_PREFIXES[@]}"; do
    [ -d "$p" ] || continue
    read -r dev fsroot target < <(findmnt -n -o MAJ:MIN,FSROOT,TARGET -T "$p")
    rel=${p#"$target"}
    keys+=("$dev ${fsroot%/}/${rel#/}")
  done
  [ ${#keys[@]} -gt 0 ] || return 0
  for pid in $(pod_pids); do
    ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || continue
    case "$seen" in *" $ns "*) continue ;; esac
    seen+="$ns "
    while read -r _ _ mdev mroot mpoint _; do
      for k in "${keys[@]}"; do
        [ "$mdev" = "${k%% *}" ] || continue
        case "${mroot%/}/" in "${k#* }"*) echo "${mpoint%/}/" ;; esac
      done
    done < "/proc/$pid/mountinfo"
  done | sort -u
}

# our_loops prints "DEV BACKING" for each loop device backed by a file of
# ours. The host path is not enough: a loop set up inside a container (the
# node plugin) reports its file as the container sees it ("/state/vol1"), and
# once that container is gone, as a bare "/vol1". So a device is also ours
# when its backing device:inode is a file under our dirs, or its path is
# under a container's view of our dirs (this works even for deleted files,
# but only while the container still runs: hence LOOPS_AT_START).
our_loops() {
  local inodes dev majmin ino back p prefixes
  inodes=$(for p in "${LOOP_PREFIXES[@]}"; do
             [ -d "$p" ] && find "$p" -xdev -type f -exec stat -c '%Hd:%Ld %i' {} + 2>/dev/null
           done)
  read -r -a prefixes <<< "${LOOP_PREFIXES[*]} $(container_prefixes | tr '\n' ' ')"
  while read -r dev majmin ino back; do
    [ -n "$dev" ] || continue
    if grep -qx "$majmin $ino" <<< "$inodes"; then echo "$dev $back"; continue; fi
    for p in "${prefixes[@]}"; do
      case "$back" in "$p"*) echo "$dev $back"; break ;; esac
    done
  done < <(losetup -n -l -O NAME,BACK-MAJ:MIN,BACK-INO,BACK-FILE 2>/dev/null)
}

# Recorded before any process is stopped, while paths still resolve.
LOOPS_AT_START=$(our_loops)

detach_loops() {
  local dev back m
  while read -r dev back; do
    [ -n "$dev" ] || continue
    losetup "$dev" >/dev/null 2>&1 || continue
    # A filesystem on the loop device may be mounted somewhere we did not
    # look (e.g. a test's own temp dir); it must go first.
    awk -v d="$dev" '$1 == d {print $2}' /proc/mounts | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m"
    done
    log "detaching $dev ($back)"
    losetup -d "$dev" || log "WARN: could not detach $dev"
  done < <(printf '%s\n%s\n' "$LOOPS_AT_START" "$(our_loops)" | sort -u)
}

# delete_iptables_rules: with ipMasq false the bridge plugin adds none, but a
# crashed run of another config might have; drop any rule naming our bridge,
# CIDR or CNI network, and the CNI chains those rules jumped to.
delete_iptables_rules() {
  local t rule chains=() c
  for t in nat filter mangle; do
    while read -r rule; do
      [ -n "$rule" ] || continue
      c=$(sed -n 's/.* -j \(CNI-[A-Za-z0-9-]*\).*/\1/p' <<< "$rule")
      [ -n "$c" ] && chains+=("$t:$c")
      log "iptables -t $t ${rule/-A/-D}"
      eval "iptables -t $t ${rule/-A/-D}" 2>/dev/null
    done < <(iptables -t "$t" -S 2>/dev/null | grep -E -- "^-A .*(${POD_CIDR%/*}|$BRIDGE|$CNI_NET)" || true)
  done
  for c in "${chains[@]}"; do
    iptables -t "${c%%:*}" -F "${c#*:}" 2>/dev/null
    iptables -t "${c%%:*}" -X "${c#*:}" 2>/dev/null
  done
  # The kubelet's canary chains (makeIPTablesUtilChains is off, but an older
  # config might have made them); only remove ones that were not there before.
  for t in nat filter mangle; do
    for c in KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-FIREWALL; do
      iptables -t "$t" -S "$c" >/dev/null 2>&1 || continue
      grep -q -- "-N $c\$" "$RUN/iptables.before" 2>/dev/null && continue
      [ -f "$RUN/iptables.before" ] || continue
      iptables -t "$t" -F "$c" 2>/dev/null; iptables -t "$t" -X "$c" 2>/dev/null
    done
  done
}

remove_network() {
  remove_netns
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    log "deleting bridge $BRIDGE"
    ip link delete "$BRIDGE"
  fi
  ip link show ec2csie2e-node >/dev/null 2>&1 && ip link delete ec2csie2e-node
  delete_iptables_rules
  if [ -f "$RUN/ip_forward.orig" ]; then
    # The bridge plugin's isGateway turns forwarding on; put it back.
    cat "$RUN/ip_forward.orig" > /proc/sys/net/ipv4/ip_forward
  fi
  # libcni caches results in /var/lib/cni whatever the config says: ours are
  # the entries of our network and the loopback entries of the same
  # sandboxes.
  local f id
  for f in /var/lib/cni/results/"$CNI_NET"-*; do
    [ -e "$f" ] || continue
    id=${f#/var/lib/cni/results/"$CNI_NET"-}; id=${id%-*}
    rm -f "$f" /var/lib/cni/results/cni-loopback-"$id"-*
  done
  rm -rf /var/lib/cni/networks/"$CNI_NET"
  rmdir /var/lib/cni/results /var/lib/cni/networks /var/lib/cni 2>/dev/null
}

restore_hosts() {
  grep -q "$HOSTS_MARK\$" /etc/hosts || return 0
  # In place (not mv): /etc/hosts can be a bind mount. The saved copy is
  # put back byte for byte unless someone else changed the file meanwhile;
  # then only our line goes.
  if [ -f "$RUN/hosts.orig" ] && [ "$(grep -v "$HOSTS_MARK\$" /etc/hosts)" = "$(cat "$RUN/hosts.orig")" ]; then
    cat "$RUN/hosts.orig" > /etc/hosts
  else
    local tmp; tmp=$(grep -v "$HOSTS_MARK\$" /etc/hosts)
    printf '%s\n' "$tmp" > /etc/hosts
  fi
  log "removed $NODE_NAME from /etc/hosts"
}

remove_cgroups() {
  local d
  for d in $(pod_cgroups); do rmdir "$d" 2>/dev/null; done
}

remove_files() {
  local f
  # Legacy /var/log/containers symlinks point into our podLogsDir.
  for f in /var/log/containers/*.log; do
    [ -L "$f" ] && case "$(readlink "$f")" in "$RUN"/*) rm -f "$f" ;; esac
  done
  rmdir /var/log/containers 2>/dev/null
  # Older configs let kubelet/controller-manager create the flexvolume dir.
  if [ -f "$RUN/started" ] && [ /usr/libexec/kubernetes -nt "$RUN/started" ]; then
    rmdir /usr/libexec/kubernetes/kubelet-plugins/volume/exec /usr/libexec/kubernetes/kubelet-plugins/volume \
      /usr/libexec/kubernetes/kubelet-plugins /usr/libexec/kubernetes 2>/dev/null
  fi
  if [ -d /run/containerd ]; then
    if [ -f "$RUN/run-containerd.existed" ]; then
      # Shared with someone else's containerd: only drop sockets our shims
      # left (they are newer than our start stamp and nobody listens on them).
      [ -f "$RUN/started" ] && find /run/containerd/s -type s -newer "$RUN/started" -delete 2>/dev/null
    elif [ -d "$RUN" ]; then
      rm -rf /run/containerd
    fi
  fi
  if [ -d "$RUN/logs" ]; then
    # Keep the last run's logs for post-mortems; the cache dir is the one
    # place we are allowed to leave things.
    rm -rf "$CACHE/last-run-logs"
    mkdir -p "$CACHE"
    cp -a "$RUN/logs" "$CACHE/last-run-logs" 2>/dev/null
  fi
  grep -q " $KUBELET_DIR" /proc/mounts || rm -rf "$KUBELET_DIR"
  grep -q " $RUN" /proc/mounts || rm -rf "$RUN"
  grep -q " $EC2CSI_STATE_DIR" /proc/mounts || rm -rf "$EC2CSI_STATE_DIR"
}

verify() {
  local bad=0 x p
  x=$(awk '{print $2}' /proc/mounts | grep -E "^($KUBELET_DIR|$RUN|$EC2CSI_STATE_DIR)(/|$)|^/run/netns/cni-" || true)
  [ -n "$x" ] && { log "LEFT: mounts: $x"; bad=1; }
  x=$(our_loops)
  [ -n "$x" ] && { log "LEFT: loop devices: $x"; bad=1; }
  while read -r x _; do
    [ -n "$x" ] && losetup "$x" >/dev/null 2>&1 && { log "LEFT: loop device $x"; bad=1; }
  done <<< "$LOOPS_AT_START"
  x=$(our_daemons)
  [ -n "$x" ] && { log "LEFT: processes: $x"; bad=1; }
  ip link show "$BRIDGE" >/dev/null 2>&1 && { log "LEFT: bridge $BRIDGE"; bad=1; }
  x=$(pod_cgroups)
  [ -n "$x" ] && { log "LEFT: cgroups: $(echo "$x" | head -3)"; bad=1; }
  grep -q "$HOSTS_MARK\$" /etc/hosts && { log "LEFT: /etc/hosts entry"; bad=1; }
  [ -e "$RUN" ] && { log "LEFT: $RUN"; bad=1; }
  [ -e "$KUBELET_DIR" ] && { log "LEFT: $KUBELET_DIR"; bad=1; }
  return "$bad"
}

step "stop processes" stop_processes
step "detach loop devices" detach_loops
step "unmount" unmount_all
step "network" remove_network
step "/etc/hosts" restore_hosts
step "cgroups" remove_cgroups
step "files" remove_files
if verify; then
  log "down in $(( $(date +%s) - T_DOWN ))s: nothing left behind"
else
  die "down left things behind (see LEFT: lines)"
fi
