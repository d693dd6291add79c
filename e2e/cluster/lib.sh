# shellcheck shell=bash
# Shared settings and helpers for the e2e cluster scripts. Sourced, never run.
# The variables are read by the scripts that source this file:
# shellcheck disable=SC2034

# Versions are pinned here and nowhere else so a cache key changes whenever a
# version does.
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
# Staging modules of kubernetes are published as v0.<minor>.<patch>.
K8S_STAGING_VERSION="v0${K8S_VERSION#v1}"
PROVISIONER_VERSION="${PROVISIONER_VERSION:-v6.4.0}"
ATTACHER_VERSION="${ATTACHER_VERSION:-v4.13.0}"
RESIZER_VERSION="${RESIZER_VERSION:-v2.3.0}"
SNAPSHOTTER_VERSION="${SNAPSHOTTER_VERSION:-v8.6.0}"
PAUSE_VERSION="${PAUSE_VERSION:-3.10.1}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"

E2E_CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E_REPO_ROOT="$(cd "$E2E_CLUSTER_DIR/../.." && pwd)"

# All paths are canonical (no symlinks, e.g. /var/run -> /run): they are
# compared against /proc/mounts and losetup output, which show real paths.
CACHE=$(readlink -m "${EC2CSI_E2E_CACHE:-/var/cache/ec2csi-e2e}")
RUN=$(readlink -m "${EC2CSI_E2E_RUN:-/run/ec2csi-e2e}")
# The directory the ec2csi local backend keeps its sparse files in during e2e;
# down.sh detaches loop devices backed by files under it.
EC2CSI_STATE_DIR=$(readlink -m "${EC2CSI_E2E_STATE_DIR:-/var/lib/ec2csi-e2e}")
KUBELET_DIR=$(readlink -m /var/lib/kubelet)

K8S_BIN="$CACHE/k8s/$K8S_VERSION/bin"
SIDECAR_BIN="$CACHE/sidecars/bin"
IMAGES="$CACHE/images"

# Image tags produced by build-images.sh; the e2e manifests must use these with
# imagePullPolicy: Never or IfNotPresent.
PAUSE_IMAGE="registry.k8s.io/pause:$PAUSE_VERSION"
BUSYBOX_IMAGE="ec2csi.local/busybox:e2e"
PROVISIONER_IMAGE="ec2csi.local/csi-provisioner:$PROVISIONER_VERSION"
ATTACHER_IMAGE="ec2csi.local/csi-attacher:$ATTACHER_VERSION"
RESIZER_IMAGE="ec2csi.local/csi-resizer:$RESIZER_VERSION"
SNAPSHOTTER_IMAGE="ec2csi.local/csi-snapshotter:$SNAPSHOTTER_VERSION"
SNAPSHOT_CONTROLLER_IMAGE="ec2csi.local/snapshot-controller:$SNAPSHOTTER_VERSION"

export GOTOOLCHAIN=local
export PATH="$K8S_BIN:/usr/sbin:/sbin:$PATH:/usr/local/go/bin"

E2E_SCRIPT="${E2E_SCRIPT:-$(basename "$0" .sh)}"
_e2e_t0=$(date +%s)
log() { printf '%s [%s +%ss] %s\n' "$(date +%H:%M:%S)" "${E2E_SCRIPT:-e2e}" "$(( $(date +%s) - _e2e_t0 ))" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# step NAME CMD... runs CMD and logs how long it took, so slow steps are easy
# to spot in CI output.
step() {
  local name=$1; shift
  local s; s=$(date +%s)
  log "==> $name"
  "$@"
  log "<== $name ($(( $(date +%s) - s ))s)"
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# is_done STAMP RECIPE / mark_done STAMP RECIPE: a stamp written last marks a
# cache entry complete (an interrupted build is redone, not trusted) and
# records how it was built, so changing the recipe rebuilds it.
is_done() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
mark_done() { printf '%s' "$2" > "$1"; }

# go_build runs go with the settings every binary here is built with;
# $GO_LDFLAGS_EXTRA adds version stamps.
go_build() {
  CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags="-s -w ${GO_LDFLAGS_EXTRA:-}" "$@"
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT (or any addr).
port_free() {
  ! ss -Htln "( sport = :$1 )" 2>/dev/null | grep -q .
}

# umount_under DIR unmounts every mount point at or below DIR, deepest first,
# so nested mounts (kubelet pod volumes, debootstrap's proc) come off cleanly.
umount_under() {
  local d=${1%/} m
  awk '{print $2}' /proc/mounts | while read -r m; do
    m=$(printf '%b' "$m")   # /proc/mounts escapes spaces as \040
    case "$m" in "$d"|"$d"/*) echo "$m" ;; esac
  done | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "WARN: could not unmount $m"
  done
}
