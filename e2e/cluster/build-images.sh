#!/usr/bin/env bash
# Builds every container image the cluster imports, as docker-archive tarballs
# in $CACHE/images, plus the ec2csi base rootfs layer that image-ec2csi.sh
# builds on. Needs build-sidecars.sh to have run. Warm runs only stat files.
# `build-images.sh rootfs` builds only the ec2csi base rootfs.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=image-lib.sh
. "$E2E_CLUSTER_DIR/image-lib.sh"
need_root

mkdir -p "$IMAGES" "$CACHE/rootfs"
WORK="$CACHE/images/.work"

# The packages a node plugin needs to format, grow, probe and mount volumes.
# The rootfs cache key is derived from this list, so editing it rebuilds.
ROOTFS_PACKAGES=(mount util-linux e2fsprogs xfsprogs btrfs-progs ca-certificates)
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOTFS_KEY=$(printf '%s\n' "$DEBIAN_SUITE" "${ROOTFS_PACKAGES[@]}" | sha256sum | cut -c1-12)
ROOTFS_LAYER="$CACHE/rootfs/ec2csi-base-$DEBIAN_SUITE-$ROOTFS_KEY.layer.tar"

fresh_work() { rm -rf "${WORK:?}/$1"; mkdir -p "$WORK/$1"; echo "$WORK/$1"; }

pause_image() {
  local out="$IMAGES/pause-$PAUSE_VERSION.tar"
  [ -f "$out" ] && { log "pause image cached"; return 0; }
  local src w
  # pause.c ships in the kubernetes module we already downloaded for
  # build-k8s.sh; using it keeps the sandbox identical to upstream's.
  src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/build/pause/linux/pause.c
  [ -f "$src" ] || die "pause.c not found at $src"
  w=$(fresh_work pause)
  mkdir -p "$w/root"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-ec2csi" -o "$w/root/pause" "$src"
  make_layer "$w/root" "$w/layer.tar" --root-owner
  docker_archive "$out" "$PAUSE_IMAGE" '["/pause"]' null "$w/layer.tar"
  rm -rf "$w"
}

busybox_image() {
  local out="$IMAGES/busybox.tar"
  [ -f "$out" ] && { log "busybox image cached"; return 0; }
  local w r a
  w=$(fresh_work busybox); r="$w/root"
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root"
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list-full); do
    [ "$a" = bin/busybox ] && continue
    mkdir -p "$r/$(dirname "$a")"
    ln -sf /bin/busybox "$r/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
  make_layer "$r" "$w/layer.tar" --root-owner
  docker_archive "$out" "$BUSYBOX_IMAGE" null '["/bin/sh"]' "$w/layer.tar"
  rm -rf "$w"
}

# sidecar_image BINARY TAG: the sidecars are static Go binaries; upstream
# images are distroless with the binary at /, so ours match that entrypoint.
sidecar_image() {
  local bin=$1 tag=$2 name out w
  name=$(basename "$bin")
  out="$IMAGES/$name.tar"
  [ -x "$SIDECAR_BIN/$name" ] || die "$SIDECAR_BIN/$name missing: run build-sidecars.sh"
  # A rebuilt binary (new recipe) must not hide behind an old image.
  if [ -f "$out" ] && [ ! "$SIDECAR_BIN/$name" -nt "$out" ]; then log "$name image cached"; return 0; fi
  w=$(fresh_work "$name")
  mkdir -p "$w/root/tmp"; chmod 1777 "$w/root/tmp"
  cp "$SIDECAR_BIN/$name" "$w/root/${name%-v*}"
  make_layer "$w/root" "$w/layer.tar" --root-owner
  docker_archive "$out" "$tag" "$(json_array "/${name%-v*}")" null "$w/layer.tar"
  rm -rf "$w"
}

rootfs_layer() {
  [ -f "$ROOTFS_LAYER" ] && { log "ec2csi base rootfs cached ($ROOTFS_LAYER)"; return 0; }
  local w r
  w=$(fresh_work rootfs); r="$w/root"
  # debootstrap mounts proc/sys in the target; an interrupted run would
  # otherwise leave them behind.
  trap 'umount_under "$WORK/rootfs"' EXIT
  local inc; inc=$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")
  debootstrap --variant=minbase --include="$inc" "$DEBIAN_SUITE" "$r" "$DEBIAN_MIRROR" \
    > "$w/debootstrap.log" 2>&1 || { tail -30 "$w/debootstrap.log" >&2; die "debootstrap failed"; }
  umount_under "$r"
  trap - EXIT
  local t
  for t in losetup blkid mount umount mkfs.ext4 resize2fs mkfs.xfs xfs_growfs mkfs.btrfs findmnt; do
    chroot "$r" sh -c "command -v $t" >/dev/null || die "rootfs lacks $t"
  done
  # Trim what a node plugin never reads; the runtime supplies /dev.
  rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* \
    "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/var/log/* "${r:?}"/dev/* "$r"/tmp/*
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  make_layer "$r" "$ROOTFS_LAYER"
  log "rootfs layer $(du -h "$ROOTFS_LAYER" | cut -f1) at $ROOTFS_LAYER"
  rm -rf "$w"
}

# Stable names for image-ec2csi.sh, whatever the current key is.
link_rootfs() {
  ln -sfn "$(basename "$ROOTFS_LAYER")" "$CACHE/rootfs/ec2csi-base.layer.tar"
  ln -sfn "$(basename "$ROOTFS_LAYER").sha256" "$CACHE/rootfs/ec2csi-base.layer.tar.sha256"
}

if [ "${1:-}" = rootfs ]; then
  step "ec2csi base rootfs (debootstrap $DEBIAN_SUITE minbase)" rootfs_layer
  link_rootfs
  exit 0
fi

step "pause image" pause_image
step "busybox image" busybox_image
step "ec2csi base rootfs (debootstrap $DEBIAN_SUITE minbase)" rootfs_layer
link_rootfs
step "csi-provisioner image" sidecar_image "csi-provisioner-$PROVISIONER_VERSION" "$PROVISIONER_IMAGE"
step "csi-attacher image" sidecar_image "csi-attacher-$ATTACHER_VERSION" "$ATTACHER_IMAGE"
step "csi-resizer image" sidecar_image "csi-resizer-$RESIZER_VERSION" "$RESIZER_IMAGE"
step "csi-snapshotter image" sidecar_image "csi-snapshotter-$SNAPSHOTTER_VERSION" "$SNAPSHOTTER_IMAGE"
step "snapshot-controller image" sidecar_image "snapshot-controller-$SNAPSHOTTER_VERSION" "$SNAPSHOT_CONTROLLER_IMAGE"
