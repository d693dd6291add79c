package csiserver

import (
	"fmt"
	"os"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NodeCapabilities builds a NodeGetCapabilities answer.
func NodeCapabilities(types ...csi.NodeServiceCapability_RPC_Type) []*csi.NodeServiceCapability {
	caps := make([]*csi.NodeServiceCapability, 0, len(types))
	for _, t := range types {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return caps
}

// ControllerCapabilities builds a ControllerGetCapabilities answer.
func ControllerCapabilities(types ...csi.ControllerServiceCapability_RPC_Type) []*csi.ControllerServiceCapability {
	caps := make([]*csi.ControllerServiceCapability, 0, len(types))
	for _, t := range types {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return caps
}

// FileSystemUsage reads bytes and inodes of the file system at path.
func FileSystemUsage(path string) ([]*csi.VolumeUsage, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	b := int64(fs.Bsize)
	return []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(fs.Blocks) * b, Available: int64(fs.Bavail) * b, Used: int64(fs.Blocks-fs.Bfree) * b},
		{Unit: csi.VolumeUsage_INODES, Total: int64(fs.Files), Available: int64(fs.Ffree), Used: int64(fs.Files - fs.Ffree)},
	}, nil
}

// PublishedPathHealth reports what is wrong with a path a volume was
// published at: gone, no longer a mount point, or a directory that was
// deleted under the mount. A device node (raw block) needs no mount check.
func PublishedPathHealth(path string, isMountPoint func(string) (bool, error)) []*csi.VolumeHealth_VolumeHealthEntry {
	fi, err := os.Stat(path)
	if err != nil {
		return []*csi.VolumeHealth_VolumeHealthEntry{Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "PathUnavailable", err.Error())}
	}
	if fi.Mode()&os.ModeDevice != 0 {
		return nil
	}
	mounted, err := isMountPoint(path)
	switch {
	case err != nil:
		return []*csi.VolumeHealth_VolumeHealthEntry{Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "MountUnknown", err.Error())}
	case !mounted:
		return []*csi.VolumeHealth_VolumeHealthEntry{Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "NotMounted", path+" is not mounted")}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		return []*csi.VolumeHealth_VolumeHealthEntry{Unhealthy(csi.VolumeHealthErrorType_DATA_LOSS, "DirectoryDeleted", "the directory mounted at "+path+" was deleted from the file system")}
	}
	return nil
}

// CheckRepublish accepts a target that is already mounted the same way: a
// repeated NodePublishVolume, or one a restarted plugin finished before it
// died. source, when not empty, is the directory the target must be a bind
// mount of. Anything else is AlreadyExists.
func CheckRepublish(source, target string, readOnly bool) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return fmt.Errorf("inspect mounted target: %w", err)
	}
	if isRO := st.Flags&unix.ST_RDONLY != 0; isRO != readOnly {
		return status.Errorf(codes.AlreadyExists, "target %s is already mounted read-only=%t; this publish asks read-only=%t", target, isRO, readOnly)
	}
	if source == "" {
		return nil
	}
	// A bind mount's root is its source: same device, same inode.
	a, errA := os.Stat(source)
	b, errB := os.Stat(target)
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		return status.Errorf(codes.AlreadyExists, "target %s already holds a different mount", target)
	}
	return nil
}

// ValidateCapabilities checks that caps is not empty and that check
// accepts each.
func ValidateCapabilities(caps []*csi.VolumeCapability, check func(*csi.VolumeCapability) error) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume_capabilities: at least one is required")
	}
	for _, c := range caps {
		if err := check(c); err != nil {
			return err
		}
	}
	return nil
}
