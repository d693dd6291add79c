#!/usr/bin/env bash
# EBS on the local backend: attach+stage+publish latency for 50 volumes and
# the node plugin's memory with all of them staged. Prints key=value lines.
# Usage: bash bench/ebs-local.sh [-volumes N] [-fstype xfs]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "ebs-local: needs root (loop devices, mounts)" >&2; exit 1; }
bash scripts/install-test-deps.sh
bin=$(mktemp -d)/ec2csi
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/ec2csi
go run ./bench/ebslocal -bin "$bin" "$@"
