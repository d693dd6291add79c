package efs_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/plugin"
	"github.com/ec2csi/ec2csi/internal/testenv"
)

// The crash test re-runs this test binary as the server, so that it can be
// killed with SIGKILL like a real plugin process.
const childEnv = "EC2CSI_EFS_TEST_SERVE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		serveChild(dir)
		return
	}
	os.Exit(m.Run())
}

func serveChild(dir string) {
	cfg := efsConfig(dir)
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := plugin.New(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := p.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

type child struct {
	cmd  *exec.Cmd
	conn *grpc.ClientConn
	once sync.Once
}

func startChild(t *testing.T, dir string) *child {
	t.Helper()
	sock := filepath.Join(dir, "csi.sock")
	os.Remove(sock)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitForSocket(t, sock, 10*time.Second)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, conn: conn}
	// Whatever way the test ends, no server outlives it.
	t.Cleanup(c.kill)
	return c
}

func (c *child) kill() {
	c.once.Do(func() {
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
		c.conn.Close()
	})
}

// TestKillDuringCreateAndPublish kills the plugin with SIGKILL while
// CreateVolume and NodePublishVolume calls are in flight, restarts it, and
// retries every call as a CO would. Afterwards every volume exists exactly
// once with its own GID and an owned directory, every target holds exactly
// one mount, and unpublishing leaves nothing mounted.
func TestKillDuringCreateAndPublish(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	// A failure half-way must not leave the targets mounted; registered
	// first, so it runs after the servers are killed.
	t.Cleanup(func() {
		mounts, _ := testenv.MountsUnder(dir)
		for i := len(mounts) - 1; i >= 0; i-- {
			syscall.Unmount(mounts[i], 0)
		}
	})
	b, err := local.Open(context.Background(), filepath.Join(dir, "state"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateFileSystem(context.Background(), fsID, ""); err != nil {
		t.Fatal(err)
	}
	const n = 40
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("pvc-crash-%02d", i)
	}
	create := func(c *child, name string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := csi.NewControllerClient(c.conn).CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name: name, Parameters: params(), VolumeCapabilities: []*csi.VolumeCapability{rwx},
		})
		return resp.GetVolume().GetVolumeId(), err
	}
	publish := func(c *child, id, target string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := csi.NewNodeClient(c.conn).NodePublishVolume(ctx, publishReq(id, target, rwx, false))
		return err
	}

	// Round 1: kill while creates are in flight.
	c := startChild(t, dir)
	before := make([]string, n)
	var wg sync.WaitGroup
	var answered atomic.Int32
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if before[i], _ = create(c, name); before[i] != "" {
				answered.Add(1)
			}
		}()
	}
	waitUntil(t, func() bool { return answered.Load() >= n/4 })
	c.kill()
	wg.Wait()
	t.Logf("%d of %d creates answered before the kill", countNonEmpty(before), n)

	// Restart; the CO retries every CreateVolume.
	c = startChild(t, dir)
	ids := make([]string, n)
	for i, name := range names {
		id, err := create(c, name)
		if err != nil {
			t.Fatalf("retry of %s after the crash: %v", name, err)
		}
		if before[i] != "" && before[i] != id {
			t.Fatalf("%s was %s before the crash and %s after", name, before[i], id)
		}
		ids[i] = id
	}
	assertVolumes(t, b, ids)

	// Round 2: kill while publishes are in flight.
	targets := make([]string, n)
	for i := range targets {
		targets[i] = filepath.Join(dir, "pods", fmt.Sprint(i))
	}
	published := make([]string, n)
	answered.Store(0)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if publish(c, ids[i], targets[i]) == nil {
				published[i] = "ok"
				answered.Add(1)
			}
		}()
	}
	waitUntil(t, func() bool { return answered.Load() >= n/4 })
	c.kill()
	wg.Wait()
	t.Logf("%d of %d publishes answered before the kill", countNonEmpty(published), n)
	c = startChild(t, dir)
	defer c.kill()
	for i := range n {
		if err := publish(c, ids[i], targets[i]); err != nil {
			t.Fatalf("retry publish %d: %v", i, err)
		}
		if m, _ := testenv.MountsUnder(targets[i]); len(m) != 1 {
			t.Fatalf("target %d has %d mounts after the crash: %v", i, len(m), m)
		}
	}
	node := csi.NewNodeClient(c.conn)
	for i := range n {
		if _, err := node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: ids[i], TargetPath: targets[i]}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.RequireNoMountsUnder(t, dir)
}

func assertVolumes(t *testing.T, b *local.Backend, ids []string) {
	t.Helper()
	ctx := context.Background()
	if cnt, _ := b.AccessPointCount(ctx, fsID); cnt != len(ids) {
		t.Fatalf("%d access points after the crash, want %d (one per name)", cnt, len(ids))
	}
	gids := map[int64]bool{}
	for _, id := range ids {
		ap, err := b.DescribeAccessPoint(ctx, id[len(fsID)+2:])
		if err != nil {
			t.Fatal(err)
		}
		if gids[ap.PosixUser.GID] {
			t.Fatalf("GID %d given twice", ap.PosixUser.GID)
		}
		gids[ap.PosixUser.GID] = true
		fi, err := os.Stat(filepath.Join(b.Dir(), "efs", fsID, ap.RootDirectory))
		if err != nil {
			t.Fatalf("root directory of %s: %v", ap.ID, err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int64(st.Gid) != ap.PosixUser.GID || fi.Mode().Perm() != 0o700 {
			t.Fatalf("root directory of %s: gid %d mode %v", ap.ID, st.Gid, fi.Mode())
		}
	}
}

func countNonEmpty(s []string) int {
	n := 0
	for _, v := range s {
		if v != "" {
			n++
		}
	}
	return n
}

// waitUntil polls cond; the kill must land while work is still in flight,
// so it waits for a share of the answers rather than a fixed time.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for calls to be answered")
		}
		time.Sleep(time.Millisecond)
	}
}
