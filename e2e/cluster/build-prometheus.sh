#!/usr/bin/env bash
# Builds Prometheus from the Go module proxy (the real thing, for the
# end-to-end suite's StatefulSet scenario) and packs it with busybox (for
# `wget` queries from inside the pod) into a docker-archive in the image
# cache, which up.sh imports. Cached: a warm run does nothing.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=image-lib.sh
. "$E2E_CLUSTER_DIR/image-lib.sh"

# v0.316.0 is the module version of a Prometheus 3 release.
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
PROMETHEUS_IMAGE="ec2csi.local/prometheus:e2e"
bin="$CACHE/prometheus/$PROMETHEUS_VERSION/bin/prometheus"
out="$IMAGES/prometheus-$PROMETHEUS_VERSION.tar"

if [ ! -x "$bin" ]; then
  log "building prometheus $PROMETHEUS_VERSION from the Go module proxy (a few minutes, once)"
  mkdir -p "$(dirname "$bin")"
  GOBIN="$(dirname "$bin")" CGO_ENABLED=0 GOFLAGS=-mod=mod \
    go install -trimpath -ldflags=-s\ -w "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
fi
if [ -f "$out" ] && [ ! "$bin" -nt "$out" ]; then
  log "prometheus image cached"
  exit 0
fi
mkdir -p "$IMAGES"
w=$(mktemp -d "$CACHE/.prometheus-image.XXXXXX")
trap 'rm -rf "$w"' EXIT
r="$w/root"
mkdir -p "$r/bin" "$r/etc/prometheus" "$r/prometheus" "$r/tmp"
chmod 1777 "$r/tmp"
cp /bin/busybox "$r/bin/busybox"
for a in sh wget cat ls; do ln -sf /bin/busybox "$r/bin/$a"; done
install -m 0755 "$bin" "$r/bin/prometheus"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
make_layer "$r" "$w/layer.tar" --root-owner
docker_archive "$out" "$PROMETHEUS_IMAGE" '["/bin/prometheus"]' null "$w/layer.tar"
log "wrote $out ($PROMETHEUS_IMAGE)"
