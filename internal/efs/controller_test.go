package efs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/efs"
)

// lossy is an EFS API whose next CreateAccessPoint does the work and then
// loses the answer, as a connection dropped after the last retry would.
type lossy struct {
	*local.Backend
	loseNext bool
}

func (l *lossy) CreateAccessPoint(ctx context.Context, in cloud.CreateAccessPointInput) (*cloud.AccessPoint, error) {
	ap, err := l.Backend.CreateAccessPoint(ctx, in)
	if l.loseNext && err == nil {
		l.loseNext = false
		return nil, fmt.Errorf("create access point: %w", context.DeadlineExceeded)
	}
	return ap, err
}

func newController(t *testing.T, c efs.Cloud, files efs.Files) *efs.Controller {
	t.Helper()
	return efs.NewController(efs.Options{Name: "efs.ec2csi.io"}, c, files)
}

func openLocal(t *testing.T) *local.Backend {
	t.Helper()
	b, err := local.Open(context.Background(), t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateFileSystem(context.Background(), fsID, ""); err != nil {
		t.Fatal(err)
	}
	return b
}

func createReq(name string, kv ...string) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{Name: name, Parameters: params(kv...), VolumeCapabilities: []*csi.VolumeCapability{rwx}}
}

// TestLostAnswerDoesNotReuseGID: after a CreateAccessPoint whose outcome
// is unknown, the GID it may have taken must not go to another volume.
func TestLostAnswerDoesNotReuseGID(t *testing.T) {
	ctx := context.Background()
	b := &lossy{Backend: openLocal(t)}
	c := newController(t, b, b)
	if _, err := c.CreateVolume(ctx, createReq("warm")); err != nil { // loads the cache
		t.Fatal(err)
	}
	b.loseNext = true
	if _, err := c.CreateVolume(ctx, createReq("lost")); err == nil {
		t.Fatal("the lost answer was not reported")
	}
	v, err := c.CreateVolume(ctx, createReq("next"))
	if err != nil {
		t.Fatal(err)
	}
	gids := map[int64]int{}
	err = b.ListAccessPoints(ctx, fsID, func(page []*cloud.AccessPoint) error {
		for _, ap := range page {
			gids[ap.PosixUser.GID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for gid, n := range gids {
		if n > 1 {
			t.Fatalf("GID %d given to %d access points after a lost answer (volume %s)", gid, n, v.GetVolume().GetVolumeId())
		}
	}
	// The retry of the lost call finds what it made.
	again, err := c.CreateVolume(ctx, createReq("lost"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := b.AccessPointCount(ctx, fsID); n != 3 {
		t.Fatalf("%d access points, want 3 (warm, lost, next): retry made %s", n, again.GetVolume().GetVolumeId())
	}
}

// TestReuseFindsUpstreamAccessPoint: the upstream driver names the client
// token of a reusable access point sha256(PVC name).
func TestReuseFindsUpstreamAccessPoint(t *testing.T) {
	ctx := context.Background()
	b := openLocal(t)
	sum := sha256.Sum256([]byte("logs"))
	gid := int64(50123)
	up, err := b.CreateAccessPoint(ctx, cloud.CreateAccessPointInput{FileSystemID: fsID, ClientToken: hex.EncodeToString(sum[:]),
		RootDirectory: "/logs", PosixUser: &cloud.PosixUser{UID: gid, GID: gid}})
	if err != nil {
		t.Fatal(err)
	}
	c := newController(t, b, b)
	v, err := c.CreateVolume(ctx, createReq("pvc-new", "reuseAccessPoint", "true", "csi.storage.k8s.io/pvc/name", "logs"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fsID + "::" + up.ID; v.GetVolume().GetVolumeId() != want {
		t.Fatalf("volume %s, want the upstream driver's access point %s", v.GetVolume().GetVolumeId(), want)
	}
}

// TestDeleteRootDirWithoutFiles: a backend that cannot reach the file
// system's contents refuses the parameter up front, and never leaves a
// volume undeletable.
func TestDeleteRootDirWithoutFiles(t *testing.T) {
	ctx := context.Background()
	b := openLocal(t)
	c := newController(t, b, nil)
	_, err := c.CreateVolume(ctx, createReq("v", "deleteAccessPointRootDir", "true"))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "deleteAccessPointRootDir") {
		t.Fatalf("CreateVolume: %v", err)
	}
	// A volume tagged for deletion by another controller (one with file
	// access) is still deleted; its directory stays.
	withFiles := newController(t, b, b)
	v, err := withFiles.CreateVolume(ctx, createReq("tagged", "deleteAccessPointRootDir", "true"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.GetVolume().GetVolumeId()}); err != nil {
		t.Fatalf("DeleteVolume without file access: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir(), "efs", fsID, "tagged")); err != nil {
		t.Fatalf("directory: %v", err)
	}
	if n, _ := b.AccessPointCount(ctx, fsID); n != 0 {
		t.Fatalf("%d access points left", n)
	}
}
