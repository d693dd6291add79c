#!/usr/bin/env bash
# Brings up a single-node Kubernetes cluster as host processes on loopback:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
# and kubelet. Builds (or reuses) everything in the cache first.
#
# On success prints the admin kubeconfig path; $RUN/cluster.env holds the
# ports and names for other scripts. Run down.sh to undo, even after failure.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_root

NODE_NAME="${EC2CSI_E2E_NODE_NAME:-ec2csi-e2e-node}"
POD_CIDR="${EC2CSI_E2E_POD_CIDR:-10.244.0.0/24}"
SERVICE_CIDR="${EC2CSI_E2E_SERVICE_CIDR:-10.96.0.0/24}"
SERVICE_IP="${SERVICE_CIDR%.*}.1"
BRIDGE="${EC2CSI_E2E_BRIDGE:-ec2csie2e0}"
CNI_NET=ec2csi-e2e
PKI="$RUN/pki"
LOGS="$RUN/logs"
PIDS="$RUN/pids"
CTRD="$RUN/containerd"
CTRD_SOCK="$CTRD/containerd.sock"
KUBECONFIG_ADMIN="$RUN/admin.kubeconfig"
HOSTS_MARK="# ec2csi-e2e"

T_UP=$(date +%s)

# already_up: a healthy cluster from an earlier up.sh (kubelet alive,
# apiserver ready, node Ready) is reused, so up.sh is idempotent. Anything
# less is torn down and rebuilt by preflight.
already_up() {
  [ -f "$RUN/cluster.env" ] && [ -f "$PIDS/kubelet.pid" ] || return 1
  kill -0 "$(cat "$PIDS/kubelet.pid")" 2>/dev/null || return 1
  kubectl_admin get --raw /readyz >/dev/null 2>&1 || return 1
  kubectl_admin get nodes -o jsonpath='{.items[*].status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

refuse_foreign() {
  if grep -qs " $KUBELET_DIR " /proc/mounts && [ ! -d "$RUN" ]; then
    die "$KUBELET_DIR is mounted by someone else; refusing to share it"
  fi
}

preflight() {
  if [ -d "$RUN" ] || [ -d "$KUBELET_DIR" ]; then
    log "leftovers from an earlier run: running down.sh first"
    "$E2E_CLUSTER_DIR/down.sh"
  fi
  mkdir -p "$RUN" "$PKI" "$LOGS" "$PIDS" "$CTRD" "$EC2CSI_STATE_DIR"
  # The host root is a private mount, and a hostPath with Bidirectional
  # propagation must be on a shared one (or the container is refused). The
  # kubelet does this for its own dir; do the same for the driver's state.
  mount --bind "$EC2CSI_STATE_DIR" "$EC2CSI_STATE_DIR"
  mount --make-rshared "$EC2CSI_STATE_DIR"
  # down.sh uses this stamp to tell our pod netns from older ones, and the
  # iptables snapshot to remove only chains that appeared while we ran.
  touch "$RUN/started"
  cat /proc/sys/net/ipv4/ip_forward > "$RUN/ip_forward.orig"
  iptables-save > "$RUN/iptables.before" 2>/dev/null || true
  # containerd 1.6 shims always put their sockets in /run/containerd/s,
  # whatever the config says; down.sh removes the dir only if we made it.
  [ -d /run/containerd ] && touch "$RUN/run-containerd.existed"
  [ -d /run/netns ] && touch "$RUN/run-netns.existed"
  return 0
}

# pick_port NAME DEFAULT: other people's servers may hold the standard ports
# on this machine, so take the default only when it is free, else the first
# free port above 20000.
pick_port() {
  local p=$2
  if ! port_free "$p" || grep -qx "$p" "$RUN/ports.taken" 2>/dev/null; then
    p=20000
    while ! port_free "$p" || grep -qx "$p" "$RUN/ports.taken" 2>/dev/null; do p=$((p + 1)); done
    log "port $2 for $1 is busy, using $p"
  fi
  echo "$p" >> "$RUN/ports.taken"
  echo "$p"
}

choose_ports() {
  ETCD_PORT=$(pick_port etcd 2379)
  ETCD_PEER_PORT=$(pick_port etcd-peer 2380)
  APISERVER_PORT=$(pick_port kube-apiserver 6443)
  KCM_PORT=$(pick_port kube-controller-manager 10257)
  SCHED_PORT=$(pick_port kube-scheduler 10259)
  KUBELET_PORT=$(pick_port kubelet 10250)
  KUBELET_HEALTHZ_PORT=$(pick_port kubelet-healthz 10248)
  SNAPSHOT_METRICS_PORT=$(pick_port snapshot-controller 9102)
}

# The kubelet refuses a loopback node IP, so the node advertises the VM's own
# interface address; nothing listens there, it is only a label. Without one
# (a bare sandbox) we add a dummy interface that down.sh removes.
choose_node_ip() {
  NODE_IP="${EC2CSI_E2E_NODE_IP:-}"
  [ -n "$NODE_IP" ] && return 0
  NODE_IP=$(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | grep -v "^${POD_CIDR%.*}\." | head -1 || true)
  if [ -z "$NODE_IP" ]; then
    NODE_IP=192.0.2.250
    ip link add ec2csie2e-node type dummy
    ip addr add "$NODE_IP/32" dev ec2csie2e-node
    ip link set ec2csie2e-node up
    log "no global IPv4 address: created dummy interface with $NODE_IP"
  fi
}

write_env() {
  cat > "$RUN/cluster.env" <<EOF
# Written by e2e/cluster/up.sh; sourced by down.sh and usable by tests.
EC2CSI_E2E_RUN=$RUN
EC2CSI_E2E_CACHE=$CACHE
EC2CSI_E2E_STATE_DIR=$EC2CSI_STATE_DIR
KUBECONFIG=$KUBECONFIG_ADMIN
KUBECTL=$K8S_BIN/kubectl
KUBECACHEDIR=$RUN/kubectl-cache
NODE_NAME=$NODE_NAME
NODE_IP=$NODE_IP
POD_CIDR=$POD_CIDR
BRIDGE=$BRIDGE
CNI_NET=$CNI_NET
APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
APISERVER_PORT=$APISERVER_PORT
ETCD_PORT=$ETCD_PORT
KUBELET_PORT=$KUBELET_PORT
KUBELET_DIR=$KUBELET_DIR
PLUGIN_REGISTRATION_DIR=$KUBELET_DIR/plugins_registry
CONTAINERD_SOCK=$CTRD_SOCK
EOF
}

# ---------------------------------------------------------------- PKI ---

# cert NAME CN [O] [SANS]: an ECDSA key and CA-signed cert; ECDSA because key
# generation is instant even on a loaded machine.
cert() {
  local name=$1 cn=$2 o=${3:-} sans=${4:-}
  local subj="/CN=$cn"
  [ -n "$o" ] && subj="/O=$o$subj"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } > "$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

# kubeconfig FILE USER CERTNAME: embeds everything so the file can be copied
# or mounted into a pod as a single secret.
kubeconfig() {
  local b64='base64 -w0'
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ec2csi-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $($b64 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 "$PKI/$3.crt")
    client-key-data: $($b64 "$PKI/$3.key")
contexts:
- name: ec2csi-e2e
  context: {cluster: ec2csi-e2e, user: $2}
current-context: ec2csi-e2e
EOF
  chmod 600 "$1"
}

make_pki() {
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=ec2csi-e2e-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "IP:127.0.0.1,IP:$SERVICE_IP,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert admin admin system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kubelet-client "system:node:$NODE_NAME" system:nodes
  cert kubelet "$NODE_NAME" "" "DNS:$NODE_NAME,IP:127.0.0.1,IP:$NODE_IP"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
  openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$PKI"/*.key
  kubeconfig "$KUBECONFIG_ADMIN" admin admin
  kubeconfig "$RUN/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  kubeconfig "$RUN/scheduler.kubeconfig" system:kube-scheduler scheduler
  kubeconfig "$RUN/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet-client
}

# ---------------------------------------------------------- processes ---

# start NAME CMD...: setsid detaches the daemon from our session so it
# survives this script; the pid file is how down.sh finds it again.
start() {
  local name=$1; shift
  setsid "$@" > "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
}

# wait_for WHAT TIMEOUT CMD...: polls CMD, and on timeout shows the tail of
# the component's log, which is nearly always where the reason is.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what"
      [ -f "$LOGS/$what.log" ] && tail -25 "$LOGS/$what.log" >&2
      return 1
    fi
    local pidf="$PIDS/$what.pid"
    if [ -f "$pidf" ] && ! kill -0 "$(cat "$pidf")" 2>/dev/null; then
      log "$what exited"; tail -25 "$LOGS/$what.log" >&2; return 1
    fi
    sleep 0.5
  done
}

# --cache-dir: kubectl would otherwise leave a discovery cache in ~/.kube.
kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" --cache-dir "$RUN/kubectl-cache" "$@"; }

start_etcd() {
  start etcd etcd --name default --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
    --unsafe-no-fsync --snapshot-count 100000
  # --unsafe-no-fsync: the cluster is thrown away after the run, and fsync on
  # a disk shared with compilers makes apiserver writes crawl.
  wait_for etcd 60 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" --advertise-address="$NODE_IP" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=Hostname \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --profiling=false --v=1
  wait_for kube-apiserver 120 kubectl_admin get --raw /readyz
}

start_controllers() {
  # Both the kubelet and the controller-manager create the flexvolume dir
  # (default under /usr/libexec) at start; point them into the run dir.
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR" \
    --flex-volume-plugin-dir="$RUN/flexvolume" --v=1
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig="$RUN/scheduler.kubeconfig" \
    --authorization-kubeconfig="$RUN/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false --v=1
}

write_cni() {
  mkdir -p "$RUN/cni/net.d" "$RUN/cni/ipam"
  # ipMasq false: pods never need to leave the node, and it keeps iptables
  # untouched. host-local's dataDir lives in the run dir so down.sh owns it.
  cat > "$RUN/cni/net.d/10-$CNI_NET.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$RUN/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
EOF
}

start_containerd() {
  mkdir -p "$CTRD/root" "$CTRD/state" "$CTRD/opt"
  # restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so runc can't
  # lower oom_score_adj. opt/root/state are redirected so nothing lands in
  # /var/lib/containerd or /opt.
  cat > "$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$CTRD_SOCK.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CTRD/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
EOF
  start containerd containerd --config "$CTRD/config.toml"
  wait_for containerd 60 ctr --address "$CTRD_SOCK" version
}

# import_images all|extra: the cached images plus $EC2CSI_E2E_IMAGES, or
# only the latter.
import_images() {
  local tars=("$IMAGES"/*.tar) t s
  [ "$1" = extra ] && tars=()
  # Extra images (e.g. one made by image-ec2csi.sh) come from the caller.
  local extra
  for extra in ${EC2CSI_E2E_IMAGES:-}; do tars+=("$extra"); done
  for t in ${tars[@]+"${tars[@]}"}; do
    [ -f "$t" ] || die "image archive $t missing"
    s=$(date +%s)
    ctr --address "$CTRD_SOCK" -n k8s.io images import --snapshotter overlayfs "$t" >/dev/null \
      || die "ctr import $t failed"
    log "imported $(basename "$t") ($(( $(date +%s) - s ))s)"
  done
}

start_kubelet() {
  mkdir -p "$KUBELET_DIR" "$RUN/pod-logs" "$RUN/flexvolume"
  cat > "$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/kubelet.crt"
tlsPrivateKeyFile: "$PKI/kubelet.key"
containerRuntimeEndpoint: "unix://$CTRD_SOCK"
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Pod sync every 10s so online expansion shows inside pods quickly.
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: "$RUN/pod-logs"
# Images come only from ctr import; garbage-collecting one would break every
# later pod, and a nearly full shared disk must not evict test pods.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
makeIPTablesUtilChains: false
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
EOF
  start kubelet "$K8S_BIN/kubelet" --config="$RUN/kubelet.yaml" --kubeconfig="$RUN/kubelet.kubeconfig" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --root-dir="$KUBELET_DIR" \
    --volume-plugin-dir="$RUN/flexvolume" --v=2
  wait_for kubelet 90 curl -fsS "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
}

# /etc/hosts maps the node name to 127.0.0.1 so apiserver->kubelet traffic
# (kubectl logs/exec) stays on loopback. Edited in place because /etc/hosts
# may itself be a bind mount.
hosts_entry() {
  cp /etc/hosts "$RUN/hosts.orig"
  if ! grep -q "$HOSTS_MARK\$" /etc/hosts; then
    [ -z "$(tail -c1 /etc/hosts)" ] || echo >> /etc/hosts
    printf '127.0.0.1 %s %s\n' "$NODE_NAME" "$HOSTS_MARK" >> /etc/hosts
  fi
}

node_ready() {
  wait_for kubelet 120 kubectl_admin get node "$NODE_NAME"
  kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >/dev/null \
    || { tail -25 "$LOGS/kubelet.log" >&2; die "node not Ready"; }
  # Pods can't be created until the service-account controller has made the
  # namespace's default account; tests would flake on the first pod otherwise.
  wait_for kube-controller-manager 60 kubectl_admin -n default get serviceaccount default
  wait_for kube-controller-manager 60 kubectl_admin -n default get configmap kube-root-ca.crt
}

# The snapshot CRDs, their controller (cluster infrastructure, not part of a
# CSI driver) and its RBAC. Off with EC2CSI_E2E_SNAPSHOT_CONTROLLER=0.
snapshot_addon() {
  local m="$CACHE/manifests"
  kubectl_admin apply -f "$m/snapshot-crds/" >/dev/null
  kubectl_admin wait --for=condition=Established --timeout=60s -f "$m/snapshot-crds/" >/dev/null
  kubectl_admin apply -f "$m/rbac/snapshot-controller.yaml" >/dev/null
  sed -e "s#@IMAGE@#$SNAPSHOT_CONTROLLER_IMAGE#" -e "s#@APISERVER_PORT@#$APISERVER_PORT#" \
      -e "s#@METRICS_PORT@#$SNAPSHOT_METRICS_PORT#g" "$E2E_CLUSTER_DIR/manifests/snapshot-controller.yaml" \
    | kubectl_admin apply -f - >/dev/null
  kubectl_admin -n kube-system rollout status deployment/snapshot-controller --timeout=120s >/dev/null \
    || { kubectl_admin -n kube-system describe pods -l app.kubernetes.io/name=snapshot-controller >&2; \
         kubectl_admin -n kube-system logs -l app.kubernetes.io/name=snapshot-controller --tail=30 >&2; return 1; }
}

if [ "${EC2CSI_E2E_SKIP_BUILD:-0}" != 1 ]; then
  step "build/cache check" "$E2E_CLUSTER_DIR/build.sh"
fi
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  [ -x "$K8S_BIN/$b" ] || die "$K8S_BIN/$b missing: run build.sh"
done

if already_up; then
  # shellcheck disable=SC1091
  . "$RUN/cluster.env"
  CTRD_SOCK=$CONTAINERD_SOCK
  log "cluster already up; reusing it"
  [ -z "${EC2CSI_E2E_IMAGES:-}" ] || step "import extra images" import_images extra
  echo "$KUBECONFIG_ADMIN"
  exit 0
fi
refuse_foreign
# Any failure from here on leaves a half-up cluster: tear it down so the
# machine is clean, unless the caller wants to inspect it.
UP_OK=0
on_exit() {
  [ "$UP_OK" = 1 ] && return 0
  log "up failed; logs will be kept in $CACHE/last-run-logs"
  if [ "${EC2CSI_E2E_KEEP_ON_FAILURE:-0}" != 1 ]; then "$E2E_CLUSTER_DIR/down.sh" || true; fi
}
trap on_exit EXIT

step "preflight" preflight
choose_ports
choose_node_ip
write_env
step "PKI and kubeconfigs" make_pki
step "/etc/hosts entry for $NODE_NAME" hosts_entry
step "CNI config" write_cni
step "containerd" start_containerd
# Importing takes several seconds and needs only containerd: let it overlap
# with the control plane's start.
import_images all > "$LOGS/import.log" 2>&1 &
IMPORT_PID=$!
step "etcd :$ETCD_PORT" start_etcd
step "kube-apiserver :$APISERVER_PORT" start_apiserver
step "controller-manager and scheduler" start_controllers
wait_import() {
  if ! wait "$IMPORT_PID"; then cat "$LOGS/import.log" >&2; die "image import failed"; fi
  cat "$LOGS/import.log" >&2
}
step "image import (started with containerd)" wait_import
step "kubelet :$KUBELET_PORT" start_kubelet
step "node $NODE_NAME Ready" node_ready
if [ "${EC2CSI_E2E_SNAPSHOT_CONTROLLER:-1}" = 1 ]; then
  step "snapshot CRDs and snapshot-controller" snapshot_addon
fi
UP_OK=1

log "cluster up in $(( $(date +%s) - T_UP ))s; env in $RUN/cluster.env"
echo "$KUBECONFIG_ADMIN"
