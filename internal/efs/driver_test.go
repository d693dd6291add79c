package efs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
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

const fsID = "fs-12345678"

// env is an EFS plugin served on a socket in a temporary directory, as
// `ec2csi serve --driver efs` runs it, and gRPC clients to it.
type env struct {
	dir     string
	backend *local.Backend
	ctrl    csi.ControllerClient
	node    csi.NodeClient
}

// efsConfig is `ec2csi serve --driver efs` as node-1, with its state in
// dir/state and its socket at dir/csi.sock.
func efsConfig(dir string) plugin.Config {
	cfg := plugin.DefaultConfig()
	cfg.Drivers = []string{plugin.DriverEFS}
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Endpoints = map[string]string{plugin.DriverEFS: "unix://" + filepath.Join(dir, "csi.sock")}
	cfg.NodeID = "node-1"
	return cfg
}

func startEFS(t *testing.T, mutate ...func(*plugin.Config)) *env {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := local.Open(ctx, filepath.Join(dir, "state"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateFileSystem(ctx, fsID, "test"); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "csi.sock")
	cfg := efsConfig(dir)
	cfg.Log = testenv.Logger(t)
	for _, m := range mutate {
		m(&cfg)
	}
	p, err := plugin.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	testenv.WaitForSocket(t, sock, 10*time.Second)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		testenv.RequireNoMountsUnder(t, dir)
	})
	return &env{dir: dir, backend: b, ctrl: csi.NewControllerClient(conn), node: csi.NewNodeClient(conn)}
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode, flags ...string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{MountFlags: flags}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

var rwx = mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)

func params(kv ...string) map[string]string {
	m := map[string]string{"provisioningMode": "efs-ap", "fileSystemId": fsID}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func (e *env) create(t *testing.T, name string, p map[string]string) (*csi.Volume, error) {
	t.Helper()
	resp, err := e.ctrl.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name: name, Parameters: p, VolumeCapabilities: []*csi.VolumeCapability{rwx},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 5 << 30},
	})
	return resp.GetVolume(), err
}

func wantCode(t *testing.T, err error, code codes.Code, contains string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), contains) {
		t.Fatalf("error = %v; want %s containing %q", err, code, contains)
	}
}

func (e *env) accessPoint(t *testing.T, volumeID string) *cloud.AccessPoint {
	t.Helper()
	ap, err := e.backend.DescribeAccessPoint(context.Background(), volumeID[strings.LastIndex(volumeID, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func (e *env) fsPath(p string) string { return filepath.Join(e.dir, "state", "efs", fsID, p) }

func TestCreateVolumeMakesOwnedDirectory(t *testing.T) {
	e := startEFS(t)
	vol, err := e.create(t, "pvc-aaa", params("directoryPerms", "750", "basePath", "/dynamic"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(vol.GetVolumeId(), fsID+"::fsap-") || vol.GetCapacityBytes() != 5<<30 {
		t.Fatalf("volume = %v", vol)
	}
	ap := e.accessPoint(t, vol.GetVolumeId())
	if ap.RootDirectory != "/dynamic/pvc-aaa" || ap.PosixUser.GID != 50000 || ap.PosixUser.UID != 50000 {
		t.Fatalf("access point = %+v %+v", ap, ap.PosixUser)
	}
	fi, err := os.Stat(e.fsPath("dynamic/pvc-aaa"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o750 || st.Uid != 50000 || st.Gid != 50000 {
		t.Fatalf("root dir mode %v owner %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	parent, _ := os.Stat(e.fsPath("dynamic"))
	if parent.Mode().Perm() != 0o755 || parent.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("parent dir mode %v", parent.Mode())
	}
}

func TestCreateVolumeIdempotency(t *testing.T) {
	e := startEFS(t)
	v1, err := e.create(t, "pvc-1", params())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, err := e.create(t, "pvc-1", params())
		if err != nil || again.GetVolumeId() != v1.GetVolumeId() {
			t.Fatalf("repeat: %v, %v; want %s", again, err, v1.GetVolumeId())
		}
	}
	_, err = e.create(t, "pvc-1", params("directoryPerms", "777"))
	wantCode(t, err, codes.AlreadyExists, "different parameters")
	_, err = e.ctrl.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name: "pvc-1", Parameters: params(), VolumeCapabilities: []*csi.VolumeCapability{rwx},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 6 << 30},
	})
	wantCode(t, err, codes.AlreadyExists, "capacity")
	n, _ := e.backend.AccessPointCount(context.Background(), fsID)
	if n != 1 {
		t.Fatalf("%d access points, want 1", n)
	}
}

func TestCreateVolumeRejectsBadInput(t *testing.T) {
	e := startEFS(t)
	_, err := e.create(t, "v", params("colour", "blue"))
	wantCode(t, err, codes.InvalidArgument, "colour")
	_, err = e.create(t, "v", params("fileSystemId", "fs-87654321"))
	wantCode(t, err, codes.InvalidArgument, "fileSystemId=fs-87654321")
	_, err = e.create(t, "v", params("az", "mars-1a"))
	wantCode(t, err, codes.InvalidArgument, "az=mars-1a")
	_, err = e.create(t, "v", params("enableTagging", "false", "deleteAccessPointRootDir", "true"))
	wantCode(t, err, codes.InvalidArgument, "enableTagging")
	_, err = e.ctrl.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: "v", Parameters: params(),
		VolumeCapabilities: []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}})
	wantCode(t, err, codes.InvalidArgument, "block")
	_, err = e.ctrl.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: "v", Parameters: params(),
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, "bogus=1")}})
	wantCode(t, err, codes.InvalidArgument, `"bogus=1"`)
}

func TestCreateVolumeAZGivesMountTarget(t *testing.T) {
	e := startEFS(t)
	vol, err := e.create(t, "v", params("az", local.DefaultZone))
	if err != nil || vol.GetVolumeContext()["mounttargetip"] != "127.0.0.1" {
		t.Fatalf("%v, %v", vol, err)
	}
}

// TestConcurrentCreatesGetDistinctGIDs is the upstream bug where two access
// points got the same GID: 100 CreateVolume calls at once must give 100
// access points and 100 GIDs.
func TestConcurrentCreatesGetDistinctGIDs(t *testing.T) {
	e := startEFS(t)
	const n = 100
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := e.create(t, fmt.Sprintf("pvc-%03d", i), params("gidRangeStart", "7000", "gidRangeEnd", "7999"))
			ids[i], errs[i] = v.GetVolumeId(), err
		}()
	}
	wg.Wait()
	gids := map[int64]string{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		ap := e.accessPoint(t, ids[i])
		if other, dup := gids[ap.PosixUser.GID]; dup {
			t.Fatalf("GID %d given to %s and %s", ap.PosixUser.GID, other, ap.ID)
		}
		if ap.PosixUser.GID < 7000 || ap.PosixUser.GID > 7999 {
			t.Fatalf("GID %d outside range", ap.PosixUser.GID)
		}
		gids[ap.PosixUser.GID] = ap.ID
	}
	if cnt, _ := e.backend.AccessPointCount(context.Background(), fsID); cnt != n {
		t.Fatalf("%d access points, want %d", cnt, n)
	}
}

func TestFullGIDRangeIsResourceExhausted(t *testing.T) {
	e := startEFS(t)
	p := params("gidRangeStart", "300", "gidRangeEnd", "302")
	for i := range 3 {
		if _, err := e.create(t, fmt.Sprintf("v%d", i), p); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.create(t, "v3", p)
	wantCode(t, err, codes.ResourceExhausted, "GID range 300-302 of file system "+fsID+" is full")
	// Deleting a volume frees its GID for the next one.
	v1, _ := e.create(t, "v1", p)
	if _, err := e.ctrl.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v1.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	v3, err := e.create(t, "v3", p)
	if err != nil || e.accessPoint(t, v3.GetVolumeId()).PosixUser.GID != 301 {
		t.Fatalf("after delete: %v, %v", v3, err)
	}
}

func TestFixedUIDGID(t *testing.T) {
	e := startEFS(t)
	v, err := e.create(t, "v", params("uid", "1001", "gid", "1002"))
	if err != nil {
		t.Fatal(err)
	}
	if pu := e.accessPoint(t, v.GetVolumeId()).PosixUser; pu.UID != 1001 || pu.GID != 1002 {
		t.Fatalf("posix user %+v", pu)
	}
}

func TestSubPathPatternAndReuse(t *testing.T) {
	e := startEFS(t)
	meta := []string{"csi.storage.k8s.io/pvc/name", "logs", "csi.storage.k8s.io/pvc/namespace", "airflow", "csi.storage.k8s.io/pv/name", "pvc-1"}
	v, err := e.create(t, "pvc-1", params(append([]string{"basePath", "/k8s", "subPathPattern", "${.PVC.namespace}/${.PVC.name}", "ensureUniqueDirectory", "false"}, meta...)...))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.accessPoint(t, v.GetVolumeId()).RootDirectory; got != "/k8s/airflow/logs" {
		t.Fatalf("root = %s", got)
	}
	// reuseAccessPoint: a PV of another name (another cluster) for the
	// same PVC name finds the same access point.
	reuse := params(append([]string{"reuseAccessPoint", "true"}, meta...)...)
	a, err := e.create(t, "pvc-1", reuse)
	if err != nil {
		t.Fatal(err)
	}
	reuse["csi.storage.k8s.io/pv/name"] = "pvc-2"
	b, err := e.create(t, "pvc-2", reuse)
	if err != nil || b.GetVolumeId() != a.GetVolumeId() {
		t.Fatalf("reuse gave %v, %v; want %s", b, err, a.GetVolumeId())
	}
}

func TestDeleteVolumeKeepsDataUnlessAsked(t *testing.T) {
	e := startEFS(t)
	ctx := context.Background()
	keep, _ := e.create(t, "keep", params())
	drop, _ := e.create(t, "drop", params("deleteAccessPointRootDir", "true"))
	for _, name := range []string{"keep", "drop"} {
		if err := os.WriteFile(e.fsPath(name+"/data"), []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []*csi.Volume{keep, drop} {
		for range 2 { // idempotent
			if _, err := e.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if b, err := os.ReadFile(e.fsPath("keep/data")); err != nil || string(b) != "precious" {
		t.Fatalf("data of a default volume lost: %v", err)
	}
	if _, err := os.Stat(e.fsPath("drop")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleteAccessPointRootDir volume's directory still there: %v", err)
	}
	if n, _ := e.backend.AccessPointCount(ctx, fsID); n != 0 {
		t.Fatalf("%d access points left", n)
	}
	for _, id := range []string{fsID, fsID + ":/x", fsID + "::fsap-0000000000000dead", "fake-vol-id"} {
		if _, err := e.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Errorf("DeleteVolume(%s) = %v, want success", id, err)
		}
	}
}

// TestDeleteKeepsSharedRoot: two access points on one directory (a reused
// or hand-made one); deleting one with deleteAccessPointRootDir must not
// destroy the other's data.
func TestDeleteKeepsSharedRoot(t *testing.T) {
	e := startEFS(t)
	ctx := context.Background()
	v, _ := e.create(t, "shared", params("deleteAccessPointRootDir", "true"))
	ap := e.accessPoint(t, v.GetVolumeId())
	if _, err := e.backend.CreateAccessPoint(ctx, cloud.CreateAccessPointInput{FileSystemID: fsID, ClientToken: "other", RootDirectory: ap.RootDirectory}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(e.fsPath("shared/f"), []byte("x"), 0o644)
	if _, err := e.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.fsPath("shared/f")); err != nil {
		t.Fatalf("shared directory deleted: %v", err)
	}
}

func publishReq(id, target string, c *csi.VolumeCapability, ro bool) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{VolumeId: id, TargetPath: target, VolumeCapability: c, Readonly: ro}
}

// TestTwoPodsShareData is the classic out.txt test: two targets of one
// volume, written in one and read in the other, and a read-only one that
// really is read-only.
func TestTwoPodsShareData(t *testing.T) {
	e := startEFS(t)
	ctx := context.Background()
	v, _ := e.create(t, "shared", params())
	a, b, ro := filepath.Join(e.dir, "pod-a"), filepath.Join(e.dir, "pod-b"), filepath.Join(e.dir, "pod-ro")
	for _, tgt := range []string{a, b} {
		for range 2 { // the second call is a no-op success
			if _, err := e.node.NodePublishVolume(ctx, publishReq(v.GetVolumeId(), tgt, rwx, false)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := e.node.NodePublishVolume(ctx, publishReq(v.GetVolumeId(), ro, rwx, true)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "out.txt"), []byte("hello from a"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tgt := range []string{b, ro} {
		if got, err := os.ReadFile(filepath.Join(tgt, "out.txt")); err != nil || string(got) != "hello from a" {
			t.Fatalf("read in %s: %q, %v", tgt, got, err)
		}
	}
	if err := os.WriteFile(filepath.Join(ro, "x"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write to read-only publish: %v, want EROFS", err)
	}
	// Publishing the read-only target again as read-write is a conflict.
	_, err := e.node.NodePublishVolume(ctx, publishReq(v.GetVolumeId(), ro, rwx, false))
	wantCode(t, err, codes.AlreadyExists, "read-only")

	stats, err := e.node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: a})
	if err != nil || len(stats.GetUsage()) != 2 || stats.GetUsage()[0].GetTotal() <= 0 {
		t.Fatalf("stats %v, %v", stats, err)
	}
	if abnormal, _, ok := csiserver.VolumeCondition(stats); !ok || abnormal {
		t.Fatalf("condition of a healthy volume: abnormal=%v present=%v", abnormal, ok)
	}
	for _, tgt := range []string{a, b, ro} {
		for range 2 {
			if _, err := e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: tgt}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(tgt); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("target %s not removed: %v", tgt, err)
		}
	}
	if b, _ := os.ReadFile(e.fsPath("shared/out.txt")); string(b) != "hello from a" {
		t.Fatal("data lost on unpublish")
	}
}

func TestStaticHandles(t *testing.T) {
	e := startEFS(t)
	ctx := context.Background()
	os.MkdirAll(e.fsPath("static/sub"), 0o755)
	os.WriteFile(e.fsPath("static/sub/f"), []byte("static"), 0o644)
	os.Symlink("/etc", e.fsPath("static/escape"))
	v, _ := e.create(t, "dyn", params())
	apID := v.GetVolumeId()[strings.LastIndex(v.GetVolumeId(), ":")+1:]
	os.MkdirAll(e.fsPath("dyn/inner"), 0o755)

	for _, tt := range []struct {
		handle string
		flags  []string
		code   codes.Code
		msg    string
		file   string
	}{
		{handle: fsID, file: "static/sub/f"},
		{handle: fsID + ":/static/sub", file: "f"},
		{handle: fsID + "::" + apID, code: codes.OK},
		{handle: fsID + ":/inner:" + apID, code: codes.OK},
		{handle: fsID, flags: []string{"accesspoint=" + apID}, code: codes.OK},
		{handle: fsID + ":/static/../..", code: codes.InvalidArgument, msg: "'..'"},
		{handle: "fs-1234", code: codes.InvalidArgument, msg: `"fs-1234"`},
		{handle: fsID + ":/a:b:c", code: codes.InvalidArgument, msg: "fields"},
		{handle: fsID + ":/missing", code: codes.NotFound, msg: "/missing"},
		{handle: "fs-87654321", code: codes.NotFound, msg: "fs-87654321"},
		{handle: fsID + "::fsap-00000000000000000", code: codes.NotFound, msg: "fsap-00000000000000000"},
		{handle: fsID + ":/static/escape", code: codes.InvalidArgument, msg: "symbolic link"},
		{handle: fsID + "::" + apID, flags: []string{"accesspoint=fsap-11111111111111111"}, code: codes.InvalidArgument, msg: "contradicts"},
		{handle: fsID, flags: []string{"wsize=1048576,bananas"}, code: codes.InvalidArgument, msg: `"bananas"`},
	} {
		t.Run(tt.handle, func(t *testing.T) {
			target := filepath.Join(e.dir, "t", strings.NewReplacer("/", "_", ":", "_").Replace(tt.handle))
			c := mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, tt.flags...)
			_, err := e.node.NodePublishVolume(ctx, publishReq(tt.handle, target, c, false))
			if tt.code != codes.OK || tt.msg != "" {
				wantCode(t, err, tt.code, tt.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: tt.handle, TargetPath: target})
			if tt.file != "" {
				if b, err := os.ReadFile(filepath.Join(target, tt.file)); err != nil || string(b) != "static" {
					t.Fatalf("read %s: %q %v", tt.file, b, err)
				}
			}
		})
	}
}

func TestHealthReportsDeletedDirectory(t *testing.T) {
	e := startEFS(t)
	ctx := context.Background()
	v, _ := e.create(t, "gone", params())
	target := filepath.Join(e.dir, "pod")
	if _, err := e.node.NodePublishVolume(ctx, publishReq(v.GetVolumeId(), target, rwx, false)); err != nil {
		t.Fatal(err)
	}
	defer e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: target})
	if err := os.RemoveAll(e.fsPath("gone")); err != nil {
		t.Fatal(err)
	}
	stats, err := e.node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: target})
	if err != nil {
		t.Fatalf("stats of a volume whose directory vanished must not fail: %v", err)
	}
	if abnormal, msg, _ := csiserver.VolumeCondition(stats); !abnormal || !strings.Contains(msg, "deleted") {
		t.Fatalf("condition = %v %q, want abnormal 'deleted'", abnormal, msg)
	}
	h, err := e.node.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: v.GetVolumeId(), VolumePublishPath: target})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) == 0 {
		t.Fatalf("health = %v, %v", h, err)
	}
	_, err = e.node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: filepath.Join(e.dir, "nope")})
	wantCode(t, err, codes.NotFound, "nope")
}

func TestSingleWriterExcludesSecondTarget(t *testing.T) {
	e := startEFS(t)
	ctx := context.Background()
	v, _ := e.create(t, "single", params())
	one := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
	a, b := filepath.Join(e.dir, "a"), filepath.Join(e.dir, "b")
	if _, err := e.node.NodePublishVolume(ctx, publishReq(v.GetVolumeId(), a, one, false)); err != nil {
		t.Fatal(err)
	}
	_, err := e.node.NodePublishVolume(ctx, publishReq(v.GetVolumeId(), b, rwx, false))
	wantCode(t, err, codes.FailedPrecondition, a)
	e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: a})
	if _, err := e.node.NodePublishVolume(ctx, publishReq(v.GetVolumeId(), b, one, false)); err != nil {
		t.Fatalf("after the first target went: %v", err)
	}
	e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: b})
}

// TestConcurrentPublishSameTarget: kubelet retries can overlap; the volume
// lock makes them one mount, not a stack of mounts.
func TestConcurrentPublishSameTarget(t *testing.T) {
	e := startEFS(t)
	ctx := context.Background()
	v, _ := e.create(t, "v", params())
	target := filepath.Join(e.dir, "pod")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.node.NodePublishVolume(ctx, publishReq(v.GetVolumeId(), target, rwx, false)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if m, _ := testenv.MountsUnder(target); len(m) != 1 {
		t.Fatalf("%d mounts at the target, want 1: %v", len(m), m)
	}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: target}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}
