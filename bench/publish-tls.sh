#!/usr/bin/env bash
# EFS NodePublishVolume with encryption in transit on the local backend
# (`ec2csi serve --cloud local --efs-tls`: a TLS tunnel per volume to the
# backend's mount target, which checks the client certificate, then the
# bind mount), against bind-only publishes of the same volumes in the same
# run. Prints key=value lines: publish_tls_p50_ms, publish_tls_p99_ms,
# publish_plain_p50_ms, publish_plain_p99_ms.
# Usage: bash bench/publish-tls.sh [-volumes N]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "publish-tls: needs root (bind mounts)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/ec2csi" ./cmd/ec2csi
go build -o "$dir/publishtls" ./bench/publishtls
"$dir/publishtls" -bin "$dir/ec2csi" "$@"
