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
