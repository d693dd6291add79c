package kubeletplugin

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// kubelet plays the kubelet's side of the registration handshake.
func kubelet(t *testing.T, sock string, registered bool) *registerapi.PluginInfo {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := registerapi.NewRegistrationClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st := &registerapi.RegistrationStatus{PluginRegistered: registered}
	if !registered {
		st.Error = "version not supported"
	}
	if _, err := c.NotifyRegistrationStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	return info
}

func waitSocket(t *testing.T, p string) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	t.Fatalf("no socket %s", p)
}

func TestRegistration(t *testing.T) {
	dir := t.TempDir()
	r := Registration{Dir: dir, DriverName: "ebs.ec2csi.io", Endpoint: "/var/lib/kubelet/plugins/ebs.ec2csi.io/csi.sock", Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	sock := filepath.Join(dir, "ebs.ec2csi.io-reg.sock")
	waitSocket(t, sock)
	info := kubelet(t, sock, true)
	if info.GetType() != registerapi.CSIPlugin || info.GetName() != r.DriverName || info.GetEndpoint() != r.Endpoint || len(info.GetSupportedVersions()) == 0 {
		t.Fatalf("plugin info %v", info)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatal("registration socket left behind")
	}
}

func TestRejectedRegistrationEndsServe(t *testing.T) {
	dir := t.TempDir()
	r := Registration{Dir: dir, DriverName: "efs.ec2csi.io", Endpoint: "/x.sock", Log: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { done <- r.Serve(context.Background()) }()
	sock := filepath.Join(dir, "efs.ec2csi.io-reg.sock")
	waitSocket(t, sock)
	kubelet(t, sock, false)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "version not supported") {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve kept running after the kubelet rejected the plugin")
	}
}
