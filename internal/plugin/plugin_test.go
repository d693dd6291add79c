package plugin

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/testenv"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsHealthAndProbe: every call is counted by method and code,
// and Probe and /healthz turn unhealthy when the backend becomes unusable.
func TestMetricsHealthAndProbe(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Drivers = []string{DriverEFS}
	cfg.Mode = ModeController
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Endpoints = map[string]string{DriverEFS: "unix://" + filepath.Join(dir, "efs.sock")}
	cfg.MetricsAddress = freePort(t)
	cfg.Log = testenv.Logger(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.WaitForSocket(t, filepath.Join(dir, "efs.sock"), 5*time.Second)
	conn, err := grpc.NewClient(cfg.Endpoints[DriverEFS], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = csi.NewControllerClient(conn).CreateVolume(ctx, &csi.CreateVolumeRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("CreateVolume without a name: %v", err)
	}
	if _, err := csi.NewIdentityClient(conn).Probe(ctx, &csi.ProbeRequest{}); err != nil {
		t.Fatalf("Probe of a healthy plugin: %v", err)
	}
	base := "http://" + cfg.MetricsAddress
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, b := get(t, base+"/metrics"); code == 200 {
			body = b
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no metrics endpoint")
		}
	}
	for _, want := range []string{
		`ec2csi_csi_calls_total{code="InvalidArgument",driver="efs",method="CreateVolume"} 1`,
		`ec2csi_csi_calls_total{code="OK",driver="efs",method="Probe"} 1`,
		`ec2csi_csi_call_duration_seconds_count{driver="efs",method="CreateVolume"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if code, b := get(t, base+"/healthz"); code != 200 || strings.TrimSpace(b) != "ok" {
		t.Fatalf("healthz of a healthy plugin: %d %q", code, b)
	}

	// The state directory disappears (a wiped hostPath, a lost disk).
	if err := os.RemoveAll(cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("healthz with the state directory gone: %d, want 503", code)
	}
	if _, err := csi.NewIdentityClient(conn).Probe(ctx, &csi.ProbeRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Probe with the state directory gone: %v, want Unavailable", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Drivers = []string{"nfs"} }, `--driver "nfs"`},
		{func(c *Config) { c.Mode = "both" }, `--mode "both"`},
		{func(c *Config) { c.Cloud = "gcp" }, `--cloud "gcp"`},
		{func(c *Config) { c.Endpoints[DriverEBS] = c.Endpoints[DriverEFS] }, "different endpoints"},
		{func(c *Config) { c.StateDir = "" }, "--state-dir"},
		{func(c *Config) { c.AttachLimit = -1 }, "--volume-attach-limit"},
		{func(c *Config) { c.KubeletRegistrationDir = "/x"; c.Endpoints[DriverEFS] = "tcp://127.0.0.1:1" }, "needs unix:// endpoints"},
	} {
		c := DefaultConfig()
		tt.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want %q", err, tt.want)
		}
	}
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
