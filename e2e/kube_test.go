//go:build e2e

// Package e2e runs the end-to-end scenarios against a real cluster that
// e2e/run.sh brings up, with kubectl; build tag e2e keeps them out of
// `go test ./...`.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Environment from e2e/run.sh.
var (
	kubectlBin = envOr("KUBECTL", "kubectl")
	fsID       = os.Getenv("EC2CSI_E2E_FS")
	stateDir   = envOr("EC2CSI_E2E_STATE_DIR", "/var/lib/ec2csi-e2e")
)

const busybox = "ec2csi.local/busybox:e2e"

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func kubectl(args ...string) (string, error) {
	return kubectlIn("", args...)
}

func kubectlIn(stdin string, args ...string) (string, error) {
	cmd := exec.Command(kubectlBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// namespace makes a namespace for the test and deletes it afterwards.
func namespace(t *testing.T) string {
	t.Helper()
	ns := "e2e-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(ns) > 50 {
		ns = ns[:50]
	}
	must(t, "create", "namespace", ns)
	t.Cleanup(func() {
		if t.Failed() {
			dump(t, ns)
		}
		if _, err := kubectl("delete", "namespace", ns, "--wait=true", "--timeout=180s"); err != nil {
			t.Errorf("namespace %s did not go away: %v", ns, err)
		}
	})
	return ns
}

// dump logs what helps to understand a failure.
func dump(t *testing.T, ns string) {
	for _, args := range [][]string{
		{"-n", ns, "get", "pods,pvc,volumesnapshots", "-o", "wide"},
		{"-n", ns, "get", "events", "--sort-by=.lastTimestamp"},
		{"get", "pv,volumeattachments"},
	} {
		out, _ := kubectl(args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

func apply(t *testing.T, ns, manifest string) {
	t.Helper()
	if _, err := kubectlIn(manifest, "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// example reads an example's manifest with the local file system put in.
func example(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", path))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "fs-EXAMPLE", fsID)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
		}
		time.Sleep(time.Second)
	}
}

func jsonpath(ns, obj, path string) string {
	args := []string{"get", obj, "-o", "jsonpath=" + path}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := kubectl(args...)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

func waitReady(t *testing.T, ns, pod string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "pod "+pod+" ready", func() (bool, string) {
		st := jsonpath(ns, "pod/"+pod, `{.status.conditions[?(@.type=="Ready")].status}`)
		return st == "True", jsonpath(ns, "pod/"+pod, "{.status.phase} {.status.containerStatuses[*].state}")
	})
}

func execIn(t *testing.T, ns, pod string, cmd ...string) string {
	t.Helper()
	out, err := kubectl(append([]string{"-n", ns, "exec", pod, "--"}, cmd...)...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// pod renders a busybox pod that mounts a claim.
func pod(name, claim, script string, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: app
      image: %s
      imagePullPolicy: Never
      command: ["/bin/sh", "-c", %q]
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: %s}
%s`, name, busybox, script, claim, extra)
}
