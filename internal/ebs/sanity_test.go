package ebs_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/ec2csi/ec2csi/internal/plugin"
	"github.com/ec2csi/ec2csi/internal/testenv"
	"github.com/ec2csi/ec2csi/internal/testenv/sanityconfig"
)

// TestSanity runs csi-sanity against the EBS driver as `ec2csi serve
// --driver ebs --cloud local` assembles it: real sparse files, loop
// devices, mkfs, mounts, resizes and snapshots. The specs that do not run
// are those for capabilities EBS does not offer (cloning, group
// snapshots, controller-side volume health), which csi-sanity skips itself.
func TestSanity(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(dir, "csi.sock")
	cfg := plugin.DefaultConfig()
	cfg.Drivers = []string{plugin.DriverEBS}
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Endpoints = map[string]string{plugin.DriverEBS: "unix://" + sock}
	cfg.NodeID = "sanity-node"
	cfg.Log = testenv.Logger(t)
	p, err := plugin.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	testenv.WaitForSocket(t, sock, 5*time.Second)

	sanity.Test(t, sanityconfig.EBS("unix://"+sock, dir))

	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("server: %v", err)
	}
	testenv.RequireNoMountsUnder(t, dir)
	testenv.RequireNoLoopDevicesUnder(t, dir)
}
