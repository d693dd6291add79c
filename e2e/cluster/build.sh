#!/usr/bin/env bash
# Everything the cluster needs, built or fetched once into $EC2CSI_E2E_CACHE
# (default /var/cache/ec2csi-e2e). Each part skips work that is already
# cached, so a warm run takes a few seconds.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_root
T0=$(date +%s)
step "Debian packages" "$E2E_CLUSTER_DIR/deps.sh"
step "kubernetes $K8S_VERSION" "$E2E_CLUSTER_DIR/build-k8s.sh"
step "CSI sidecars" "$E2E_CLUSTER_DIR/build-sidecars.sh"
step "images" "$E2E_CLUSTER_DIR/build-images.sh"
log "build complete in $(( $(date +%s) - T0 ))s; cache: $CACHE ($(du -sh "$CACHE" 2>/dev/null | cut -f1))"
