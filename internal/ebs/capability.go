package ebs

import (
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/ec2csi/ec2csi/internal/csiserver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errShared is what a user sees who asks for a ReadWriteMany EBS volume:
// the wall is well known, so the message says where to go instead.
const errShared = "EBS volumes are block devices attached to one node at a time, so a file system on one cannot be shared across nodes (ReadWriteMany, ReadOnlyMany); for storage shared by pods on several nodes use EFS (a StorageClass of the EFS driver, provisioningMode: efs-ap)"

func validateCapabilities(caps []*csi.VolumeCapability) error {
	return csiserver.ValidateCapabilities(caps, validateCapability)
}

func validateCapability(c *csi.VolumeCapability) error {
	if c == nil {
		return status.Error(codes.InvalidArgument, "volume_capability is required")
	}
	if c.GetBlock() == nil && c.GetMount() == nil {
		return status.Error(codes.InvalidArgument, "volume_capability: access type block or mount is required")
	}
	if m := c.GetMount(); m != nil {
		if fs := strings.ToLower(m.GetFsType()); fs != "" && !supportedFSTypes[fs] {
			return status.Errorf(codes.InvalidArgument, "volume_capability.mount.fs_type %q: choose ext4, ext3, xfs or btrfs", m.GetFsType())
		}
		for _, f := range m.GetMountFlags() {
			if strings.ContainsAny(f, " \t\n") {
				return status.Errorf(codes.InvalidArgument, "volume_capability.mount.mount_flags: %q contains white space", f)
			}
		}
	}
	switch mode := c.GetAccessMode().GetMode(); mode {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		return nil
	case csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER:
		if c.GetBlock() != nil {
			return status.Errorf(codes.InvalidArgument, "volume_capability.access_mode %s: io2 Multi-Attach of raw block volumes is not implemented by ec2csi yet; %s", mode, errShared)
		}
		return status.Errorf(codes.InvalidArgument, "volume_capability.access_mode %s: %s", mode, errShared)
	default:
		return status.Errorf(codes.InvalidArgument, "volume_capability.access_mode %s is not supported", mode)
	}
}

func readOnlyMode(c *csi.VolumeCapability) bool {
	return c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
}
