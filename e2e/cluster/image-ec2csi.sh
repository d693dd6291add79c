#!/usr/bin/env bash
# Usage: image-ec2csi.sh BINARY OUT.tar TAG
# Layers an ec2csi binary (as /usr/local/bin/ec2csi, the entrypoint) on the
# cached Debian base rootfs and writes an importable docker-archive. The base
# layer is shared, so only the small binary layer differs between builds.
# Import it with up.sh via EC2CSI_E2E_IMAGES=OUT.tar, or on a running cluster:
#   ctr --address $CONTAINERD_SOCK -n k8s.io images import OUT.tar
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=image-lib.sh
. "$E2E_CLUSTER_DIR/image-lib.sh"

[ $# -eq 3 ] || die "usage: $0 BINARY OUT.tar TAG"
BINARY=$1 OUT=$2 TAG=$3
[ -f "$BINARY" ] || die "no binary at $BINARY"
# A cgo binary would need the rootfs's libc to match the build host's; the
# base is Debian bookworm, like this machine, but static is safest.
file_out=$(file -b "$BINARY" 2>/dev/null || true)
case "$file_out" in *dynamically*) log "note: $BINARY is dynamically linked; it must match Debian $DEBIAN_SUITE's libc" ;; esac

BASE="$CACHE/rootfs/ec2csi-base.layer.tar"
if [ ! -f "$BASE" ]; then
  log "base rootfs not cached yet: building it"
  "$E2E_CLUSTER_DIR/build-images.sh" rootfs
fi
BASE=$(readlink -f "$BASE")

OUT_DIR=$(cd "$(dirname "$OUT")" && pwd)
W=$(mktemp -d "$OUT_DIR/.ec2csi-image.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/root/usr/local/bin"
install -m 0755 "$BINARY" "$W/root/usr/local/bin/ec2csi"
make_layer "$W/root" "$W/bin.layer.tar" --root-owner
docker_archive "$OUT_DIR/$(basename "$OUT")" "$TAG" '["/usr/local/bin/ec2csi"]' null "$BASE" "$W/bin.layer.tar"
log "wrote $OUT ($TAG, $(du -h "$OUT" | cut -f1))"
