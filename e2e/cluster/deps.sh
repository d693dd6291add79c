#!/usr/bin/env bash
# Installs the Debian packages the cluster and the image builds need.
# Runs apt-get update only when something is missing, so a warm run is a
# single dpkg query.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_root

PKGS=(
  containerd runc containernetworking-plugins etcd-server
  busybox-static iptables conntrack socat debootstrap
  openssl curl iproute2 util-linux mount e2fsprogs xfsprogs btrfs-progs
  ca-certificates gcc libc6-dev procps psmisc kmod
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  log "all ${#PKGS[@]} packages present"
  exit 0
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Other people run apt on this machine too: wait for the dpkg lock instead of
# failing, and retry because a concurrent apt's post-invoke hook empties
# /var/cache/apt/archives, which can pull downloaded .debs from under us.
APT=(apt-get -o DPkg::Lock::Timeout=900 -o Acquire::Retries=3)
apt_install() {
  local i
  for i in 1 2 3; do
    if "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}"; then return 0; fi
    log "apt-get install failed (attempt $i), retrying"
    sleep 5
  done
  return 1
}
step "apt-get update" "${APT[@]}" update -qq
# --no-install-recommends keeps docker.io and friends out; we only want the
# runtime pieces.
step "apt-get install" apt_install

# Debian starts containerd/etcd through its init scripts when it can; on a
# systemd-less VM it usually cannot, but make sure no packaged daemon is left
# holding the ports or /run/containerd we are about to use.
for svc in containerd etcd; do
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
    log "stopping packaged $svc service"
    service "$svc" stop || true
  fi
done
