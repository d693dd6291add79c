package local

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/loop"
	"github.com/ec2csi/ec2csi/internal/testenv"
)

// TestSnapshotFindsMountInAnotherNamespace: in Kubernetes the controller
// runs in its own container; the file system it must freeze is mounted in
// the node plugin's and the host's mount namespaces only. Here a process
// in a private mount namespace holds the mount, and the snapshot must
// still freeze it and carry data that was never synced.
func TestSnapshotFindsMountInAnotherNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	b, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.RegisterNode(ctx, "n1", DefaultZone, 5); err != nil {
		t.Fatal(err)
	}
	v, err := b.CreateVolume(ctx, cloud.CreateVolumeInput{ClientToken: "t", SizeGiB: 1, Type: "gp3", AvailabilityZone: DefaultZone})
	if err != nil {
		t.Fatal(err)
	}
	link, err := b.AttachVolume(ctx, v.ID, "n1")
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := filepath.EvalSymlinks(link)
	defer b.DetachVolume(ctx, v.ID, "n1")
	if out, err := exec.Command("mkfs.xfs", "-q", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}

	// The writer mounts in a namespace of its own, writes without sync and
	// waits; it unmounts when we close its stdin.
	mnt := filepath.Join(dir, "private")
	os.MkdirAll(mnt, 0o755)
	script := "mount " + dev + " " + mnt + " && printf unsynced-data > " + mnt + "/f && echo ready && read _; umount " + mnt
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	stdin, _ := cmd.StdinPipe()
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ready"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("writer did not start: %q", out.String())
		}
	}
	if mps, _ := loop.MountPoints(dev); len(mps) != 0 {
		t.Fatalf("the mount leaked into our namespace: %v", mps)
	}
	if got := findMount(dev); !strings.HasPrefix(got, "/proc/") || !strings.HasSuffix(got, mnt) {
		t.Fatalf("findMount = %q, want /proc/PID/root%s", got, mnt)
	}
	snap, err := b.CreateSnapshot(ctx, cloud.CreateSnapshotInput{VolumeID: v.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer b.DeleteSnapshot(ctx, snap.ID)

	// Read the snapshot's image with a loop device of our own.
	img, err := loop.Attach(b.snapshotFile(snap.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Detach(img)
	check := filepath.Join(dir, "check")
	os.MkdirAll(check, 0o755)
	if out, err := exec.Command("mount", "-o", "ro,nouuid,norecovery", img, check).CombinedOutput(); err != nil {
		t.Fatalf("mount snapshot: %v %s", err, out)
	}
	defer exec.Command("umount", check).Run()
	if got, err := os.ReadFile(filepath.Join(check, "f")); err != nil || string(got) != "unsynced-data" {
		t.Fatalf("snapshot holds %q, %v; want the unsynced write", got, err)
	}
}
