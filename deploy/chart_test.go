// Package deploy holds the Helm chart, the plain manifests rendered from
// it, and the IAM policies; its tests render the chart with helm.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }
func (o object) name() string { return str(o, "metadata", "name") }

// get walks a path of map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				if o, ok2 := v.(object); ok2 {
					m = o
				} else {
					return nil
				}
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := get(v, path...).(string); return s }

func helmBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Skip("helm is not installed; scripts/test.sh installs it (go install helm.sh/helm/v3/cmd/helm)")
	}
	return p
}

// render runs helm template with the given --set values.
func render(t *testing.T, set ...string) ([]object, error) {
	t.Helper()
	args := []string{"template", "ec2csi", "helm/ec2csi", "--namespace", "kube-system", "--kube-version", "1.34.4"}
	for _, s := range set {
		if strings.HasPrefix(s, "--") {
			args = append(args, s)
		} else {
			args = append(args, "--set", s)
		}
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New(stderr.String())
	}
	var objs []object
	dec := yaml.NewDecoder(&out)
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered YAML does not parse: %v", err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs, nil
}

func mustRender(t *testing.T, set ...string) []object {
	t.Helper()
	objs, err := render(t, set...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find(objs []object, kind, name string) object {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	return nil
}

func containers(o object) map[string]any {
	out := map[string]any{}
	l, _ := get(o, "spec", "template", "spec", "containers").([]any)
	for _, c := range l {
		out[str(c, "name")] = c
	}
	return out
}

func args(c any) []string {
	var out []string
	l, _ := get(c, "args").([]any)
	for _, a := range l {
		out = append(out, a.(string))
	}
	return out
}

func TestDefaults(t *testing.T) {
	objs := mustRender(t)
	efs, ebs := find(objs, "CSIDriver", "efs.ec2csi.io"), find(objs, "CSIDriver", "ebs.ec2csi.io")
	if get(efs, "spec", "attachRequired") != false || str(efs, "spec", "fsGroupPolicy") != "None" {
		t.Errorf("EFS CSIDriver %v", efs["spec"])
	}
	if get(ebs, "spec", "attachRequired") != true || str(ebs, "spec", "fsGroupPolicy") != "File" {
		t.Errorf("EBS CSIDriver %v", ebs["spec"])
	}
	ctrl := containers(find(objs, "Deployment", "ec2csi-controller"))
	for _, name := range []string{"ec2csi", "efs-provisioner", "ebs-provisioner", "ebs-attacher", "ebs-resizer", "ebs-snapshotter"} {
		if ctrl[name] == nil {
			t.Errorf("controller lacks container %s", name)
		}
	}
	if !slices.Contains(args(ctrl["efs-provisioner"]), "--extra-create-metadata") {
		t.Error("the EFS provisioner must pass PVC metadata for subPathPattern")
	}
	if !slices.Contains(args(ctrl["ec2csi"]), "--cloud=aws") || !slices.Contains(args(ctrl["ec2csi"]), "--driver=all") {
		t.Errorf("controller args %v", args(ctrl["ec2csi"]))
	}
	ds := find(objs, "DaemonSet", "ec2csi-node")
	node := containers(ds)
	if len(node) != 1 || node["ec2csi"] == nil {
		t.Fatalf("node containers %v: the plugin registers itself, no sidecars", node)
	}
	na := args(node["ec2csi"])
	if !slices.Contains(na, "--kubelet-registration-dir=/var/lib/kubelet/plugins_registry") ||
		!slices.Contains(na, "--endpoint=efs=unix:///var/lib/kubelet/plugins/efs.ec2csi.io/csi.sock,ebs=unix:///var/lib/kubelet/plugins/ebs.ec2csi.io/csi.sock") {
		t.Errorf("node args %v", na)
	}
	if get(ds, "spec", "template", "spec", "hostNetwork") != true || get(node["ec2csi"], "securityContext", "privileged") != true {
		t.Error("the node plugin must be privileged on the host network")
	}
	mounts, _ := get(node["ec2csi"], "volumeMounts").([]any)
	var bidir bool
	for _, m := range mounts {
		if str(m, "mountPath") == "/var/lib/kubelet" && str(m, "mountPropagation") == "Bidirectional" {
			bidir = true
		}
	}
	if !bidir {
		t.Error("/var/lib/kubelet must be mounted with Bidirectional propagation")
	}
	if str(get(node["ec2csi"], "livenessProbe"), "httpGet", "path") != "/healthz" {
		t.Error("the node plugin serves its own health endpoint")
	}
	sc := find(objs, "StorageClass", "ebs-gp3")
	if str(sc, "volumeBindingMode") != "WaitForFirstConsumer" || get(sc, "allowVolumeExpansion") != true || str(sc, "parameters", "type") != "gp3" {
		t.Errorf("EBS StorageClass %v", sc)
	}
	if find(objs, "VolumeSnapshotClass", "ebs-snapshots") != nil {
		t.Error("VolumeSnapshotClass rendered on a cluster without the snapshot API")
	}
	if find(objs, "StorageClass", "efs-ap") != nil {
		t.Error("the EFS StorageClass needs a file system and is off by default")
	}
}

func TestLeastPrivilege(t *testing.T) {
	for _, o := range mustRender(t) {
		if o.kind() != "ClusterRole" && o.kind() != "Role" {
			continue
		}
		rules, _ := o["rules"].([]any)
		for _, r := range rules {
			for _, field := range []string{"verbs", "resources", "apiGroups"} {
				l, _ := get(r, field).([]any)
				for _, v := range l {
					if v == "*" {
						t.Errorf("%s %s grants * in %s", o.kind(), o.name(), field)
					}
				}
			}
			if verbs, _ := get(r, "verbs").([]any); slices.Contains(verbs, any("delete")) && !slices.Contains(get(r, "resources").([]any), any("persistentvolumes")) && !slices.Contains(get(r, "resources").([]any), any("leases")) {
				t.Errorf("%s %s may delete %v", o.kind(), o.name(), get(r, "resources"))
			}
		}
	}
}

func TestSwitchesAndOverrides(t *testing.T) {
	objs := mustRender(t, "efs.enabled=false")
	if find(objs, "CSIDriver", "efs.ec2csi.io") != nil || containers(find(objs, "Deployment", "ec2csi-controller"))["efs-provisioner"] != nil {
		t.Error("efs.enabled=false still renders EFS")
	}
	if !slices.Contains(args(containers(find(objs, "DaemonSet", "ec2csi-node"))["ec2csi"]), "--driver=ebs") {
		t.Error("efs.enabled=false: node should serve --driver=ebs")
	}
	objs = mustRender(t, "ebs.enabled=false")
	if find(objs, "ClusterRole", "ec2csi-attacher") != nil || containers(find(objs, "Deployment", "ec2csi-controller"))["ebs-attacher"] != nil {
		t.Error("ebs.enabled=false still renders the attacher")
	}
	if _, err := render(t, "efs.enabled=false", "ebs.enabled=false"); err == nil || !strings.Contains(err.Error(), "enable at least one") {
		t.Errorf("both drivers off: %v", err)
	}
	if _, err := render(t, "efs.storageClass.create=true"); err == nil || !strings.Contains(err.Error(), "fileSystemId is required") {
		t.Errorf("EFS StorageClass without a file system: %v", err)
	}

	objs = mustRender(t, "efs.driverName=efs.csi.aws.com", "ebs.driverName=ebs.csi.aws.com",
		"serviceAccount.controller.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/ec2csi",
		"efs.storageClass.create=true", "efs.storageClass.fileSystemId=fs-12345678", "efs.storageClass.subPathPattern=${.PVC.namespace}/${.PVC.name}",
		"--api-versions=snapshot.storage.k8s.io/v1")
	if find(objs, "CSIDriver", "efs.csi.aws.com") == nil || find(objs, "CSIDriver", "ebs.csi.aws.com") == nil {
		t.Error("driver name overrides not applied to the CSIDrivers")
	}
	if !slices.Contains(args(containers(find(objs, "DaemonSet", "ec2csi-node"))["ec2csi"]), "--driver-name=efs=efs.csi.aws.com,ebs=ebs.csi.aws.com") {
		t.Error("driver name overrides not passed to the plugin")
	}
	if str(find(objs, "ServiceAccount", "ec2csi-controller"), "metadata", "annotations", "eks.amazonaws.com/role-arn") == "" {
		t.Error("IRSA annotation missing")
	}
	efsSC := find(objs, "StorageClass", "efs-ap")
	if str(efsSC, "provisioner") != "efs.csi.aws.com" || str(efsSC, "parameters", "fileSystemId") != "fs-12345678" || str(efsSC, "parameters", "subPathPattern") != "${.PVC.namespace}/${.PVC.name}" {
		t.Errorf("EFS StorageClass %v", efsSC)
	}
	if str(find(objs, "VolumeSnapshotClass", "ebs-snapshots"), "driver") != "ebs.csi.aws.com" {
		t.Error("VolumeSnapshotClass missing with the snapshot API present")
	}

	objs = mustRender(t, "cloud=local", "apiServer.host=127.0.0.1", "apiServer.port=6443")
	dep := find(objs, "Deployment", "ec2csi-controller")
	if get(dep, "spec", "template", "spec", "hostPID") != true || get(containers(dep)["ec2csi"], "securityContext", "privileged") != true {
		t.Error("the local backend's controller attaches loop devices: privileged with the host's PIDs")
	}
	if !slices.Contains(args(containers(find(objs, "DaemonSet", "ec2csi-node"))["ec2csi"]), "--node-id=$(NODE_NAME)") {
		t.Error("local nodes are known by their node name")
	}
	env, _ := get(containers(dep)["ebs-attacher"], "env").([]any)
	if len(env) != 2 || str(env[0], "value") != "127.0.0.1" {
		t.Errorf("API server override not passed to the sidecars: %v", env)
	}
}

// TestPlainManifests: deploy/manifests/ec2csi.yaml is the chart rendered
// with its defaults, for people without Helm; it must not drift.
func TestPlainManifests(t *testing.T) {
	helm := helmBinary(t)
	want, err := exec.Command(helm, "template", "ec2csi", "helm/ec2csi", "--namespace", "kube-system", "--kube-version", "1.34.4").Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("manifests/ec2csi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(manifestBody(got), want) {
		t.Fatal("deploy/manifests/ec2csi.yaml is stale: run make manifests")
	}
}

// manifestBody drops the header comment make manifests writes.
func manifestBody(b []byte) []byte {
	for bytes.HasPrefix(b, []byte("#")) {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil
		}
		b = b[i+1:]
	}
	return b
}

// TestTunnelDaemon: on AWS with EFS, the TLS tunnels run in a DaemonSet of
// their own that upgrades never restart, and the node plugin uses its
// socket; otherwise there is no such DaemonSet.
func TestTunnelDaemon(t *testing.T) {
	objs := mustRender(t)
	ds := find(objs, "DaemonSet", "ec2csi-tunnel")
	if ds == nil {
		t.Fatal("no ec2csi-tunnel DaemonSet with cloud aws and EFS on")
	}
	if str(ds, "spec", "updateStrategy", "type") != "OnDelete" {
		t.Error("chart upgrades must not restart the tunnel daemon: updateStrategy OnDelete")
	}
	if get(ds, "spec", "template", "spec", "hostNetwork") != true {
		t.Error("the tunnels must listen on the host's loopback")
	}
	c := containers(ds)["tunnel-daemon"]
	if c == nil {
		t.Fatalf("containers %v", containers(ds))
	}
	want := []string{"tunnel-daemon", "--state-dir=/run/ec2csi/tunnel", "--port-range=20049-21049", "--metrics-address=:9810"}
	if got := args(c); !slices.Equal(got, want) {
		t.Errorf("daemon args %v, want %v", got, want)
	}
	if get(c, "securityContext", "privileged") == true || get(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Errorf("the daemon needs no privileges: %v", get(c, "securityContext"))
	}
	if str(c, "livenessProbe", "httpGet", "path") != "/metrics" {
		t.Error("liveness through the daemon's metrics endpoint")
	}
	if str(get(ds, "spec", "template", "spec", "volumes", 0), "hostPath", "path") != "/run/ec2csi/tunnel" {
		t.Errorf("state volume %v", get(ds, "spec", "template", "spec", "volumes"))
	}
	node := containers(find(objs, "DaemonSet", "ec2csi-node"))["ec2csi"]
	na := args(node)
	if !slices.Contains(na, "--tunnel-daemon-socket=/run/ec2csi/tunnel/tunnel.sock") || !slices.Contains(na, "--efs-dns-suffix=amazonaws.com") {
		t.Errorf("node args %v", na)
	}
	var mounted bool
	mounts, _ := get(node, "volumeMounts").([]any)
	for _, m := range mounts {
		mounted = mounted || str(m, "mountPath") == "/run/ec2csi/tunnel"
	}
	if !mounted {
		t.Error("the node plugin does not see the daemon's socket directory")
	}

	objs = mustRender(t, "tunnel.daemon=false", "tunnel.portRange=22000-22999", "efs.dnsSuffix=amazonaws.com.cn")
	if find(objs, "DaemonSet", "ec2csi-tunnel") != nil {
		t.Error("tunnel.daemon=false still renders the daemon")
	}
	na = args(containers(find(objs, "DaemonSet", "ec2csi-node"))["ec2csi"])
	if slices.Contains(na, "--tunnel-daemon-socket=/run/ec2csi/tunnel/tunnel.sock") || !slices.Contains(na, "--tunnel-port-range=22000-22999") || !slices.Contains(na, "--efs-dns-suffix=amazonaws.com.cn") {
		t.Errorf("tunnels in the plugin: node args %v", na)
	}

	for _, set := range []string{"cloud=local", "efs.enabled=false"} {
		objs = mustRender(t, set)
		if find(objs, "DaemonSet", "ec2csi-tunnel") != nil {
			t.Errorf("%s renders the tunnel daemon", set)
		}
		for _, a := range args(containers(find(objs, "DaemonSet", "ec2csi-node"))["ec2csi"]) {
			if strings.HasPrefix(a, "--tunnel-daemon-socket") {
				t.Errorf("%s: node args %s", set, a)
			}
		}
	}
}
