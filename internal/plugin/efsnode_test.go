package plugin

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/efs"
	"github.com/ec2csi/ec2csi/internal/tunnel"
)

func TestEFSTLSDefault(t *testing.T) {
	on, off := true, false
	for _, tc := range []struct {
		cloud string
		flag  *bool
		want  bool
	}{
		{CloudAWS, nil, true}, {CloudLocal, nil, false},
		{CloudAWS, &off, false}, {CloudLocal, &on, true},
	} {
		c := DefaultConfig()
		c.Cloud, c.EFSTLS = tc.cloud, tc.flag
		if got := c.efsTLS(); got != tc.want {
			t.Errorf("cloud %s, flag %v: TLS %t", tc.cloud, tc.flag, got)
		}
	}
}

func TestValidateTunnelFlags(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.TunnelPortMin, c.TunnelPortMax = 30000, 20000 }, "--tunnel-port-range 30000-20000"},
		{func(c *Config) { c.TunnelPortMin, c.TunnelPortMax = 0, 70000 }, "--tunnel-port-range 0-70000"},
		{func(c *Config) { c.EFSDNSSuffix = "https://amazonaws.com" }, "--efs-dns-suffix"},
	} {
		c := DefaultConfig()
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.want, err)
		}
	}
	c := DefaultConfig()
	c.TunnelPortMin, c.TunnelPortMax = 0, 0 // the tunnel package's default
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// TestNewEFSNodeSource: what aws.go gets. A node process gets NFS mounts
// with tunnels in this process, restored before it returns and stopped by
// Close (which gives up the state directory); a controller gets a source
// that refuses.
func TestNewEFSNodeSource(t *testing.T) {
	c := DefaultConfig()
	c.Cloud, c.Mode, c.Drivers, c.StateDir = CloudAWS, ModeNode, []string{DriverEFS}, t.TempDir()
	src, err := newEFSNodeSource(t.Context(), c, "us-east-1", "us-east-1a")
	if err != nil {
		t.Fatal(err)
	}
	closer, ok := src.(io.Closer)
	if !ok {
		t.Fatalf("%T is no io.Closer: the plugin could not stop its tunnels", src)
	}
	if _, ok := src.(*closingSource).MountSource.(*efs.NFSSource); !ok {
		t.Errorf("source %T", src.(*closingSource).MountSource)
	}
	// The state directory is taken while the source lives.
	if _, err := tunnel.NewManager(tunnel.ManagerConfig{StateDir: filepath.Join(c.StateDir, TunnelStateDir)}); err == nil {
		t.Error("a second Manager took the tunnel state directory")
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := tunnel.NewManager(tunnel.ManagerConfig{StateDir: filepath.Join(c.StateDir, TunnelStateDir)})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	m.Close()

	c.Mode = ModeController
	src, err = newEFSNodeSource(t.Context(), c, "us-east-1", "us-east-1a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Prepare(t.Context(), efs.MountRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("controller's source: %v", err)
	}

	c.Mode = ModeNode
	if _, err := newEFSNodeSource(t.Context(), c, "", "us-east-1a"); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("no region: %v", err)
	}
}
