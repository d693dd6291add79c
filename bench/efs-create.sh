#!/usr/bin/env bash
# EFS provisioning on --cloud aws against the AWS fake: 500 CreateVolume
# calls on a file system with 10,000 access points, the EFS API limited to
# 50 requests a second. Prints key=value lines, among them
# efs_api_calls_per_create (goal <= 1.05) and create_wall_vs_api_floor
# (wall time / (500 / 50 s); goal <= 1.2). No root needed.
# Usage: bash bench/efs-create.sh [-existing N] [-creates N] [-rate R] [-burst B] [-parallel P]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/ec2csi
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/ec2csi
go run ./bench/efscreate -bin "$bin" "$@"
