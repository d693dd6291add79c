package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ec2csi/ec2csi/internal/awsfake"
)

// The test binary doubles as the ec2csi binary: with EC2CSI_RUN_MAIN set
// it runs main with its arguments, so these tests see exit codes and
// stderr exactly as a user would.
func init() {
	if os.Getenv("EC2CSI_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
}

const awsInstance = "i-0123456789abcdef0"

// ec2csi starts the binary with args and an environment where the SDK
// reaches the fake and IMDS refuses connections.
func ec2csi(t *testing.T, fakeURL string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "AWS_") && !strings.HasPrefix(k, "KUBERNETES_") && k != "CSI_NODE_NAME" && k != "NODE_NAME" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"EC2CSI_RUN_MAIN=1",
		"AWS_ENDPOINT_URL="+fakeURL,
		"AWS_ACCESS_KEY_ID=AKIDAWSFAKE",
		"AWS_SECRET_ACCESS_KEY=awsfake-secret",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "none"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://"+closedPort,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// TestServeAWSWithoutIMDS: IMDS unreachable, region, zone and instance
// given by flags: serve starts and NodeGetInfo answers with the instance
// as node ID, its zone and its attachment limit.
func TestServeAWSWithoutIMDS(t *testing.T) {
	srv, err := awsfake.Start(awsfake.Options{Seed: 41})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.AddInstance(awsInstance, "us-east-1c", "m5.large"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	efsSock, ebsSock := filepath.Join(dir, "efs.sock"), filepath.Join(dir, "ebs.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	cmd, stderr := ec2csi(t, srv.URL, "serve", "--cloud", "aws", "--mode", "node", "--state-dir", filepath.Join(dir, "state"),
		"--endpoint", "efs=unix://"+efsSock+",ebs=unix://"+ebsSock, "--metrics-address", metricsAddr,
		"--region", "us-east-1", "--zone", "us-east-1c", "--instance-id", awsInstance)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ebsSock); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("serve exited: %v\n%s", err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+ebsSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := csi.NewNodeClient(conn).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil {
		t.Fatalf("NodeGetInfo: %v\n%s", err, stderr)
	}
	if info.GetNodeId() != awsInstance || info.GetAccessibleTopology().GetSegments()["topology.kubernetes.io/zone"] != "us-east-1c" {
		t.Errorf("NodeGetInfo = %v", info)
	}
	// m5.large: 28 Nitro slots less one network interface and the root
	// volume.
	if info.GetMaxVolumesPerNode() != 26 {
		t.Errorf("MaxVolumesPerNode = %d, want 26", info.GetMaxVolumesPerNode())
	}
	// The EFS node serves too (its mounts go through TLS tunnels, which
	// this test does not reach).
	econn, err := grpc.NewClient("unix://"+efsSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer econn.Close()
	if einfo, err := csi.NewNodeClient(econn).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{}); err != nil || einfo.GetNodeId() != awsInstance {
		t.Errorf("EFS NodeGetInfo = %v, %v", einfo, err)
	}
	// The instance type came from DescribeInstances, and the AWS API
	// metrics are served with the plugin's.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `ec2csi_aws_api_calls_total{api="DescribeInstances",code="OK"}`) {
		t.Errorf("/metrics has no AWS API calls:\n%s", body)
	}
}

// TestServeAWSWithNothing: with no IMDS, no Kubernetes, no asset tag and
// no flags, serve exits non-zero with one sentence saying what it tried
// and what to set.
func TestServeAWSWithNothing(t *testing.T) {
	if _, err := os.Stat("/sys/devices/virtual/dmi/id/board_asset_tag"); err == nil {
		t.Skip("this machine has a board asset tag; the sources cannot all be missing here")
	}
	srv, err := awsfake.Start(awsfake.Options{Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	cmd, stderr := ec2csi(t, srv.URL, "serve", "--cloud", "aws", "--state-dir", filepath.Join(dir, "state"),
		"--endpoint", "efs=unix://"+filepath.Join(dir, "efs.sock")+",ebs=unix://"+filepath.Join(dir, "ebs.sock"))
	start := time.Now()
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("serve: %v, want a non-zero exit\n%s", err, stderr)
	}
	var last string
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		last = l
	}
	t.Log(last)
	if !strings.HasPrefix(last, "ec2csi: cannot determine this node's AWS region, availability zone and instance ID: tried IMDS") ||
		!strings.Contains(last, "set --region, --zone and --instance-id") {
		t.Errorf("last line %q is not the one sentence", last)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %s to give up", d)
	}
}
