package ebssanity_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/ec2csi/ec2csi/deploy/iam"
	"github.com/ec2csi/ec2csi/internal/awsfake"
	awscloud "github.com/ec2csi/ec2csi/internal/cloud/aws"
	"github.com/ec2csi/ec2csi/internal/plugin"
	"github.com/ec2csi/ec2csi/internal/testenv"
	"github.com/ec2csi/ec2csi/internal/testenv/sanityconfig"
)

const instanceID = "i-0123456789abcdef0"

// TestSanity runs csi-sanity, controller and node, against the EBS driver
// on --cloud aws. The fake backs volumes with loop devices and publishes
// their NVMe by-id links under its dev directory, which the node is
// pointed at with --device-root, so attach, device discovery, mkfs, mount,
// resize and snapshots all run for real. IMDS is disabled: region, zone
// and instance come from flags, the instance type from DescribeInstances.
func TestSanity(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	srv, err := awsfake.Start(awsfake.Options{
		Seed:    21,
		Devices: awsfake.NewLoopDevices(filepath.Join(dir, "fake", "volumes")),
		DevRoot: filepath.Join(dir, "fake", "dev"),
		Delays:  &awsfake.Delays{Default: awsfake.Delay{Max: 20 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var closeOnce sync.Once
	closeFake := func() { closeOnce.Do(func() { srv.Close() }) }
	defer closeFake()
	if err := srv.AddInstance(instanceID, "us-east-1a", "m5.large"); err != nil {
		t.Fatal(err)
	}
	root := srv.VolumeIDs() // the instance's root volume
	// The SDK's own configuration, as a pod would have it.
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDAWSFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "awsfake-secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(dir, "csi.sock")
	cfg := plugin.DefaultConfig()
	cfg.Cloud = plugin.CloudAWS
	cfg.Drivers = []string{plugin.DriverEBS}
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Endpoints = map[string]string{plugin.DriverEBS: "unix://" + sock}
	cfg.NodeID = instanceID
	cfg.Zone = "us-east-1a"
	cfg.AWS.Region = "us-east-1"
	cfg.AWS.InstanceID = instanceID
	cfg.AWS.DeviceRoot = filepath.Join(dir, "fake", "dev")
	cfg.AWS.SysfsRoot = dir
	cfg.AWS.Waits = awscloud.WaitOptions{BatchWindow: 2 * time.Millisecond, PollInitial: 25 * time.Millisecond, PollMax: 200 * time.Millisecond}
	cfg.AWS.Retry = awscloud.RetryOptions{MaxBackoff: 50 * time.Millisecond}
	cfg.Log = testenv.Logger(t)
	p, err := plugin.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	testenv.WaitForSocket(t, sock, 5*time.Second)

	sanity.Test(t, sanityconfig.EBS("unix://"+sock, dir))
	requirePolicyAllows(t, iam.EBS, "ec2:", srv)

	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("server: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // let the fake finish deleting
	closeFake()
	testenv.RequireNoMountsUnder(t, dir)
	// Sanity deletes what it made: only the instance's root volume stays,
	// and no loop device is left behind.
	if left := srv.VolumeIDs(); !slices.Equal(left, root) {
		t.Errorf("volumes left behind: %v (the root volume is %v)", left, root)
	}
	testenv.RequireNoLoopDevicesUnder(t, dir)
}

// requirePolicyAllows checks that the policy `ec2csi policy` prints allows
// every API call the driver made.
func requirePolicyAllows(t *testing.T, doc []byte, prefix string, srv *awsfake.Server) {
	t.Helper()
	p, err := iam.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	for op := range srv.AllStats() {
		if !p.Allows(prefix + op) {
			t.Errorf("the driver called %s%s, which its IAM policy does not allow", prefix, op)
		}
	}
}
