#!/usr/bin/env bash
# Smoke check of the cluster itself: up, one busybox pod that writes to an
# emptyDir and prints it back, assert the log (which also proves apiserver ->
# kubelet on loopback works), down. Prints the wall time of up.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_root

finish() {
  local rc=$?
  "$E2E_CLUSTER_DIR/down.sh" || rc=1
  if [ "$rc" = 0 ]; then log "SMOKE PASSED"; else log "SMOKE FAILED"; fi
  exit "$rc"
}
trap finish EXIT

s=$(date +%s)
KCFG=$("$E2E_CLUSTER_DIR/up.sh")
UP_SECONDS=$(( $(date +%s) - s ))
EC2CSI_E2E_RUN_DIR=$(dirname "$KCFG")
log "up took ${UP_SECONDS}s"
k() { "$K8S_BIN/kubectl" --kubeconfig "$KCFG" --cache-dir "$EC2CSI_E2E_RUN_DIR/kubectl-cache" "$@"; }

MSG="ec2csi-e2e-smoke-$RANDOM"
s=$(date +%s)
k apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: smoke
  namespace: default
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: busybox
    image: $BUSYBOX_IMAGE
    imagePullPolicy: Never
    command: ["sh", "-c", "echo $MSG > /scratch/msg && cat /scratch/msg"]
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
  volumes:
  - name: scratch
    emptyDir: {}
EOF
if ! k wait --for=jsonpath='{.status.phase}'=Succeeded pod/smoke --timeout=120s; then
  k describe pod smoke >&2 || true
  die "pod did not succeed"
fi
out=$(k logs smoke)
[ "$out" = "$MSG" ] || die "pod log was '$out', want '$MSG'"
log "pod ran and logged '$out' in $(( $(date +%s) - s ))s"
k delete pod smoke --wait=true --timeout=60s >/dev/null
echo "up_seconds=$UP_SECONDS"
