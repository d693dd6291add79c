//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStaticEFSSharedByTwoPods is the classic out.txt test: a static PV of
// the file system, a claim, a writer and a reader.
func TestStaticEFSSharedByTwoPods(t *testing.T) {
	ns := namespace(t)
	storage := strings.ReplaceAll(example(t, "static-efs/storage.yaml"), "name: efs-shared\nspec:\n  capacity", "name: "+ns+"-efs-shared\nspec:\n  capacity")
	storage = strings.ReplaceAll(storage, "volumeName: efs-shared", "volumeName: "+ns+"-efs-shared")
	// A sub path of the file system, so the test leaves the root alone.
	sub := filepath.Join(stateDir, "efs", fsID, ns)
	if err := os.MkdirAll(sub, 0o777); err != nil {
		t.Fatal(err)
	}
	storage = strings.ReplaceAll(storage, "volumeHandle: "+fsID, "volumeHandle: "+fsID+":/"+ns)
	apply(t, ns, storage)
	t.Cleanup(func() { kubectl("delete", "pv", ns+"-efs-shared", "--wait=false") })
	apply(t, ns, pod("writer", "efs-shared", "echo hello from the writer > /data/out.txt; sleep 3600", ""))
	apply(t, ns, pod("reader", "efs-shared", "sleep 3600", ""))
	waitReady(t, ns, "writer", 3*time.Minute)
	waitReady(t, ns, "reader", 3*time.Minute)
	eventually(t, time.Minute, "the reader to see the writer's file", func() (bool, string) {
		out, err := kubectl("-n", ns, "exec", "reader", "--", "cat", "/data/out.txt")
		return err == nil && strings.TrimSpace(out) == "hello from the writer", out
	})
	if b, err := os.ReadFile(filepath.Join(sub, "out.txt")); err != nil || !strings.Contains(string(b), "hello") {
		t.Fatalf("the file is not on the file system: %q %v", b, err)
	}
	if got := jsonpath(ns, "pvc/efs-shared", "{.status.capacity.storage}"); got != "5Gi" {
		t.Fatalf("claim capacity %q, want the PV's 5Gi", got)
	}
}

// TestDynamicEFSWorkerLogs is the Airflow worker-logs pattern: an efs-ap
// StorageClass with a GID range and a per-claim directory, a Deployment of
// three replicas sharing one claim, distinct GIDs across claims, and data
// kept after the claim is deleted unless deleteAccessPointRootDir is set.
func TestDynamicEFSWorkerLogs(t *testing.T) {
	ns := namespace(t)
	storage := strings.ReplaceAll(example(t, "airflow-logs-efs/storage.yaml"), "name: efs-airflow", "name: "+ns)
	storage = strings.ReplaceAll(storage, "storageClassName: efs-airflow", "storageClassName: "+ns)
	apply(t, ns, storage)
	t.Cleanup(func() { kubectl("delete", "storageclass", ns, ns+"-delete") })
	apply(t, ns, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: other-logs}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: %s
  resources: {requests: {storage: 1Gi}}
`, ns))
	apply(t, ns, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  replicas: 3
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: worker
          image: %s
          imagePullPolicy: Never
          command: ["/bin/sh", "-c", "while true; do date >> /logs/$(hostname).log; sleep 2; done"]
          volumeMounts: [{name: logs, mountPath: /logs}]
      volumes:
        - {name: logs, persistentVolumeClaim: {claimName: airflow-logs}}
`, busybox))
	eventually(t, 3*time.Minute, "3 workers available", func() (bool, string) {
		n := jsonpath(ns, "deployment/worker", "{.status.availableReplicas}")
		return n == "3", n
	})
	pods := strings.Fields(must(t, "-n", ns, "get", "pods", "-l", "app=worker", "-o", "jsonpath={.items[*].metadata.name}"))
	eventually(t, time.Minute, "three log files on the shared claim", func() (bool, string) {
		out, _ := kubectl("-n", ns, "exec", pods[0], "--", "ls", "/logs")
		return len(strings.Fields(out)) == 3, out
	})

	dirs := map[string]string{}
	gids := map[uint32]string{}
	for _, claim := range []string{"airflow-logs", "other-logs"} {
		pv := jsonpath(ns, "pvc/"+claim, "{.spec.volumeName}")
		if h := jsonpath("", "pv/"+pv, "{.spec.csi.volumeHandle}"); !strings.HasPrefix(h, fsID+"::fsap-") {
			t.Fatalf("volume handle %q", h)
		}
		matches, _ := filepath.Glob(filepath.Join(stateDir, "efs", fsID, "airflow", ns, claim+"-*"))
		if len(matches) != 1 {
			t.Fatalf("directories for %s: %v (want /airflow/%s/%s-<id>)", claim, matches, ns, claim)
		}
		fi, err := os.Stat(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		gid := fi.Sys().(*syscall.Stat_t).Gid
		if gid < 70000 || gid > 70999 || fi.Mode().Perm() != 0o770 {
			t.Fatalf("%s: gid %d mode %v", claim, gid, fi.Mode())
		}
		if other, dup := gids[gid]; dup {
			t.Fatalf("claims %s and %s got the same GID %d", other, claim, gid)
		}
		gids[gid], dirs[claim] = claim, matches[0]
	}

	must(t, "-n", ns, "delete", "deployment", "worker", "--wait=true")
	must(t, "-n", ns, "delete", "pvc", "airflow-logs", "other-logs", "--wait=true")
	eventually(t, 2*time.Minute, "the PVs deleted", func() (bool, string) {
		out, _ := kubectl("get", "pv", "-o", "jsonpath={.items[*].spec.claimRef.namespace}")
		return !strings.Contains(out, ns), out
	})
	if entries, err := os.ReadDir(dirs["airflow-logs"]); err != nil || len(entries) != 3 {
		t.Fatalf("logs not kept after the claim was deleted: %v %v", entries, err)
	}

	// With deleteAccessPointRootDir the directory goes with the claim.
	apply(t, ns, fmt.Sprintf(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: %[1]s-delete}
provisioner: efs.ec2csi.io
parameters: {provisioningMode: efs-ap, fileSystemId: %[2]s, basePath: /airflow-delete, deleteAccessPointRootDir: "true"}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: %[1]s-delete
  resources: {requests: {storage: 1Gi}}
`, ns, fsID))
	eventually(t, time.Minute, "scratch bound", func() (bool, string) {
		st := jsonpath(ns, "pvc/scratch", "{.status.phase}")
		return st == "Bound", st
	})
	pv := jsonpath(ns, "pvc/scratch", "{.spec.volumeName}")
	dir := filepath.Join(stateDir, "efs", fsID, "airflow-delete", pv)
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	must(t, "-n", ns, "delete", "pvc", "scratch", "--wait=true")
	eventually(t, 2*time.Minute, "the scratch directory deleted", func() (bool, string) {
		_, err := os.Stat(dir)
		return os.IsNotExist(err), fmt.Sprint(err)
	})
}

// TestPrometheusKeepsDataAcrossRestart runs the real Prometheus (built from
// the Go module proxy) as a StatefulSet with its TSDB on an EFS access point
// made for its user, queries it, restarts the pod, and finds the samples
// from before the restart.
func TestPrometheusKeepsDataAcrossRestart(t *testing.T) {
	ns := namespace(t)
	sc := strings.ReplaceAll(example(t, "prometheus-efs/storage.yaml"), "name: efs-prometheus", "name: "+ns)
	apply(t, ns, sc)
	t.Cleanup(func() { kubectl("delete", "storageclass", ns) })
	apply(t, ns, fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: prometheus}
data:
  prometheus.yml: |
    global: {scrape_interval: 1s}
    scrape_configs:
      - job_name: prometheus
        static_configs: [{targets: ["127.0.0.1:9090"]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: prometheus}
spec:
  serviceName: prometheus
  replicas: 1
  selector: {matchLabels: {app: prometheus}}
  template:
    metadata: {labels: {app: prometheus}}
    spec:
      terminationGracePeriodSeconds: 10
      securityContext: {runAsUser: 65534, runAsGroup: 65534}
      containers:
        - name: prometheus
          image: ec2csi.local/prometheus:e2e
          imagePullPolicy: Never
          args: [--config.file=/etc/prometheus/prometheus.yml, --storage.tsdb.path=/prometheus, --storage.tsdb.no-lockfile]
          readinessProbe: {httpGet: {path: /-/ready, port: 9090}, periodSeconds: 2}
          volumeMounts:
            - {name: data, mountPath: /prometheus}
            - {name: config, mountPath: /etc/prometheus}
      volumes:
        - {name: config, configMap: {name: prometheus}}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteMany]
        storageClassName: %s
        resources: {requests: {storage: 1Gi}}
`, ns))
	waitReady(t, ns, "prometheus-0", 3*time.Minute)
	// samples counts Prometheus's own scrapes in the 10 minutes up to at
	// (a Unix time; 0 means now).
	samples := func(at int64) int {
		url := "http://127.0.0.1:9090/api/v1/query?query=count_over_time(up[10m])"
		if at > 0 {
			url += "&time=" + strconv.FormatInt(at, 10)
		}
		out, err := kubectl("-n", ns, "exec", "prometheus-0", "--", "wget", "-qO-", url)
		if err != nil || !strings.Contains(out, `"status":"success"`) {
			return -1
		}
		i := strings.LastIndex(out, `,"`)
		j := strings.LastIndex(out, `"]`)
		if i < 0 || j < i {
			return 0
		}
		n, _ := strconv.Atoi(out[i+2 : j])
		return n
	}
	var before int
	eventually(t, 2*time.Minute, "Prometheus to scrape itself 5 times", func() (bool, string) {
		before = samples(0)
		return before >= 5, strconv.Itoa(before)
	})
	// Samples up to this moment must still be there after the restart; a
	// lost TSDB would answer 0 for a query at this time.
	t0 := time.Now().Unix()
	before = samples(t0)
	pv := jsonpath(ns, "pvc/data-prometheus-0", "{.spec.volumeName}")
	wal := filepath.Join(stateDir, "efs", fsID, "prometheus", pv, "wal")
	if fi, err := os.Stat(wal); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Fatalf("Prometheus's WAL on the file system: %v", err)
	}

	uid := jsonpath(ns, "pod/prometheus-0", "{.metadata.uid}")
	must(t, "-n", ns, "delete", "pod", "prometheus-0", "--wait=true")
	eventually(t, 3*time.Minute, "prometheus-0 back and ready", func() (bool, string) {
		u := jsonpath(ns, "pod/prometheus-0", "{.metadata.uid}")
		ready := jsonpath(ns, "pod/prometheus-0", `{.status.conditions[?(@.type=="Ready")].status}`)
		return u != "" && u != uid && ready == "True", u + " " + ready
	})
	eventually(t, time.Minute, "the samples from before the restart", func() (bool, string) {
		n := samples(t0)
		return n >= before && before > 0, fmt.Sprintf("%d samples up to the restart now, %d before it", n, before)
	})
	must(t, "-n", ns, "delete", "statefulset", "prometheus", "--wait=true")
	must(t, "-n", ns, "delete", "pvc", "data-prometheus-0", "--wait=true")
}

// TestEBSLifecycle: gp3 with WaitForFirstConsumer binds in the node's
// zone; data survives online expansion seen inside the pod, a snapshot
// restores into a new claim; a raw block claim works; an RWX claim fails
// with an event that points to EFS.
func TestEBSLifecycle(t *testing.T) {
	ns := namespace(t)
	storage := strings.ReplaceAll(example(t, "jenkins-ebs/storage.yaml"), "name: ebs-jenkins", "name: "+ns)
	storage = strings.ReplaceAll(storage, "storageClassName: ebs-jenkins", "storageClassName: "+ns)
	storage = strings.ReplaceAll(storage, "reclaimPolicy: Retain", "reclaimPolicy: Delete")
	apply(t, ns, storage)
	t.Cleanup(func() { kubectl("delete", "storageclass", ns) })
	time.Sleep(2 * time.Second)
	if st := jsonpath(ns, "pvc/jenkins-home", "{.status.phase}"); st != "Pending" {
		t.Fatalf("a WaitForFirstConsumer claim is %s before any pod uses it", st)
	}
	apply(t, ns, pod("jenkins", "jenkins-home", "dd if=/dev/urandom of=/data/job.bin bs=1M count=20 && md5sum /data/job.bin > /data/job.md5 && sleep 3600", ""))
	waitReady(t, ns, "jenkins", 3*time.Minute)
	node := jsonpath(ns, "pod/jenkins", "{.spec.nodeName}")
	zone := jsonpath("", "node/"+node, `{.metadata.labels.topology\.kubernetes\.io/zone}`)
	pv := jsonpath(ns, "pvc/jenkins-home", "{.spec.volumeName}")
	affinity := jsonpath("", "pv/"+pv, "{.spec.nodeAffinity.required.nodeSelectorTerms[*].matchExpressions[*].values[*]}")
	if zone == "" || !strings.Contains(affinity, zone) {
		t.Fatalf("volume pinned to %q, node %s is in zone %q", affinity, node, zone)
	}
	eventually(t, time.Minute, "the data written", func() (bool, string) {
		out, _ := kubectl("-n", ns, "exec", "jenkins", "--", "cat", "/data/job.md5")
		return strings.Contains(out, "job.bin"), out
	})
	sizeGiB := func() float64 {
		out, _ := kubectl("-n", ns, "exec", "jenkins", "--", "df", "-k", "/data")
		f := strings.Fields(out)
		if len(f) < 9 {
			return 0
		}
		kb, _ := strconv.ParseFloat(f[8], 64)
		return kb / (1 << 20)
	}
	if s := sizeGiB(); s < 19 || s > 20.5 {
		t.Fatalf("file system of a 20Gi claim is %.1f GiB", s)
	}

	must(t, "-n", ns, "patch", "pvc", "jenkins-home", "-p", `{"spec":{"resources":{"requests":{"storage":"30Gi"}}}}`)
	eventually(t, 3*time.Minute, "the pod to see 30 GiB", func() (bool, string) {
		s := sizeGiB()
		return s > 29, fmt.Sprintf("%.1f GiB, claim %s", s, jsonpath(ns, "pvc/jenkins-home", "{.status.capacity.storage}"))
	})

	apply(t, ns, example(t, "jenkins-ebs/snapshot.yaml"))
	eventually(t, 2*time.Minute, "snapshot ready", func() (bool, string) {
		r := jsonpath(ns, "volumesnapshot/jenkins-home-backup", "{.status.readyToUse}")
		return r == "true", r
	})
	restoreSize := jsonpath(ns, "volumesnapshot/jenkins-home-backup", "{.status.restoreSize}")
	apply(t, ns, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: restored}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: %s
  dataSource: {name: jenkins-home-backup, kind: VolumeSnapshot, apiGroup: snapshot.storage.k8s.io}
  resources: {requests: {storage: %s}}
`, ns, restoreSize))
	apply(t, ns, pod("restore", "restored", "sleep 3600", ""))
	waitReady(t, ns, "restore", 3*time.Minute)
	if out := execIn(t, ns, "restore", "md5sum", "-c", "/data/job.md5"); !strings.Contains(out, "OK") {
		t.Fatalf("restored data: %s", out)
	}

	// Raw block.
	apply(t, ns, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: raw}
spec:
  accessModes: [ReadWriteOnce]
  volumeMode: Block
  storageClassName: ebs-gp3
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: raw}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: app
      image: `+busybox+`
      imagePullPolicy: Never
      command: ["/bin/sh", "-c", "sleep 3600"]
      volumeDevices: [{name: raw, devicePath: /dev/xvdf}]
  volumes:
    - {name: raw, persistentVolumeClaim: {claimName: raw}}
`)
	waitReady(t, ns, "raw", 3*time.Minute)
	execIn(t, ns, "raw", "sh", "-c", "echo ec2csi-block > /tmp/in && dd if=/tmp/in of=/dev/xvdf bs=512 count=1 conv=sync,fsync 2>/dev/null")
	if out := execIn(t, ns, "raw", "sh", "-c", "dd if=/dev/xvdf bs=512 count=1 2>/dev/null | head -c 12"); out != "ec2csi-block" {
		t.Fatalf("block device read back %q", out)
	}

	// ReadWriteMany on EBS: the event says to use EFS.
	apply(t, ns, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: rwx}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ebs-gp3
  resources: {requests: {storage: 1Gi}}
`)
	apply(t, ns, pod("rwx", "rwx", "sleep 3600", ""))
	eventually(t, 2*time.Minute, "a ProvisioningFailed event pointing to EFS", func() (bool, string) {
		out, _ := kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name=rwx,reason=ProvisioningFailed", "-o", "jsonpath={.items[*].message}")
		return strings.Contains(out, "use EFS"), out
	})
}

// TestNodePluginRestart restarts the node plugin while pods use an EFS and
// an EBS volume: they keep writing, and deleting them afterwards does not
// leave them Terminating.
func TestNodePluginRestart(t *testing.T) {
	ns := namespace(t)
	apply(t, ns, fmt.Sprintf(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: %[1]s}
provisioner: efs.ec2csi.io
parameters: {provisioningMode: efs-ap, fileSystemId: %[2]s, basePath: /restart}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: %[1]s
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: block}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ebs-gp3
  resources: {requests: {storage: 1Gi}}
`, ns, fsID))
	t.Cleanup(func() { kubectl("delete", "storageclass", ns) })
	for _, c := range []string{"shared", "block"} {
		apply(t, ns, pod("w-"+c, c, "i=0; while true; do i=$((i+1)); echo $i > /data/tick; sleep 1; done", ""))
	}
	for _, c := range []string{"shared", "block"} {
		waitReady(t, ns, "w-"+c, 3*time.Minute)
	}
	tick := func(c string) int {
		out, _ := kubectl("-n", ns, "exec", "w-"+c, "--", "cat", "/data/tick")
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		return n
	}
	before := map[string]int{"shared": tick("shared"), "block": tick("block")}

	old := must(t, "-n", "kube-system", "get", "pods", "-l", "app.kubernetes.io/component=node", "-o", "jsonpath={.items[0].metadata.name}")
	must(t, "-n", "kube-system", "delete", "pod", old, "--wait=true")
	eventually(t, 3*time.Minute, "a new node plugin ready", func() (bool, string) {
		out, _ := kubectl("-n", "kube-system", "get", "pods", "-l", "app.kubernetes.io/component=node", "-o",
			`jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		return strings.Contains(out, "=True") && !strings.Contains(out, old), out
	})
	for c, n := range before {
		eventually(t, 30*time.Second, c+" still written", func() (bool, string) {
			now := tick(c)
			return now > n+2, fmt.Sprintf("%d -> %d", n, now)
		})
	}
	start := time.Now()
	must(t, "-n", ns, "delete", "pod", "w-shared", "w-block", "--wait=true", "--timeout=120s")
	t.Logf("pods deleted %s after the restart", time.Since(start).Round(time.Second))
}
