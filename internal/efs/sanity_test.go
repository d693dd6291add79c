package efs_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/plugin"
	"github.com/ec2csi/ec2csi/internal/testenv"
	"github.com/ec2csi/ec2csi/internal/testenv/sanityconfig"
)

// TestSanity runs the Kubernetes community's CSI conformance suite against
// the EFS driver as `ec2csi serve --driver efs --cloud local` assembles it,
// with real bind mounts. Nothing is skipped by configuration: the specs that
// do not run are those for capabilities EFS does not offer (snapshots,
// expansion, attach, staging), which csi-sanity skips by itself.
func TestSanity(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	b, err := local.Open(ctx, state, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateFileSystem(ctx, "fs-12345678", "sanity"); err != nil {
		t.Fatal(err)
	}
	endpoint := "unix://" + filepath.Join(dir, "csi.sock")
	cfg := plugin.DefaultConfig()
	cfg.Drivers = []string{plugin.DriverEFS}
	cfg.StateDir = state
	cfg.Endpoints = map[string]string{plugin.DriverEFS: endpoint}
	cfg.NodeID = "sanity-node"
	cfg.Log = testenv.Logger(t)
	p, err := plugin.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	testenv.WaitForSocket(t, filepath.Join(dir, "csi.sock"), 5*time.Second)

	sanity.Test(t, sanityconfig.EFS(endpoint, dir, "fs-12345678"))

	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("server: %v", err)
	}
	testenv.RequireNoMountsUnder(t, dir)
	_ = os.RemoveAll(dir)
}
