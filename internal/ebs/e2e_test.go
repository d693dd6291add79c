package ebs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/csiserver"
	"github.com/ec2csi/ec2csi/internal/plugin"
	"github.com/ec2csi/ec2csi/internal/testenv"
)

const gib = int64(1) << 30

// cluster is a controller+node plugin in zone local-1a ("node-1") and
// optionally more node-only plugins, all on one state directory: what a
// small EC2 cluster looks like to the local backend.
type cluster struct {
	t     *testing.T
	dir   string
	ctrl  csi.ControllerClient
	nodes map[string]csi.NodeClient
	stops []func()
}

func newCluster(t *testing.T) *cluster {
	testenv.RequireRoot(t)
	c := &cluster{t: t, dir: t.TempDir(), nodes: map[string]csi.NodeClient{}}
	conn := c.start("node-1", plugin.ModeAll, local.DefaultZone, 0)
	c.ctrl = csi.NewControllerClient(conn)
	t.Cleanup(func() {
		for i := len(c.stops) - 1; i >= 0; i-- {
			c.stops[i]()
		}
		testenv.RequireNoMountsUnder(t, c.dir)
		testenv.RequireNoLoopDevicesUnder(t, c.dir)
	})
	return c
}

// start serves a plugin for nodeID and returns a connection to it.
func (c *cluster) start(nodeID, mode, zone string, attachLimit int) *grpc.ClientConn {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sock := filepath.Join(c.dir, nodeID+".sock")
	cfg := plugin.DefaultConfig()
	cfg.Drivers = []string{plugin.DriverEBS}
	cfg.Mode = mode
	cfg.StateDir = filepath.Join(c.dir, "state")
	cfg.Endpoints = map[string]string{plugin.DriverEBS: "unix://" + sock}
	cfg.NodeID = nodeID
	cfg.Zone = zone
	if attachLimit > 0 {
		cfg.AttachLimit = attachLimit
	}
	cfg.Log = testenv.Logger(c.t)
	p, err := plugin.New(ctx, cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	testenv.WaitForSocket(c.t, sock, 5*time.Second)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[nodeID] = csi.NewNodeClient(conn)
	c.stops = append(c.stops, func() { conn.Close(); cancel(); <-done })
	return conn
}

func mountCap(fsType string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fsType}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

var blockCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

func (c *cluster) create(name string, sizeGiB int64, vc *csi.VolumeCapability, src string, zone string) *csi.Volume {
	c.t.Helper()
	req := &csi.CreateVolumeRequest{
		Name: name, Parameters: map[string]string{"type": "gp3"}, VolumeCapabilities: []*csi.VolumeCapability{vc},
		CapacityRange: &csi.CapacityRange{RequiredBytes: sizeGiB * gib},
	}
	if src != "" {
		req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: src}}}
	}
	if zone != "" {
		req.AccessibilityRequirements = &csi.TopologyRequirement{Requisite: []*csi.Topology{{Segments: map[string]string{"topology.kubernetes.io/zone": zone}}}}
	}
	resp, err := c.ctrl.CreateVolume(context.Background(), req)
	if err != nil {
		c.t.Fatalf("create %s: %v", name, err)
	}
	return resp.GetVolume()
}

// use attaches, stages and publishes a volume on node-1, as the kubelet
// does for a pod, and returns the pod's path and a function that undoes it
// all.
func (c *cluster) use(v *csi.Volume, vc *csi.VolumeCapability, pod string) (string, func()) {
	c.t.Helper()
	ctx := context.Background()
	id := v.GetVolumeId()
	pub, err := c.ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: "node-1", VolumeCapability: vc})
	if err != nil {
		c.t.Fatalf("attach %s: %v", id, err)
	}
	node := c.nodes["node-1"]
	staging := filepath.Join(c.dir, "staging", id)
	target := filepath.Join(c.dir, "pods", pod, "vol")
	if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: vc,
		PublishContext: pub.GetPublishContext(), VolumeContext: v.GetVolumeContext()}); err != nil {
		c.t.Fatalf("stage %s: %v", id, err)
	}
	if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: target,
		VolumeCapability: vc, PublishContext: pub.GetPublishContext()}); err != nil {
		c.t.Fatalf("publish %s: %v", id, err)
	}
	return target, func() {
		for _, err := range []error{
			func() error {
				_, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
				return err
			}(),
			func() error {
				_, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
				return err
			}(),
			func() error {
				_, err := c.ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: "node-1"})
				return err
			}(),
		} {
			if err != nil {
				c.t.Errorf("release %s: %v", id, err)
			}
		}
	}
}

func (c *cluster) delete(v *csi.Volume) {
	c.t.Helper()
	if _, err := c.ctrl.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
		c.t.Fatalf("delete %s: %v", v.GetVolumeId(), err)
	}
}

func writeRandom(t *testing.T, path string, size int64) [32]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func fsSize(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

// TestDataSurvivesExpandSnapshotRestore is the walkthrough, for
// each file system: 100 MiB with a checksum, expansion from 4 to 10 GiB
// seen by statfs (df), a snapshot, more writes, and a restore into a new,
// larger volume that holds exactly the first 100 MiB.
func TestDataSurvivesExpandSnapshotRestore(t *testing.T) {
	for _, fs := range []string{"xfs", "ext4"} {
		t.Run(fs, func(t *testing.T) { dataLifecycle(t, fs) })
	}
}

func dataLifecycle(t *testing.T, fs string) {
	c := newCluster(t)
	ctx := context.Background()
	vc := mountCap(fs)
	v := c.create("data", 4, vc, "", "")
	pod, release := c.use(v, vc, "db")
	sum := writeRandom(t, filepath.Join(pod, "first.bin"), 100<<20)
	if sz := fsSize(t, pod); sz > 4*gib || sz < 3*gib {
		t.Fatalf("file system of a 4 GiB volume is %d bytes", sz)
	}

	// Expansion while mounted, as the external-resizer and the kubelet do it.
	exp, err := c.ctrl.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 10 * gib}, VolumeCapability: vc})
	if err != nil || exp.GetCapacityBytes() != 10*gib || !exp.GetNodeExpansionRequired() {
		t.Fatalf("controller expand: %v, %v", exp, err)
	}
	_, err = c.nodes["node-1"].NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: v.GetVolumeId(), VolumePath: pod,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 10 * gib}, VolumeCapability: vc})
	if fs == "ext4" && !testenv.HasCapability(testenv.CapSysResource) {
		// The kernel grows mounted ext4 only with CAP_SYS_RESOURCE. Without
		// it the error must say so, and the next staging grows it offline.
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
			t.Fatalf("online ext4 growth without CAP_SYS_RESOURCE: %v", err)
		}
		t.Log("no CAP_SYS_RESOURCE: ext4 grows when the volume is staged again")
		release()
		pod, release = c.use(v, vc, "db")
	} else if err != nil {
		t.Fatalf("node expand: %v", err)
	}
	if sz := fsSize(t, pod); sz < 9*gib+gib/2 {
		t.Fatalf("after expanding to 10 GiB, statfs says %d bytes", sz)
	}

	snap, err := c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: v.GetVolumeId()})
	if err != nil || !snap.GetSnapshot().GetReadyToUse() || snap.GetSnapshot().GetSizeBytes() != 10*gib {
		t.Fatalf("snapshot: %v, %v", snap, err)
	}
	writeRandom(t, filepath.Join(pod, "second.bin"), 50<<20)

	restored := c.create("restored", 12, vc, snap.GetSnapshot().GetSnapshotId(), "")
	rpod, rrelease := c.use(restored, vc, "restore")
	if got := fileSum(t, filepath.Join(rpod, "first.bin")); got != sum {
		t.Fatal("restored first.bin differs from what was written before the snapshot")
	}
	if _, err := os.Stat(filepath.Join(rpod, "second.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restored volume holds second.bin, written after the snapshot: %v", err)
	}
	if sz := fsSize(t, rpod); sz < 11*gib+gib/2 {
		t.Fatalf("restored 12 GiB volume's file system is %d bytes: not grown at stage time", sz)
	}
	// The source is untouched by the restore.
	if got := fileSum(t, filepath.Join(pod, "first.bin")); got != sum {
		t.Fatal("source volume changed")
	}
	rrelease()
	release()
	c.delete(restored)
	c.delete(v)
	if _, err := c.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
}

func TestBlockVolume(t *testing.T) {
	c := newCluster(t)
	v := c.create("raw", 1, blockCap, "", "")
	dev, release := c.use(v, blockCap, "raw")
	defer c.delete(v)
	defer release()
	fi, err := os.Stat(dev)
	if err != nil || fi.Mode()&os.ModeDevice == 0 {
		t.Fatalf("published block volume at %s is %v, %v; want a device node", dev, fi.Mode(), err)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	pattern := bytes.Repeat([]byte("ec2csi"), 1000)
	if _, err := f.WriteAt(pattern, 512<<20); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	got := make([]byte, len(pattern))
	if _, err := f.ReadAt(got, 512<<20); err != nil || !bytes.Equal(got, pattern) {
		t.Fatalf("read back %q..., %v", got[:12], err)
	}
	f.Close()
	stats, err := c.nodes["node-1"].NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: dev})
	if err != nil || stats.GetUsage()[0].GetTotal() != gib {
		t.Fatalf("stats %v, %v", stats, err)
	}
	if exp, err := c.nodes["node-1"].NodeExpandVolume(context.Background(), &csi.NodeExpandVolumeRequest{VolumeId: v.GetVolumeId(), VolumePath: dev, VolumeCapability: blockCap}); err != nil || exp.GetCapacityBytes() != gib {
		t.Fatalf("node expand of a block volume: %v, %v", exp, err)
	}
}

func TestSharedAccessModesPointToEFS(t *testing.T) {
	c := newCluster(t)
	for _, mode := range []csi.VolumeCapability_AccessMode_Mode{csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY} {
		vc := mountCap("ext4")
		vc.AccessMode.Mode = mode
		_, err := c.ctrl.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: "rwx", VolumeCapabilities: []*csi.VolumeCapability{vc}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "cannot be shared across nodes") || !strings.Contains(err.Error(), "use EFS") {
			t.Fatalf("%s: %v", mode, err)
		}
	}
}

func TestTopologyAndAttachRules(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	c.start("node-2", plugin.ModeNode, "local-1b", 0)
	c.start("node-3", plugin.ModeNode, local.DefaultZone, 2)
	vc := mountCap("ext4")

	// The node reports its zone under both keys.
	info, err := c.nodes["node-2"].NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || info.GetAccessibleTopology().GetSegments()["topology.ebs.ec2csi.io/zone"] != "local-1b" ||
		info.GetAccessibleTopology().GetSegments()["topology.kubernetes.io/zone"] != "local-1b" || info.GetMaxVolumesPerNode() != 25 {
		t.Fatalf("node info %v, %v", info, err)
	}
	inB := c.create("in-b", 1, vc, "", "local-1b")
	if z := inB.GetAccessibleTopology()[0].GetSegments()["topology.kubernetes.io/zone"]; z != "local-1b" {
		t.Fatalf("volume created in %s, want local-1b", z)
	}
	_, err = c.ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: inB.GetVolumeId(), NodeId: "node-1", VolumeCapability: vc})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "local-1b") || !strings.Contains(err.Error(), local.DefaultZone) {
		t.Fatalf("cross-zone attach: %v; want FailedPrecondition naming both zones", err)
	}
	inA := c.create("in-a", 1, vc, "", "")
	publish := func(id, node string) error {
		_, err := c.ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: node, VolumeCapability: vc})
		return err
	}
	unpublish := func(id, node string) {
		if _, err := c.ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: node}); err != nil {
			t.Error(err)
		}
	}
	if err := publish(inA.GetVolumeId(), "node-1"); err != nil {
		t.Fatal(err)
	}
	if err := publish(inA.GetVolumeId(), "node-1"); err != nil {
		t.Fatalf("second attach to the same node: %v", err)
	}
	err = publish(inA.GetVolumeId(), "node-3")
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "attached to node node-1") {
		t.Fatalf("attach while attached elsewhere: %v", err)
	}
	got, _ := c.ctrl.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: inA.GetVolumeId()})
	if nodes := got.GetStatus().GetPublishedNodeIds(); len(nodes) != 1 || nodes[0] != "node-1" {
		t.Fatalf("published nodes %v", nodes)
	}
	unpublish(inA.GetVolumeId(), "node-1")
	unpublish(inA.GetVolumeId(), "node-1")

	// node-3 takes two volumes; the third is over its limit.
	var vols []*csi.Volume
	for i := range 3 {
		vols = append(vols, c.create("lim-"+string(rune('a'+i)), 1, vc, "", ""))
	}
	for i, v := range vols {
		err := publish(v.GetVolumeId(), "node-3")
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if i == 2 && (status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "limit")) {
			t.Fatalf("attach over the limit: %v", err)
		}
	}
	list, err := c.ctrl.ListVolumes(ctx, &csi.ListVolumesRequest{MaxEntries: 2})
	if err != nil || len(list.GetEntries()) != 2 || list.GetNextToken() == "" {
		t.Fatalf("list page 1: %v, %v", list, err)
	}
	for _, v := range vols[:2] {
		unpublish(v.GetVolumeId(), "node-3")
	}
	for _, v := range append(vols, inA, inB) {
		c.delete(v)
	}
}

// TestXFSRestoreMountsBesideItsSource: a restored XFS volume has its
// source's UUID; both must mount at once (nouuid).
func TestXFSRestoreMountsBesideItsSource(t *testing.T) {
	c := newCluster(t)
	vc := mountCap("xfs")
	v := c.create("xfs-src", 1, vc, "", "")
	pod, release := c.use(v, vc, "x1")
	sum := writeRandom(t, filepath.Join(pod, "f"), 4<<20)
	snap, err := c.ctrl.CreateSnapshot(context.Background(), &csi.CreateSnapshotRequest{Name: "xs", SourceVolumeId: v.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	r := c.create("xfs-copy", 1, vc, snap.GetSnapshot().GetSnapshotId(), "")
	rpod, rrelease := c.use(r, vc, "x2")
	if fileSum(t, filepath.Join(rpod, "f")) != sum {
		t.Fatal("restored data differs")
	}
	rrelease()
	release()
	c.delete(r)
	c.delete(v)
	c.ctrl.DeleteSnapshot(context.Background(), &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()})
}

// TestWrongDeviceIsRefused points volume A's device link at volume B's
// device, the stale-link failure upstream once had: staging A must refuse
// and leave B alone.
func TestWrongDeviceIsRefused(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	vc := mountCap("ext4")
	a, b := c.create("a", 1, vc, "", ""), c.create("b", 1, vc, "", "")
	pb, releaseB := c.use(b, vc, "b")
	sum := writeRandom(t, filepath.Join(pb, "keep"), 1<<20)

	pub, err := c.ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: a.GetVolumeId(), NodeId: "node-1", VolumeCapability: vc})
	if err != nil {
		t.Fatal(err)
	}
	byID := filepath.Join(c.dir, "state", "ebs", "dev", "disk", "by-id")
	bDev, _ := os.Readlink(filepath.Join(byID, cloud.EBSDeviceLink(b.GetVolumeId())))
	linkA := filepath.Join(byID, cloud.EBSDeviceLink(a.GetVolumeId()))
	aDev, _ := os.Readlink(linkA)
	os.Remove(linkA)
	os.Symlink(bDev, linkA)
	_, err = c.nodes["node-1"].NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: a.GetVolumeId(), StagingTargetPath: filepath.Join(c.dir, "sa"),
		VolumeCapability: vc, PublishContext: pub.GetPublishContext()})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("stage through a stale link: %v", err)
	}
	os.Remove(linkA)
	os.Symlink(aDev, linkA)
	if fileSum(t, filepath.Join(pb, "keep")) != sum {
		t.Fatal("volume B changed")
	}
	c.ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: a.GetVolumeId(), NodeId: "node-1"})
	releaseB()
	c.delete(a)
	c.delete(b)
}

// TestNeverReformats stages an ext4 volume holding data, then asks for it
// as xfs: refused, and the data is still there as ext4.
func TestNeverReformats(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	v := c.create("keep", 1, mountCap("ext4"), "", "")
	pod, release := c.use(v, mountCap("ext4"), "p")
	sum := writeRandom(t, filepath.Join(pod, "data"), 1<<20)
	release()
	pub, _ := c.ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: v.GetVolumeId(), NodeId: "node-1", VolumeCapability: mountCap("xfs")})
	_, err := c.nodes["node-1"].NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: v.GetVolumeId(), StagingTargetPath: filepath.Join(c.dir, "s"),
		VolumeCapability: mountCap("xfs"), PublishContext: pub.GetPublishContext()})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "never reformats") {
		t.Fatalf("stage as xfs: %v", err)
	}
	c.ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), NodeId: "node-1"})
	pod, release = c.use(v, mountCap("ext4"), "p2")
	if fileSum(t, filepath.Join(pod, "data")) != sum {
		t.Fatal("data changed")
	}
	release()
	c.delete(v)
}

// TestStageSurvivesPluginRestart: the node plugin restarts between two
// NodeStageVolume calls (kubelet retries); the second one succeeds without
// a second mount.
func TestStageSurvivesPluginRestart(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	vc := mountCap("ext4")
	v := c.create("restart", 1, vc, "", "")
	pod, release := c.use(v, vc, "p")
	defer c.delete(v)
	defer release()
	writeRandom(t, filepath.Join(pod, "f"), 1<<10)

	c.start("node-1b", plugin.ModeNode, local.DefaultZone, 0) // a second plugin instance on the same host state
	staging := filepath.Join(c.dir, "staging", v.GetVolumeId())
	node := c.nodes["node-1b"]
	if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: v.GetVolumeId(), StagingTargetPath: staging, VolumeCapability: vc}); err != nil {
		t.Fatalf("stage again after restart: %v", err)
	}
	if m, _ := testenv.MountsUnder(staging); len(m) != 1 {
		t.Fatalf("%d mounts at the staging path: %v", len(m), m)
	}
}

func TestVanishedDeviceIsAbnormal(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	vc := mountCap("ext4")
	v := c.create("gone", 1, vc, "", "")
	pod, release := c.use(v, vc, "p")
	defer c.delete(v)
	defer release()
	stats, err := c.nodes["node-1"].NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: pod})
	if abnormal, _, _ := csiserver.VolumeCondition(stats); err != nil || abnormal {
		t.Fatalf("healthy volume: %v, abnormal=%v", err, abnormal)
	}
	link := filepath.Join(c.dir, "state", "ebs", "dev", "disk", "by-id", cloud.EBSDeviceLink(v.GetVolumeId()))
	dev, _ := os.Readlink(link)
	os.Remove(link)
	defer os.Symlink(dev, link)
	stats, err = c.nodes["node-1"].NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: pod})
	if err != nil {
		t.Fatalf("stats of a volume whose device vanished must not fail: %v", err)
	}
	if abnormal, msg, _ := csiserver.VolumeCondition(stats); !abnormal || !strings.Contains(msg, "DeviceMissing") {
		t.Fatalf("condition %v %q", abnormal, msg)
	}
}
