package awsfake

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

const gib = int64(1) << 30

// attachAndWait attaches vol to inst and waits until the fake reports it
// attached.
func attachAndWait(t *testing.T, e *env, vol, inst, device string) {
	t.Helper()
	c := ctx(t)
	if _, err := e.ec2.AttachVolume(c, &ec2.AttachVolumeInput{VolumeId: &vol, InstanceId: &inst, Device: &device}); err != nil {
		t.Fatalf("AttachVolume: %v", err)
	}
	eventually(t, "attached", 2*time.Second, func() bool {
		_, att, _ := e.srv.VolumeState(vol)
		return len(att) == 1 && strings.HasSuffix(att[0], ":attached")
	})
}

func detachAndWait(t *testing.T, e *env, vol string) {
	t.Helper()
	c := ctx(t)
	if _, err := e.ec2.DetachVolume(c, &ec2.DetachVolumeInput{VolumeId: &vol}); err != nil {
		t.Fatalf("DetachVolume: %v", err)
	}
	eventually(t, "detached", 2*time.Second, func() bool {
		st, _, _ := e.srv.VolumeState(vol)
		return st == "available"
	})
}

func TestFileDevices(t *testing.T) {
	dir := t.TempDir()
	devRoot := filepath.Join(dir, "dev")
	e := start(t, Options{Devices: &FileDevices{Dir: filepath.Join(dir, "volumes")}, DevRoot: devRoot})
	c := ctx(t)
	const inst = "i-00000000000000001"
	_ = e.srv.AddInstance(inst, "us-east-1a", "")
	vol, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(vol.VolumeId)
	if err := ec2.NewVolumeAvailableWaiter(e.ec2, fastWaiter).Wait(c, &ec2.DescribeVolumesInput{VolumeIds: []string{id}}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	link := e.srv.DeviceLink(id)
	if want := filepath.Join(devRoot, "disk", "by-id", "nvme-Amazon_Elastic_Block_Store_vol"+strings.TrimPrefix(id, "vol-")); link != want {
		t.Fatalf("DeviceLink = %s, want %s", link, want)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link exists before attaching: %v", err)
	}

	attachAndWait(t, e, id, inst, "/dev/xvdba")
	st, err := os.Stat(link)
	if err != nil || st.Size() != gib {
		t.Fatalf("device behind %s: %v, size %d", link, err, st.Size())
	}
	data := []byte("written through the device")
	if err := writeAt(link, data, 4096); err != nil {
		t.Fatal(err)
	}
	detachAndWait(t, e, id)
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link still there after detaching: %v", err)
	}

	attachAndWait(t, e, id, inst, "/dev/xvdbb")
	if got, err := readAt(link, len(data), 4096); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data after reattaching: %q, %v", got, err)
	}

	if _, err := e.ec2.ModifyVolume(c, &ec2.ModifyVolumeInput{VolumeId: &id, Size: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "device grown", 2*time.Second, func() bool {
		st, err := os.Stat(link)
		return err == nil && st.Size() == 2*gib
	})

	snap, err := e.ec2.CreateSnapshot(c, &ec2.CreateSnapshotInput{VolumeId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAt(link, []byte("after the snapshot"), 4096); err != nil {
		t.Fatal(err)
	}
	if err := ec2.NewSnapshotCompletedWaiter(e.ec2, fastWaiter).Wait(c, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(snap.SnapshotId)}}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	restored, err := e.ec2.CreateVolume(c, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: snap.SnapshotId, Size: aws.Int32(3)})
	if err != nil {
		t.Fatal(err)
	}
	rid := aws.ToString(restored.VolumeId)
	if err := ec2.NewVolumeAvailableWaiter(e.ec2, fastWaiter).Wait(c, &ec2.DescribeVolumesInput{VolumeIds: []string{rid}}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	attachAndWait(t, e, rid, inst, "/dev/xvdbc")
	rlink := e.srv.DeviceLink(rid)
	if got, err := readAt(rlink, len(data), 4096); err != nil || !bytes.Equal(got, data) {
		t.Errorf("restored volume holds %q, %v; want the data at snapshot time", got, err)
	}
	if st, err := os.Stat(rlink); err != nil || st.Size() != 3*gib {
		t.Errorf("restored volume size %v, %v", st.Size(), err)
	}

	detachAndWait(t, e, id)
	backing, _ := filepath.EvalSymlinks(filepath.Join(dir, "volumes", id+".img"))
	if _, err := e.ec2.DeleteVolume(c, &ec2.DeleteVolumeInput{VolumeId: &id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "backing file removed", 2*time.Second, func() bool {
		_, err := os.Stat(backing)
		return os.IsNotExist(err)
	})
}

// TestLoopDevices attaches volumes as real loop devices; it needs root.
func TestLoopDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices")
	}
	if f, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0); err != nil {
		t.Skipf("no loop devices here: %v", err)
	} else {
		f.Close()
	}
	dir := t.TempDir()
	e := start(t, Options{Devices: NewLoopDevices(filepath.Join(dir, "volumes")), DevRoot: filepath.Join(dir, "dev")})
	const inst = "i-00000000000000001"
	_ = e.srv.AddInstance(inst, "us-east-1a", "")
	vol, _ := e.srv.AddVolume(VolumeSpec{SizeGiB: 1})
	attachAndWait(t, e, vol, inst, "/dev/xvdba")
	dev, err := filepath.EvalSymlinks(e.srv.DeviceLink(vol))
	if err != nil || !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("link resolves to %q, %v; want a loop device", dev, err)
	}
	st, err := os.Stat(dev)
	if err != nil || st.Mode()&os.ModeDevice == 0 {
		t.Fatalf("%s is not a device: %v", dev, err)
	}
	if err := writeAt(dev, []byte("block"), 0); err != nil {
		t.Fatal(err)
	}
	detachAndWait(t, e, vol)
	eventually(t, "loop device detached", 2*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
		return err != nil || !strings.Contains(string(b), vol)
	})
	got, err := readAt(filepath.Join(dir, "volumes", vol+".img"), 5, 0)
	if err != nil || string(got) != "block" {
		t.Errorf("backing file holds %q, %v", got, err)
	}
}

func writeAt(path string, b []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readAt(path string, n int, off int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	return b, err
}
