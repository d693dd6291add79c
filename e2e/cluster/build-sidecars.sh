#!/usr/bin/env bash
# Builds the CSI sidecars from their Go modules into the cache, and copies the
# snapshot CRDs and the upstream RBAC manifests next to them.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

SRC="$CACHE/sidecars/src"
mkdir -p "$SRC" "$SIDECAR_BIN"

# mod_dir MOD@VER prints the module's directory in the module cache.
mod_dir() {
  local d
  d=$(cd "$SRC" && GOFLAGS=-mod=mod go mod download -json "$1" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$d" ] || die "go mod download $1 failed"
  echo "$d"
}

# copy_module MOD@VER DEST: the sidecars' go.mod files carry replace
# directives, so they can't be `go install`ed; build inside a writable copy.
copy_module() {
  rm -rf "$2.tmp"
  cp -a "$(mod_dir "$1")" "$2.tmp"
  chmod -R u+w "$2.tmp"
}

# build_sidecar NAME MOD VER CMD... builds ./cmd/CMD for each CMD; a stamp per
# NAME-VER keeps warm runs free.
build_sidecar() {
  local name=$1 mod=$2 ver=$3; shift 3
  local stamp="$CACHE/sidecars/$name-$ver.done" c
  # Bump when the build recipe (flags, stamping) changes.
  local recipe="$mod@$ver $* ldflags-main.version-v1"
  if is_done "$stamp" "$recipe"; then
    for c in "$@"; do [ -x "$SIDECAR_BIN/$c-$ver" ] || { rm -f "$stamp"; break; }; done
  fi
  if is_done "$stamp" "$recipe"; then log "$name $ver already built"; return 0; fi

  local dir="$SRC/$name-$ver"
  if [ ! -f "$dir/go.mod" ]; then
    copy_module "$mod@$ver" "$dir"
    if [ "$name" = external-snapshotter ]; then
      # go.mod says `replace …/client/v8 => ./client`, but a nested module is
      # never inside its parent's zip: fetch it at the same version.
      rm -rf "$dir.tmp/client"
      cp -a "$(mod_dir "github.com/kubernetes-csi/external-snapshotter/client/v8@$ver")" "$dir.tmp/client"
      chmod -R u+w "$dir.tmp/client"
    fi
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  local pkgs=()
  for c in "$@"; do pkgs+=("./cmd/$c"); done
  local out="$CACHE/sidecars/tmp-$name-$ver"
  rm -rf "$out"; mkdir -p "$out"
  # main.version is what each sidecar logs and serves as its version, like
  # the upstream release images.
  (cd "$dir" && GO_LDFLAGS_EXTRA="-X main.version=$ver" go_build -o "$out/" "${pkgs[@]}")
  for c in "$@"; do
    [ -x "$out/$c" ] || die "missing $c after build"
    mv "$out/$c" "$SIDECAR_BIN/$c-$ver"
  done
  rmdir "$out"
  mark_done "$stamp" "$recipe"
}

# Manifests the lead needs to install a driver: snapshot CRDs from the client
# module and each sidecar's upstream RBAC, copied out of the built sources.
copy_manifests() {
  local m="$CACHE/manifests"
  local crd="$SRC/external-snapshotter-$SNAPSHOTTER_VERSION/client/config/crd"
  [ -d "$crd" ] || die "no CRDs at $crd"
  mkdir -p "$m/snapshot-crds" "$m/rbac"
  cp "$crd"/snapshot.storage.k8s.io_*.yaml "$m/snapshot-crds/"
  cp "$SRC/external-provisioner-$PROVISIONER_VERSION/deploy/kubernetes/rbac.yaml" "$m/rbac/csi-provisioner.yaml"
  cp "$SRC/external-attacher-$ATTACHER_VERSION/deploy/kubernetes/rbac.yaml" "$m/rbac/csi-attacher.yaml"
  cp "$SRC/external-resizer-$RESIZER_VERSION/deploy/kubernetes/rbac.yaml" "$m/rbac/csi-resizer.yaml"
  local snap="$SRC/external-snapshotter-$SNAPSHOTTER_VERSION/deploy/kubernetes"
  cp "$snap/csi-snapshotter/rbac-csi-snapshotter.yaml" "$m/rbac/csi-snapshotter.yaml"
  cp "$snap/snapshot-controller/rbac-snapshot-controller.yaml" "$m/rbac/snapshot-controller.yaml"
  log "manifests in $m: $(cd "$m" && find . -name '*.yaml' | sort | tr '\n' ' ')"
}

K=github.com/kubernetes-csi
step "external-attacher $ATTACHER_VERSION" build_sidecar external-attacher "$K/external-attacher/v4" "$ATTACHER_VERSION" csi-attacher
step "external-resizer $RESIZER_VERSION" build_sidecar external-resizer "$K/external-resizer/v2" "$RESIZER_VERSION" csi-resizer
step "external-snapshotter $SNAPSHOTTER_VERSION" build_sidecar external-snapshotter "$K/external-snapshotter/v8" "$SNAPSHOTTER_VERSION" csi-snapshotter snapshot-controller
step "external-provisioner $PROVISIONER_VERSION" build_sidecar external-provisioner "$K/external-provisioner/v6" "$PROVISIONER_VERSION" csi-provisioner
step "snapshot CRDs and RBAC" copy_manifests
