#!/usr/bin/env bash
# EBS attaches on --cloud aws against the AWS fake: 100 ControllerPublishVolume
# calls at once, then 100 ControllerUnpublishVolume. Prints key=value lines,
# among them describe_calls_per_attach (goal <= 0.2). No root needed.
# Usage: bash bench/ebs-attach.sh [-volumes N] [-instances N]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/ec2csi
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/ec2csi
go run ./bench/ebsattach -bin "$bin" "$@"
