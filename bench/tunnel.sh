#!/usr/bin/env bash
# bench/tunnel.sh: the in-process EFS TLS tunnel against a stunnel client,
# side by side in one run, through the shared TLS peer rig
# (../shared/lab/tls/rig.sh: haproxy terminating TLS in front of iperf3).
#
# Prints key=value lines: medians of REPS (default 3) repetitions of 5 s
# iperf3 runs in each direction, CPU seconds of each tunnel process per GiB
# moved, the resident memory of idle tunnels in one daemon, and
# NodePublishVolume latency with TLS against bind only (bench/publish-tls.sh).
#
#   bench/tunnel.sh            RIG=/path/to/rig.sh REPS=5 bench/tunnel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RIG=${RIG:-$ROOT/../shared/lab/tls/rig.sh}
[[ -f $RIG ]] || RIG=/work/shared/lab/tls/rig.sh
REPS=${REPS:-3}
# Ports of our own so a rig someone else left up does not get in the way.
export RIG_TLS_PORT=${RIG_TLS_PORT:-12149} RIG_IPERF_PORT=${RIG_IPERF_PORT:-15301}
OURS_PORT=${OURS_PORT:-20149} STUNNEL_PORT=${STUNNEL_PORT:-20150}
NAME=fs-12345678.efs.us-east-1.amazonaws.com
TCK=$(getconf CLK_TCK)

W=$(mktemp -d /tmp/tunnel-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$RIG" down "$W/rig" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

log() { echo "# $*" >&2; }

log "building"
go build -o "$W/ec2csi" ./cmd/ec2csi
go build -o "$W/idle" ./bench/tunnel/idle

log "rig up"
bash "$RIG" up "$W/rig" >&2
"$W/ec2csi" tunnel --listen "127.0.0.1:$OURS_PORT" --target "127.0.0.1:$RIG_TLS_PORT" \
  --server-name "$NAME" --ca "$W/rig/ca.pem" --fs-id fs-12345678 --state-dir "$W/state" \
  2>"$W/ours.log" &
ours_pid=$!
pids+=("$ours_pid")
bash "$RIG" stunnel "$W/rig" "$STUNNEL_PORT"
stunnel_pid=$(cat "$W/rig/stunnel-$STUNNEL_PORT.pid")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$OURS_PORT") 2>/dev/null && break
  sleep 0.1
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run WHO PORT PID DIRFLAG: one 5 s iperf3; appends "gbps cpu_s gib" to W/WHO-DIR.
run() {
  local who=$1 port=$2 pid=$3 flag=$4 dir=fwd
  [[ $flag == -R ]] && dir=rev
  local before after gbps
  before=$([[ $pid == - ]] && echo 0 || cpu_ticks "$pid")
  # shellcheck disable=SC2086
  gbps=$(bash "$RIG" iperf "$port" $flag)
  after=$([[ $pid == - ]] && echo 0 || cpu_ticks "$pid")
  python3 -c "import sys; g=$gbps; print(g, ($after-$before)/$TCK, g*5/8/1.073741824)" >>"$W/$who-$dir"
  log "$who $dir rep: $gbps Gbit/s, $(( after - before )) ticks"
}

for rep in $(seq "$REPS"); do
  for flag in "" -R; do
    # Order rotates each repetition so no side always runs first.
    case $(( rep % 3 )) in
      1) order="ours stunnel direct" ;;
      2) order="stunnel direct ours" ;;
      0) order="direct ours stunnel" ;;
    esac
    for who in $order; do
      case $who in
        ours) run ours "$OURS_PORT" "$ours_pid" "$flag" ;;
        stunnel) run stunnel "$STUNNEL_PORT" "$stunnel_pid" "$flag" ;;
        direct) run direct "$RIG_IPERF_PORT" - "$flag" ;;
      esac
    done
  done
done

col() { awk -v c="$2" '{print $c}' "$W/$1" | median; }
# cpu_per_gib WHO DIR: median over repetitions of CPU seconds / GiB.
cpu_per_gib() { awk '{print $2/$3}' "$W/$1-$2" | median; }
# Both directions together, per repetition: (cpu fwd + cpu rev) / (GiB fwd + GiB rev).
cpu_per_gib_both() { paste "$W/$1-fwd" "$W/$1-rev" | awk '{print ($2+$5)/($3+$6)}' | median; }

for who in ours stunnel direct; do
  for dir in fwd rev; do
    printf '%s_gbps_%s=%s\n' "$who" "$dir" "$(col "$who-$dir" 1)"
  done
done | sed 's/^ours_/tunnel_/'
for who in ours stunnel; do
  for dir in fwd rev; do
    printf '%s_cpu_s_per_gib_%s=%.3f\n' "$who" "$dir" "$(cpu_per_gib "$who" "$dir")"
  done
  printf '%s_cpu_s_per_gib=%.3f\n' "$who" "$(cpu_per_gib_both "$who")"
done | sed 's/^ours_/tunnel_/'

python3 - "$W" <<'PY'
import statistics, sys
w = sys.argv[1]
def rows(name):
    return [list(map(float, l.split())) for l in open(f"{w}/{name}")]
def med(xs):
    return statistics.median(xs)
def both_rate(who):
    # mean of the two directions' medians: one number for "throughput"
    return (med([r[0] for r in rows(f"{who}-fwd")]) + med([r[0] for r in rows(f"{who}-rev")])) / 2
def both_cpu(who):
    f, r = rows(f"{who}-fwd"), rows(f"{who}-rev")
    return med([(a[1] + b[1]) / (a[2] + b[2]) for a, b in zip(f, r)])
print("tunnel_cpu_per_gib_ratio_vs_stunnel=%.3f" % (both_cpu("ours") / both_cpu("stunnel")))
for d in ("fwd", "rev"):
    o = med([r[1] / r[2] for r in rows(f"ours-{d}")]); s = med([r[1] / r[2] for r in rows(f"stunnel-{d}")])
    print("tunnel_cpu_per_gib_ratio_vs_stunnel_%s=%.3f" % (d, o / s))
print("tunnel_throughput_ratio_vs_stunnel=%.3f" % (both_rate("ours") / both_rate("stunnel")))
for d in ("fwd", "rev"):
    print("tunnel_throughput_ratio_vs_stunnel_%s=%.3f" % (d, med([r[0] for r in rows(f"ours-{d}")]) / med([r[0] for r in rows(f"stunnel-{d}")])))
print("tunnel_throughput_ratio_vs_direct=%.3f" % (both_rate("ours") / both_rate("direct")))
PY

# Memory: one stunnel process per tunnel upstream, against idle tunnels in
# one daemon.
(exec 3<>"/dev/tcp/127.0.0.1/$STUNNEL_PORT"; sleep 3) &
holder=$!
sleep 1.5
echo "stunnel_rss_kib_per_tunnel_process=$(awk '/^VmRSS:/ {print $2}' "/proc/$stunnel_pid/status")"
wait "$holder"

log "idle tunnels"
"$W/ec2csi" tunnel-daemon --state-dir "$W/dstate" --port-range 23100-23399 2>"$W/daemon.log" &
daemon_pid=$!
pids+=("$daemon_pid")
"$W/idle" -socket "$W/dstate/tunnel.sock" -pid "$daemon_pid" -n 100 -dir "$W"

log "NodePublishVolume with TLS on the local backend"
bash bench/publish-tls.sh
echo "reps=$REPS"
