#!/usr/bin/env bash
# The end-to-end suite (`make e2e`): a real single-node Kubernetes built from
# source on this machine (e2e/cluster), ec2csi installed by its Helm chart on
# the local backend, and the scenarios in e2e/*_test.go with real pods.
# Everything is torn down afterwards, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "e2e: run as root" >&2; exit 1; }
start=$(date +%s)
out=_output/e2e
mkdir -p "$out"

log() { printf '[e2e %4ds] %s\n' $(($(date +%s) - start)) "$*" >&2; }

log "building ec2csi and its image"
CGO_ENABLED=0 go build -trimpath -o "$out/ec2csi" ./cmd/ec2csi
e2e/cluster/image-ec2csi.sh "$out/ec2csi" "$out/ec2csi.tar" ec2csi.local/ec2csi:e2e >&2

# Real Prometheus for the StatefulSet scenario (built once, cached).
e2e/cluster/build-prometheus.sh

gobin=$(go env GOPATH)/bin
if ! command -v helm >/dev/null && [[ ! -x $gobin/helm ]]; then
  log "building helm from the Go module proxy (once)"
  GOFLAGS=-mod=mod go install helm.sh/helm/v3/cmd/helm@v3.22.0
fi
export PATH=$PATH:$gobin

cleanup() {
  rc=$?
  if [[ -n ${KUBECONFIG:-} && $rc != 0 ]]; then
    log "failure: collecting the driver's logs in $out/logs"
    mkdir -p "$out/logs"
    for p in $("$KUBECTL" -n kube-system get pods -l app.kubernetes.io/name=ec2csi -o name 2>/dev/null); do
      "$KUBECTL" -n kube-system logs "$p" --all-containers --prefix >"$out/logs/${p#pod/}.log" 2>&1 || true
    done
  fi
  log "tearing the cluster down"
  e2e/cluster/down.sh >&2 || rc=1
  log "done in $(($(date +%s) - start)) s"
  exit $rc
}
trap cleanup EXIT

log "bringing the cluster up"
up_start=$(date +%s)
EC2CSI_E2E_IMAGES="$out/ec2csi.tar" e2e/cluster/up.sh >/dev/null
log "cluster up in $(($(date +%s) - up_start)) s"
# shellcheck disable=SC1091
source "${EC2CSI_E2E_RUN:-/run/ec2csi-e2e}/cluster.env"
export KUBECONFIG KUBECTL
state=${EC2CSI_E2E_STATE_DIR:-/var/lib/ec2csi-e2e}

log "making the local EFS file system and installing the chart"
fs=$("$out/ec2csi" local create-filesystem --state-dir "$state" --id fs-0e2e0e2e0e2e0e2e0 --name e2e)
helm install ec2csi deploy/helm/ec2csi --namespace kube-system \
  -f e2e/values-local.yaml --set apiServer.port="$APISERVER_PORT" --wait --timeout 5m >&2

log "running the scenarios"
set +e
EC2CSI_E2E_FS=$fs EC2CSI_E2E_STATE_DIR=$state EC2CSI_E2E_BIN="$out/ec2csi" \
  go test -tags e2e -count=1 -p 1 -timeout 40m -json ./e2e/ | go run ./tools/testsummary -tests
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
