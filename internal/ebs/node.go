package ebs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/csiserver"
	"github.com/ec2csi/ec2csi/internal/publications"
)

// Node is the EBS Node service.
type Node struct {
	csi.UnimplementedNodeServer
	opts    Options
	devices Devices
	mounter Mounter
	pubs    Publications
}

// NodeGetCapabilities lists what the node implements.
func (n *Node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{Capabilities: csiserver.NodeCapabilities(
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csiserver.NodeVolumeConditionCapability,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	)}, nil
}

// NodeGetInfo reports the node's ID, how many volumes it can hold, and its
// zone under both topology keys.
func (n *Node) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{
		NodeId:            n.opts.NodeID,
		MaxVolumesPerNode: int64(n.opts.AttachLimit),
		AccessibleTopology: &csi.Topology{Segments: map[string]string{
			n.opts.ZoneKey(): n.opts.Zone, WellKnownZoneKey: n.opts.Zone,
		}},
	}, nil
}

// device finds and verifies the volume's block device.
func (n *Node) device(ctx context.Context, id string, publishContext map[string]string) (string, error) {
	dev, err := n.devices.Find(ctx, id, publishContext[DevicePathKey])
	if err != nil {
		return "", status.Errorf(codes.NotFound, "volume %s is not attached to this node: %v", id, err)
	}
	if err := n.devices.Verify(ctx, id, dev); err != nil {
		// Upstream once mounted the wrong volume through a stale link;
		// nothing is formatted or mounted unless the device proves it.
		return "", status.Errorf(codes.FailedPrecondition, "device %s found for volume %s is not that volume, refusing to use it: %v", dev, id, err)
	}
	return dev, nil
}

// NodeStageVolume formats the volume if it holds no file system and mounts
// it at the staging path. Staging again (also after a plugin restart) is
// success; the file system is grown if the volume is larger than it.
func (n *Node) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	id, staging, c := req.GetVolumeId(), req.GetStagingTargetPath(), req.GetVolumeCapability()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case staging == "":
		return nil, status.Error(codes.InvalidArgument, "staging_target_path is required")
	case c == nil:
		return nil, status.Error(codes.InvalidArgument, "volume_capability is required")
	}
	if err := validateCapability(c); err != nil {
		return nil, err
	}
	if c.GetBlock() != nil {
		// Raw block volumes are published straight from the device.
		return &csi.NodeStageVolumeResponse{}, nil
	}
	fsType := strings.ToLower(c.GetMount().GetFsType())
	if fsType == "" {
		fsType = defaultFSType
	}
	format, err := formatOptionsFromContext(req.GetVolumeContext())
	if err == nil {
		err = format.check(fsType)
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "volume %s: %v", id, err)
	}
	dev, err := n.device(ctx, id, req.GetPublishContext())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return nil, fmt.Errorf("create staging path %s: %w", staging, err)
	}
	mounted, err := n.mounter.MountedDevice(staging)
	if err != nil {
		return nil, err
	}
	if mounted != "" {
		if !sameDevice(mounted, dev) {
			return nil, status.Errorf(codes.FailedPrecondition, "staging path %s already holds %s, not volume %s (%s)", staging, mounted, id, dev)
		}
	} else {
		existing, err := n.mounter.DiskFormat(dev)
		if err != nil {
			return nil, err
		}
		if existing != "" && existing != fsType {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s holds a %s file system, not %s; ec2csi never reformats a volume with data", id, existing, fsType)
		}
		// A volume restored or expanded while detached is larger than its
		// file system; ext grows best before it is mounted.
		if _, err := n.mounter.ResizeUnmounted(dev); err != nil {
			return nil, fmt.Errorf("stage volume %s: %w", id, err)
		}
		opts := slices.Clone(c.GetMount().GetMountFlags())
		if fsType == "xfs" && !slices.Contains(opts, "nouuid") {
			// A volume restored from a snapshot carries its source's
			// UUID; XFS refuses a second mount of a UUID without this.
			opts = append(opts, "nouuid")
		}
		if err := n.mounter.FormatAndMount(dev, staging, fsType, opts, format.mkfsArgs(fsType)); err != nil {
			return nil, fmt.Errorf("stage volume %s: %w", id, err)
		}
	}
	if _, err := n.mounter.Resize(dev, staging); err != nil {
		return nil, resizeError(id, err)
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

// sameDevice compares two device paths by the device they name.
func sameDevice(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return a == b
	}
	return sa.Rdev == sb.Rdev
}

// NodeUnstageVolume unmounts the staging path; not staged is success.
func (n *Node) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case staging == "":
		return nil, status.Error(codes.InvalidArgument, "staging_target_path is required")
	}
	if err := n.mounter.Unmount(staging); err != nil {
		return nil, fmt.Errorf("unstage volume %s: %w", id, err)
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// NodePublishVolume bind-mounts the staged file system at the target, or
// for a raw block volume the device node itself onto a file at the target.
func (n *Node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target, c := req.GetVolumeId(), req.GetTargetPath(), req.GetVolumeCapability()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target_path is required")
	case c == nil:
		return nil, status.Error(codes.InvalidArgument, "volume_capability is required")
	case c.GetMount() != nil && req.GetStagingTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "staging_target_path is required")
	}
	if err := validateCapability(c); err != nil {
		return nil, err
	}
	mode := c.GetAccessMode().GetMode()
	if err := publications.CheckSingleWriter(n.pubs, n.mounter.IsMountPoint, id, target, mode); err != nil {
		return nil, err
	}
	readOnly := req.GetReadonly() || readOnlyMode(c)
	var err error
	if c.GetBlock() != nil {
		err = n.publishBlock(ctx, id, target, readOnly, req.GetPublishContext())
	} else {
		err = n.publishMount(req.GetStagingTargetPath(), target, readOnly, c.GetMount().GetMountFlags())
	}
	if err != nil {
		return nil, err
	}
	if err := n.pubs.Add(id, publications.Publication{Target: target, ReadOnly: readOnly, AccessMode: mode.String()}); err != nil {
		return nil, err
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (n *Node) publishMount(staging, target string, readOnly bool, flags []string) error {
	staged, err := n.mounter.IsMountPoint(staging)
	if errors.Is(err, os.ErrNotExist) || (err == nil && !staged) {
		return status.Errorf(codes.FailedPrecondition, "staging path %s is not mounted: NodeStageVolume first", staging)
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return fmt.Errorf("create target %s: %w", target, err)
	}
	if mounted, err := n.mounter.IsMountPoint(target); err != nil {
		return err
	} else if mounted {
		return csiserver.CheckRepublish(staging, target, readOnly)
	}
	opts := []string{"bind"}
	if readOnly {
		opts = append(opts, "ro")
	}
	for _, f := range flags {
		// Options that a bind mount can carry per mount point.
		switch f {
		case "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime":
			opts = append(opts, f)
		}
	}
	return n.mounter.Mount(staging, target, "", opts)
}

func (n *Node) publishBlock(ctx context.Context, id, target string, readOnly bool, publishContext map[string]string) error {
	dev, err := n.device(ctx, id, publishContext)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return fmt.Errorf("create target directory: %w", err)
	}
	f, err := os.OpenFile(target, os.O_CREATE, 0o660)
	if err != nil {
		return fmt.Errorf("create target file %s: %w", target, err)
	}
	f.Close()
	if mounted, err := n.mounter.MountedDevice(target); err != nil {
		return err
	} else if mounted != "" {
		if !sameDevice(mounted, dev) && !sameDevice(target, dev) {
			return status.Errorf(codes.AlreadyExists, "target %s already holds device %s, not %s", target, mounted, dev)
		}
		return nil
	}
	opts := []string{"bind"}
	if readOnly {
		opts = append(opts, "ro")
	}
	return n.mounter.Mount(dev, target, "", opts)
}

// NodeUnpublishVolume unmounts and removes the target; absent is success.
func (n *Node) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target_path is required")
	}
	if err := n.mounter.Unmount(target); err != nil {
		return nil, fmt.Errorf("unpublish volume %s from %s: %w", id, target, err)
	}
	if err := n.pubs.Remove(id, target); err != nil {
		return nil, err
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// NodeExpandVolume grows the file system to fill the (already grown)
// volume, online. Raw block volumes need nothing.
func (n *Node) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case path == "":
		return nil, status.Error(codes.InvalidArgument, "volume_path is required")
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "volume %s: path %s does not exist", id, path)
	}
	if err != nil {
		return nil, err
	}
	dev, err := n.device(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	size, err := deviceSize(dev)
	if err != nil {
		return nil, err
	}
	if req.GetVolumeCapability().GetBlock() != nil || !fi.IsDir() {
		return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
	}
	if _, err := n.mounter.Resize(dev, path); err != nil {
		return nil, resizeError(id, err)
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
}

// resizeError explains the one growth failure users can fix themselves.
func resizeError(id string, err error) error {
	if strings.Contains(err.Error(), "Permission denied to resize") {
		return status.Errorf(codes.FailedPrecondition, "volume %s: growing a mounted ext4 file system needs the CAP_SYS_RESOURCE capability, which this node plugin lacks (run it privileged); the file system grows offline the next time the volume is staged: %v", id, err)
	}
	return fmt.Errorf("grow volume %s: %w", id, err)
}

func deviceSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dev, err)
	}
	defer f.Close()
	n, err := f.Seek(0, 2)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return n, nil
}

// NodeGetVolumeStats reports usage of a file system volume, or the size of
// a raw block volume, with the volume's condition.
func (n *Node) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case path == "":
		return nil, status.Error(codes.InvalidArgument, "volume_path is required")
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "volume %s: path %s does not exist", id, path)
	}
	health := n.health(ctx, id, path)
	resp := &csi.NodeGetVolumeStatsResponse{}
	if err == nil && len(health) == 0 {
		if fi.Mode()&os.ModeDevice != 0 {
			size, err := deviceSize(path)
			if err == nil {
				resp.Usage = []*csi.VolumeUsage{{Unit: csi.VolumeUsage_BYTES, Total: size}}
			}
		} else if usage, err := csiserver.FileSystemUsage(path); err != nil {
			health = append(health, csiserver.Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "StatFailed", err.Error()))
		} else {
			resp.Usage = usage
		}
	}
	csiserver.SetVolumeCondition(resp, health)
	return resp, nil
}

// NodeGetVolumeHealth reports problems of a volume on this node.
func (n *Node) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	path := req.GetVolumePublishPath()
	if path == "" {
		path = req.GetStagingTargetPath()
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{
		VolumeId: req.GetVolumeId(), HealthStatuses: n.health(ctx, req.GetVolumeId(), path),
	}}, nil
}

// health checks that the device is still there and is the volume, and that
// path (when given) still holds it.
func (n *Node) health(ctx context.Context, id, path string) []*csi.VolumeHealth_VolumeHealthEntry {
	var out []*csi.VolumeHealth_VolumeHealthEntry
	dev, err := n.devices.Find(ctx, id, "")
	if err == nil {
		err = n.devices.Verify(ctx, id, dev)
	}
	if err != nil {
		out = append(out, csiserver.Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "DeviceMissing", err.Error()))
	}
	if path == "" {
		return out
	}
	return append(out, csiserver.PublishedPathHealth(path, n.mounter.IsMountPoint)...)
}
