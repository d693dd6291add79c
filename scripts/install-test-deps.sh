#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, only when one is
# missing, so a second run costs nothing and needs no network.
set -euo pipefail

# package:command-that-proves-it-is-installed
needs=(
  e2fsprogs:mkfs.ext4
  xfsprogs:mkfs.xfs
  btrfs-progs:mkfs.btrfs
  util-linux:losetup
  mount:mount
  stunnel4:stunnel4
  haproxy:haproxy
  iperf3:iperf3
  nfs-ganesha:ganesha.nfsd
  nfs-ganesha-vfs:/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so
  libnfs-utils:nfs-cat
  openssl:openssl
  procps:ps
  psmisc:fuser
)

missing=()
for n in "${needs[@]}"; do
  pkg=${n%%:*} probe=${n#*:}
  if [[ $probe == /* ]]; then
    [[ -e $probe ]] || missing+=("$pkg")
  else
    command -v "$probe" >/dev/null 2>&1 || missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "install-test-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# A fresh install of haproxy, stunnel4 or ganesha starts a system service on
# some setups; the tests start their own instances on their own ports.
for svc in haproxy stunnel4 nfs-ganesha; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
  service "$svc" stop >/dev/null 2>&1 || true
done
