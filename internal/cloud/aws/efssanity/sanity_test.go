package efssanity_test

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/ec2csi/ec2csi/deploy/iam"
	"github.com/ec2csi/ec2csi/internal/awsfake"
	awscloud "github.com/ec2csi/ec2csi/internal/cloud/aws"
	"github.com/ec2csi/ec2csi/internal/csiserver"
	"github.com/ec2csi/ec2csi/internal/efs"
	"github.com/ec2csi/ec2csi/internal/mounter"
	"github.com/ec2csi/ec2csi/internal/plugin"
	"github.com/ec2csi/ec2csi/internal/publications"
	"github.com/ec2csi/ec2csi/internal/store"
	"github.com/ec2csi/ec2csi/internal/testenv"
	"github.com/ec2csi/ec2csi/internal/testenv/sanityconfig"
)

// TestSanity runs csi-sanity against the EFS driver on --cloud aws: the
// controller is the plugin as serve builds it, against the fake through
// the real SDK. On AWS the node mounts NFS through TLS tunnels to EFS's
// mount targets, which the fake does not serve, so sanity's node specs go
// to a node served by bind mounts of directories that stand for the
// fake's file systems: the node's own code (publish, unpublish, stats)
// runs for real, the mount source is the stand-in.
func TestSanity(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	srv, err := awsfake.Start(awsfake.Options{Seed: 31, Delays: &awsfake.Delays{Default: awsfake.Delay{Max: 20 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fsID, err := srv.AddFileSystem(awsfake.FileSystemSpec{Name: "sanity"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDAWSFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "awsfake-secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_REGION", "us-east-1")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	controllerSock := filepath.Join(dir, "controller.sock")
	cfg := plugin.DefaultConfig()
	cfg.Cloud = plugin.CloudAWS
	cfg.Mode = plugin.ModeController
	cfg.Drivers = []string{plugin.DriverEFS}
	cfg.StateDir = filepath.Join(dir, "controller")
	cfg.Endpoints = map[string]string{plugin.DriverEFS: "unix://" + controllerSock}
	cfg.AWS.SysfsRoot = dir
	cfg.AWS.Retry = awscloud.RetryOptions{MaxBackoff: 50 * time.Millisecond}
	cfg.Log = testenv.Logger(t)
	p, err := plugin.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	go func() { errc <- p.Run(ctx) }()

	nodeSock := filepath.Join(dir, "node.sock")
	db, err := store.Open(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	files := filepath.Join(dir, "efs")
	res := resolver{efs: awscloud.NewEFS(srv.AWSConfig(), awscloud.Options{}), root: files}
	node := efs.NewNode(efs.Options{Name: "efs.ec2csi.io", NodeID: "sanity-node"}, efs.BindSource{Resolver: res}, mounter.New(), publications.New(db, plugin.DriverEFS))
	nodeSrv := csiserver.New(plugin.DriverEFS, cfg.Log, nil)
	nodeSrv.Register(&csiserver.Identity{Name: "efs.ec2csi.io"}, csiserver.NoController{}, node)
	go func() { errc <- nodeSrv.Serve(ctx, "unix://"+nodeSock) }()
	testenv.WaitForSocket(t, controllerSock, 5*time.Second)
	testenv.WaitForSocket(t, nodeSock, 5*time.Second)

	config := sanityconfig.EFS("unix://"+nodeSock, dir, fsID)
	config.ControllerAddress = "unix://" + controllerSock
	sanity.Test(t, config)
	requirePolicyAllows(t, iam.EFS, "elasticfilesystem:", srv)

	cancel()
	for range 2 {
		if err := <-errc; err != nil {
			t.Errorf("server: %v", err)
		}
	}
	testenv.RequireNoMountsUnder(t, dir)
	// A deleted access point stays listed while EFS (the fake, after a
	// delay) finishes deleting it; only one that stays is left behind.
	aps := srv.AccessPointIDs(fsID)
	for deadline := time.Now().Add(2 * time.Second); len(aps) != 0 && time.Now().Before(deadline); aps = srv.AccessPointIDs(fsID) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(aps) != 0 {
		t.Errorf("access points left behind: %v", aps)
	}
}

// resolver stands for EFS's server side: a file system is a directory
// under root, and an access point's root directory is created in it as
// EFS creates it on first mount.
type resolver struct {
	efs  *awscloud.EFS
	root string
}

func (r resolver) ResolveDirectory(ctx context.Context, fsID, apID, subPath string) (string, error) {
	if _, err := r.efs.DescribeFileSystem(ctx, fsID); err != nil {
		return "", err
	}
	base := "/"
	if apID != "" {
		ap, err := r.efs.DescribeAccessPoint(ctx, apID)
		if err != nil {
			return "", err
		}
		if ap.FileSystemID != fsID {
			return "", fmt.Errorf("access point %s is on %s, not %s", apID, ap.FileSystemID, fsID)
		}
		base = ap.RootDirectory
	}
	d := filepath.Join(r.root, fsID, filepath.FromSlash(path.Clean("/"+path.Join(base, subPath))))
	return d, os.MkdirAll(d, 0o755)
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
