// Package mounter performs the node's mount work with k8s.io/mount-utils:
// bind mounts, file system mounts, formatting and growing.
package mounter

import (
	"errors"
	"fmt"
	"os"

	mount "k8s.io/mount-utils"
	"k8s.io/utils/exec"
)

// Mounter mounts and unmounts on this machine.
type Mounter struct {
	m    mount.Interface
	exec exec.Interface
}

// New returns a Mounter using the system's mount and the kernel's view of
// mounts in /proc/self/mountinfo.
func New() *Mounter {
	return &Mounter{m: mount.New(""), exec: exec.New()}
}

// Mount mounts source at target. Options are passed to mount(8); a "bind"
// option with "ro" is done as a bind followed by a read-only remount, since
// the kernel ignores ro on the bind itself.
func (m *Mounter) Mount(source, target, fstype string, options []string) error {
	if err := m.m.Mount(source, target, fstype, options); err != nil {
		return fmt.Errorf("mount %s at %s: %w", source, target, err)
	}
	return nil
}

// Unmount unmounts target, however many times it is mounted over, and
// removes the directory. A missing target is not an error.
func (m *Mounter) Unmount(target string) error {
	if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// extensiveMountPointCheck: bind mounts of a directory on the same
	// file system are invisible to the cheap device-number check.
	if err := mount.CleanupMountPoint(target, m.m, true); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// IsMountPoint tells whether target is a mount point, bind mounts included.
func (m *Mounter) IsMountPoint(target string) (bool, error) {
	ok, err := m.m.IsMountPoint(target)
	if err != nil {
		return false, fmt.Errorf("check mount point %s: %w", target, err)
	}
	return ok, nil
}

// safe is mount-utils' formatter, which formats only disks that blkid finds
// empty and checks existing file systems before mounting them.
func (m *Mounter) safe() *mount.SafeFormatAndMount {
	return &mount.SafeFormatAndMount{Interface: m.m, Exec: m.exec}
}

// FormatAndMount formats device with fstype if it holds no file system,
// then mounts it at target.
func (m *Mounter) FormatAndMount(device, target, fstype string, options, formatOptions []string) error {
	if err := m.safe().FormatAndMountSensitiveWithFormatOptions(device, target, fstype, options, nil, formatOptions); err != nil {
		return fmt.Errorf("format and mount %s at %s: %w", device, target, err)
	}
	return nil
}

// DiskFormat returns the file system type on device, "" when it holds none.
func (m *Mounter) DiskFormat(device string) (string, error) {
	f, err := m.safe().GetDiskFormat(device)
	if err != nil {
		return "", fmt.Errorf("read file system type of %s: %w", device, err)
	}
	return f, nil
}

// MountedDevice returns the device mounted at target, or "" if target is
// not a mount point.
func (m *Mounter) MountedDevice(target string) (string, error) {
	dev, refs, err := mount.GetDeviceNameFromMount(m.m, target)
	if err != nil {
		return "", fmt.Errorf("find device mounted at %s: %w", target, err)
	}
	if refs == 0 {
		return "", nil
	}
	return dev, nil
}

// Resize grows the file system on device (mounted at target) when the
// device is larger than it, and reports whether it did.
func (m *Mounter) Resize(device, target string) (bool, error) {
	r := mount.NewResizeFs(m.exec)
	need, err := r.NeedResize(device, target)
	if err != nil {
		return false, fmt.Errorf("check size of the file system on %s: %w", device, err)
	}
	if !need {
		return false, nil
	}
	if _, err := r.Resize(device, target); err != nil {
		return false, fmt.Errorf("grow the file system on %s: %w", device, err)
	}
	return true, nil
}

// ResizeUnmounted grows an ext2/3/4 file system that is not mounted, before
// it is: offline growth needs no privilege beyond the device, while the
// kernel's online growth of ext4 needs CAP_SYS_RESOURCE, which some nodes
// deny. Other file systems are left to Resize after mounting (XFS grows
// only while mounted). It reports whether it grew anything.
func (m *Mounter) ResizeUnmounted(device string) (bool, error) {
	format, err := m.DiskFormat(device)
	if err != nil || (format != "ext2" && format != "ext3" && format != "ext4") {
		return false, err
	}
	need, err := mount.NewResizeFs(m.exec).NeedResize(device, "")
	if err != nil || !need {
		return false, err
	}
	// resize2fs insists on a freshly checked file system.
	if out, err := m.exec.Command("e2fsck", "-f", "-p", device).CombinedOutput(); err != nil {
		return false, fmt.Errorf("check %s before growing it: %w: %s", device, err, out)
	}
	if out, err := m.exec.Command("resize2fs", device).CombinedOutput(); err != nil {
		return false, fmt.Errorf("grow the file system on %s: %w: %s", device, err, out)
	}
	return true, nil
}
