// Package loop attaches regular files as block devices through the kernel's
// loop driver, with its ioctls rather than losetup, so that attaching is
// cheap and a failure says exactly what went wrong.
package loop

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrBusy means the device is still open (mounted, in use) and was not
// detached.
var ErrBusy = errors.New("loop device is in use")

const loFlagsPartscan = 8 // LO_FLAGS_PARTSCAN, not exported by x/sys

// attachMu keeps this process's attaches from racing each other for the
// same free device; other processes are handled by retrying on EBUSY.
var attachMu sync.Mutex

// Attach attaches file read-write as a new loop device and returns its path,
// e.g. /dev/loop3.
func Attach(file string) (string, error) {
	attachMu.Lock()
	defer attachMu.Unlock()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", file, err)
	}
	defer f.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", file, err)
	}
	defer ctl.Close()
	for range 64 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", fmt.Errorf("attach %s: find a free loop device: %w", file, err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		if err := ensureNode(dev, n); err != nil {
			return "", fmt.Errorf("attach %s: %w", file, err)
		}
		err = configure(dev, f)
		if errors.Is(err, unix.EBUSY) {
			continue // another process took it between the two calls
		}
		if err != nil {
			return "", fmt.Errorf("attach %s to %s: %w", file, dev, err)
		}
		return dev, nil
	}
	return "", fmt.Errorf("attach %s: every free loop device was taken by someone else first", file)
}

func configure(dev string, backing *os.File) error {
	d, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
	cfg.Info.Flags = loFlagsPartscan
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], backing.Name())
	return unix.IoctlLoopConfigure(int(d.Fd()), &cfg)
}

// ensureNode creates /dev/loopN when the kernel made the device but no
// device node exists, as in containers with a static /dev.
func ensureNode(dev string, n int) error {
	if _, err := os.Stat(dev); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	err := unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n))))
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create device node %s: %w", dev, err)
	}
	return nil
}

// Detach detaches dev. A device that is still open (mounted) is left
// attached and ErrBusy returned: the kernel would otherwise only mark it to
// detach on last close, and it would linger unseen.
func Detach(dev string) error {
	if open, err := Holders(dev); err != nil {
		return err
	} else if len(open) > 0 {
		return fmt.Errorf("detach %s: held by %s: %w", dev, strings.Join(open, ", "), ErrBusy)
	}
	d, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("detach %s: %w", dev, err)
	}
	defer d.Close()
	if err := unix.IoctlSetInt(int(d.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("detach %s: %w", dev, ErrBusy)
		}
		return fmt.Errorf("detach %s: %w", dev, err)
	}
	return nil
}

// Holders lists what keeps dev busy: mount points of it and kernel holders
// (device-mapper and the like).
func Holders(dev string) ([]string, error) {
	var out []string
	name := filepath.Base(dev)
	if entries, err := os.ReadDir(filepath.Join("/sys/block", name, "holders")); err == nil {
		for _, e := range entries {
			out = append(out, "/dev/"+e.Name())
		}
	}
	mounts, err := MountPoints(dev)
	if err != nil {
		return nil, err
	}
	return append(out, mounts...), nil
}

// MountPoints lists where dev is mounted, from /proc/self/mountinfo.
func MountPoints(dev string) ([]string, error) {
	return MountPointsIn("/proc/self/mountinfo", dev)
}

// MountPointsIn lists where dev is mounted according to a mountinfo file,
// e.g. another process's /proc/PID/mountinfo.
func MountPointsIn(mountinfo, dev string) ([]string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dev, err)
	}
	want := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	raw, err := os.ReadFile(mountinfo)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[2] == want {
			out = append(out, unescapeMountPath(f[4]))
		}
	}
	return out, nil
}

func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Refresh makes dev see its backing file's current size, after the file
// grew.
func Refresh(dev string) error {
	d, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("refresh %s: %w", dev, err)
	}
	defer d.Close()
	if err := unix.IoctlSetInt(int(d.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("refresh capacity of %s: %w", dev, err)
	}
	return nil
}

// BackingFile returns the file dev is attached to, or "" when dev is not
// attached.
func BackingFile(dev string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read backing file of %s: %w", dev, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Find returns the loop devices attached to file.
func Find(file string) ([]string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	matches, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue // detached meanwhile
		}
		if strings.TrimSpace(string(b)) == abs {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(m))))
		}
	}
	return out, nil
}

// Size returns the size of the block device in bytes.
func Size(dev string) (int64, error) {
	d, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n, err := d.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return n, nil
}
