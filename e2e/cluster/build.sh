#!/usr/bin/env bash
# Everything the cluster needs, built or fetched once into $EC2CSI_E2E_CACHE
# (default /var/cache/ec2csi-e2e). Each part skips work that is already
# cached, so a warm run takes about a second.
#
# Cold, the Go builds dominate (tens of minutes on 2 cores). The kubernetes
# build, the sidecar builds and debootstrap run side by side: much of a cold
# build is module downloads and debootstrap's package fetches, which overlap
# well with compiling. Each writes its own log in $CACHE/logs.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_root
T0=$(date +%s)
LOGDIR="$CACHE/logs"
mkdir -p "$LOGDIR"

step "Debian packages" "$E2E_CLUSTER_DIR/deps.sh"

declare -A JOBS=()
bg() {
  local name=$1; shift
  "$@" > "$LOGDIR/$name.log" 2>&1 &
  JOBS[$name]=$!
}
bg build-k8s "$E2E_CLUSTER_DIR/build-k8s.sh"
bg build-sidecars "$E2E_CLUSTER_DIR/build-sidecars.sh"
bg build-rootfs "$E2E_CLUSTER_DIR/build-images.sh" rootfs

failed=0
for name in build-k8s build-sidecars build-rootfs; do
  if wait "${JOBS[$name]}"; then
    grep -E '<==|already|cached|manifests in' "$LOGDIR/$name.log" >&2 || true
  else
    log "$name FAILED; last lines of $LOGDIR/$name.log:"
    tail -30 "$LOGDIR/$name.log" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || die "build failed"

step "images" "$E2E_CLUSTER_DIR/build-images.sh"
log "build complete in $(( $(date +%s) - T0 ))s; cache: $CACHE ($(du -sh "$CACHE" 2>/dev/null | cut -f1))"
