#!/usr/bin/env bash
# The project's test command (README, CI): installs what the tests need,
# runs every Go test as root with real mounts and loop devices, and prints
# the counts. Extra arguments go to `go test` (e.g. -run, -v).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) != 0 ]]; then
  echo "test.sh: the tests mount file systems and attach loop devices; run as root (sudo)" >&2
  exit 1
fi
bash scripts/install-test-deps.sh

# helm renders the chart in deploy/'s tests; built from the Go module proxy
# (a few minutes, once).
gobin=$(go env GOPATH)/bin
if [[ ! -x $gobin/helm ]] && ! command -v helm >/dev/null; then
  echo "== installing helm from the Go module proxy (once)"
  GOFLAGS=-mod=mod go install helm.sh/helm/v3/cmd/helm@v3.22.0
fi
export PATH=$PATH:$gobin

echo "== gofmt / go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [[ -n $unformatted ]]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...

echo "== go test"
# One package at a time (-p 1): several packages attach loop devices and
# mount, and the machine's loop devices and CPUs are shared.
set +e
go test -p 1 -count=1 -timeout 30m -json "$@" ./... | go run ./tools/testsummary
status=${PIPESTATUS[0]}
set -e
if (($# == 0)); then
  # The same conformance suite once more, as its own binary against
  # `ec2csi serve` processes, as a user would run it.
  echo "== upstream csi-sanity binary"
  bash scripts/upstream-sanity.sh || status=1
fi
exit "$status"
