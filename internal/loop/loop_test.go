package loop

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ec2csi/ec2csi/internal/testenv"
)

func sparse(t *testing.T, size int64) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "vol.img")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f, size); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAttachFindRefreshDetach(t *testing.T) {
	testenv.RequireRoot(t)
	f := sparse(t, 64<<20)
	dev, err := Attach(f)
	if err != nil {
		t.Fatal(err)
	}
	defer Detach(dev)
	if got, _ := BackingFile(dev); got != f {
		t.Fatalf("backing file %q, want %q", got, f)
	}
	if found, _ := Find(f); len(found) != 1 || found[0] != dev {
		t.Fatalf("Find = %v, want [%s]", found, dev)
	}
	if n, _ := Size(dev); n != 64<<20 {
		t.Fatalf("size %d", n)
	}
	os.Truncate(f, 128<<20)
	if err := Refresh(dev); err != nil {
		t.Fatal(err)
	}
	if n, _ := Size(dev); n != 128<<20 {
		t.Fatalf("size after refresh %d", n)
	}

	// A mounted device is not detached behind the mount's back.
	if out, err := exec.Command("mkfs.ext4", "-q", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	if mp, _ := MountPoints(dev); len(mp) != 1 || mp[0] != mnt {
		t.Fatalf("mount points %v", mp)
	}
	if err := Detach(dev); !errors.Is(err, ErrBusy) {
		exec.Command("umount", mnt).Run()
		t.Fatalf("detach of a mounted device: %v, want ErrBusy", err)
	}
	exec.Command("umount", mnt).Run()
	if err := Detach(dev); err != nil {
		t.Fatal(err)
	}
	if found, _ := Find(f); len(found) != 0 {
		t.Fatalf("still attached after detach: %v", found)
	}
	if err := Detach(dev); err != nil {
		t.Fatalf("second detach: %v", err)
	}
}

func TestConcurrentAttachGetsDistinctDevices(t *testing.T) {
	testenv.RequireRoot(t)
	const n = 12
	files := make([]string, n)
	devs := make([]string, n)
	for i := range files {
		files[i] = sparse(t, 1<<20)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := Attach(files[i])
			if err != nil {
				t.Error(err)
			}
			devs[i] = d
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, d := range devs {
		if d == "" {
			continue
		}
		if seen[d] {
			t.Errorf("device %s given twice", d)
		}
		seen[d] = true
		if b, _ := BackingFile(d); b != files[i] {
			t.Errorf("%s backs %q, want %q", d, b, files[i])
		}
	}
	for _, d := range devs {
		if d != "" {
			if err := Detach(d); err != nil {
				t.Error(err)
			}
		}
	}
}
