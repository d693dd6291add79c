#!/usr/bin/env bash
# Runs the Kubernetes community's csi-sanity binary (built from its Go
# module) against `ec2csi serve` for each driver on the local backend, the
# way the issues' acceptance describes, and prints its summary lines.
# Usage: scripts/upstream-sanity.sh [efs|ebs]...
set -euo pipefail
cd "$(dirname "$0")/.."
drivers=("$@")
((${#drivers[@]})) || drivers=(efs ebs)

gobin=$(go env GOPATH)/bin
if [[ ! -x $gobin/csi-sanity ]]; then
  GOFLAGS=-mod=mod go install github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@v5.6.0
fi
work=$(mktemp -d)
bin=$work/ec2csi
go build -o "$bin" ./cmd/ec2csi
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

status=0
for d in "${drivers[@]}"; do
  dir=$work/$d
  mkdir -p "$dir"
  params=$dir/params.yaml
  extra=()
  case $d in
    efs)
      "$bin" local create-filesystem --state-dir "$dir" --id fs-12345678 >/dev/null
      printf 'provisioningMode: efs-ap\nfileSystemId: fs-12345678\n' >"$params"
      ;;
    ebs)
      printf 'type: gp3\n' >"$params"
      printf 'iops: "3000"\nthroughput: "200"\n' >"$dir/mutable.yaml"
      extra=(-csi.testvolumemutableparameters "$dir/mutable.yaml" -csi.testnodevolumeattachlimit
        -csi.testvolumesize 4294967296 -csi.testvolumeexpandsize 6442450944)
      ;;
  esac
  "$bin" serve --driver "$d" --cloud local --state-dir "$dir" --endpoint "unix://$dir/csi.sock" --log-level error &
  pid=$!
  for _ in $(seq 100); do [[ -S $dir/csi.sock ]] && break; sleep 0.1; done
  set +e
  "$gobin/csi-sanity" -csi.endpoint "unix://$dir/csi.sock" -csi.mountdir "$dir/mnt" -csi.stagingdir "$dir/staging" \
    -csi.testvolumeparameters "$params" "${extra[@]}" >"$dir/out.txt" 2>&1
  rc=$?
  set -e
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  summary=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/out.txt" | grep -E 'Passed .* Failed' | tail -1)
  echo "upstream csi-sanity, $d driver: $summary"
  if ((rc != 0)); then
    sed 's/\x1b\[[0-9;]*m//g' "$dir/out.txt" | grep -A20 '\[FAIL' | head -60
    status=1
  fi
done
exit $status
