#!/usr/bin/env bash
# Builds the Kubernetes server binaries from the Go module proxy into the
# cache. Warm runs return at once.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

# Bump when the build recipe (flags, stamping) changes.
RECIPE="$K8S_VERSION go-ldflags-version-v1"
STAMP="$K8S_BIN/.done"
if is_done "$STAMP" "$RECIPE"; then
  log "kubernetes $K8S_VERSION already built in $K8S_BIN"
  exit 0
fi

MOD="$CACHE/k8s/$K8S_VERSION/mod"

write_scratch_module() {
  mkdir -p "$MOD"
  # kubernetes' own go.mod replaces each staging module with a directory that
  # is not in the module zip; we mirror every such replace with the published
  # v0.x version instead, so the list can never drift from the release.
  local gomod
  gomod=$(cd "$MOD" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod" | sort -u)
  [ -n "$staging" ] || die "no staging replaces found in $gomod"
  {
    echo "module ec2csi.local/e2e-k8s-build"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    local m
    for m in $staging; do echo "replace $m => $m $K8S_STAGING_VERSION"; done
  } > "$MOD/go.mod.new"
  # go rewrites go.mod as it builds, so compare against what we generated
  # last time; unchanged means go.mod/go.sum can be reused as they are.
  if ! cmp -s "$MOD/go.mod.new" "$MOD/go.mod.gen" || [ ! -f "$MOD/go.mod" ]; then
    cp "$MOD/go.mod.new" "$MOD/go.mod"
    mv "$MOD/go.mod.new" "$MOD/go.mod.gen"
    rm -f "$MOD/go.sum"
  else
    rm -f "$MOD/go.mod.new"
  fi
  log "scratch module with $(echo "$staging" | wc -l) staging replaces at $MOD/go.mod"
}

# Without these the binaries report v0.0.0-master: kubectl warns about skew,
# the node shows a bogus kubeletVersion, and version-gated client code
# misbehaves. Same variables as kubernetes' hack/lib/version.sh.
version_ldflags() {
  local info date major minor flags="" pkg
  info=$(cd "$MOD" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p')
  date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")
  major=${K8S_VERSION#v}; major=${major%%.*}
  minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}"
  done
  echo "$flags"
}

build() {
  local out="$CACHE/k8s/$K8S_VERSION/bin.tmp"
  rm -rf "$out"; mkdir -p "$out"
  local pkgs=() c
  for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$MOD" && GO_LDFLAGS_EXTRA="$(version_ldflags)" go_build -o "$out/" "${pkgs[@]}")
  for c in "${K8S_CMDS[@]}"; do [ -x "$out/$c" ] || die "missing $c after build"; done
  rm -rf "$K8S_BIN"
  mv "$out" "$K8S_BIN"
  mark_done "$STAMP" "$RECIPE"
}

step "scratch module for kubernetes $K8S_VERSION" write_scratch_module
step "go build ${K8S_CMDS[*]}" build
"$K8S_BIN/kubectl" version --client >&2
