package efs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/csiserver"
	"github.com/ec2csi/ec2csi/internal/publications"
)

// Node is the EFS Node service.
type Node struct {
	csi.UnimplementedNodeServer
	opts    Options
	source  MountSource
	mounter Mounter
	pubs    Publications
}

// NodeGetCapabilities lists what the node implements. EFS needs no staging:
// every publish is its own mount of the shared file system.
func (n *Node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csiserver.NodeVolumeConditionCapability,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodeGetInfo identifies the node. EFS has no per-node volume limit.
func (n *Node) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: n.opts.NodeID}, nil
}

// NodePublishVolume mounts the volume at the target path. Publishing again
// to the same target with the same volume succeeds; a target already
// holding something else is AlreadyExists.
func (n *Node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target_path is required")
	}
	if err := validateCapability(req.GetVolumeCapability()); err != nil {
		return nil, err
	}
	h, err := ParseHandle(id)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	vc, err := parseVolumeContext(req.GetVolumeContext())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "volume %s: %v", id, err)
	}
	flags, _ := parseMountFlags(req.GetVolumeCapability().GetMount().GetMountFlags()) // validated above
	if flags.AccessPoint != "" && h.AccessPointID != "" && flags.AccessPoint != h.AccessPointID {
		return nil, status.Errorf(codes.InvalidArgument, "mount option accesspoint=%s contradicts the access point %s in volume handle %s", flags.AccessPoint, h.AccessPointID, id)
	}
	if flags.AccessPoint != "" && h.AccessPointID == "" {
		h.AccessPointID = flags.AccessPoint
	}
	readOnly := req.GetReadonly() || flags.ReadOnly || readOnlyMode(req.GetVolumeCapability())
	mode := req.GetVolumeCapability().GetAccessMode().GetMode()
	if err := n.checkExclusive(id, target, mode); err != nil {
		return nil, err
	}

	m, err := n.source.Prepare(ctx, MountRequest{Handle: h, Context: vc, ReadOnly: readOnly, Options: flags.All, Key: target})
	if err != nil {
		// A source that chose a gRPC code keeps it, without the
		// "rpc error: code = …" text that wrapping would add.
		if s, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
			return nil, status.Errorf(s.GRPCStatus().Code(), "volume %s: %s", id, s.GRPCStatus().Message())
		}
		return nil, fmt.Errorf("volume %s: %w", id, err)
	}
	if err := n.mountAt(m, target, readOnly, flags.VFS); err != nil {
		if rerr := n.source.Release(ctx, target); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("publish volume %s at %s: %w", id, target, err)
	}
	if err := n.pubs.Add(id, publications.Publication{Target: target, ReadOnly: readOnly, AccessMode: mode.String()}); err != nil {
		return nil, err
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// checkExclusive refuses a second target for a SINGLE_NODE_SINGLE_WRITER
// volume, whichever of the two publications asked for it.
func (n *Node) checkExclusive(id, target string, mode csi.VolumeCapability_AccessMode_Mode) error {
	pubs, err := n.pubs.List(id)
	if err != nil {
		return err
	}
	single := csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
	for _, p := range pubs {
		if p.Target == target || (mode != single && p.AccessMode != single.String()) {
			continue
		}
		if mounted, err := n.mounter.IsMountPoint(p.Target); err != nil || !mounted {
			// A record outlived its mount (the CO cleaned up without us).
			if err := n.pubs.Remove(id, p.Target); err != nil {
				return err
			}
			continue
		}
		return status.Errorf(codes.FailedPrecondition, "volume %s is published single-writer at %s; it cannot also be published at %s", id, p.Target, target)
	}
	return nil
}

func (n *Node) mountAt(m Mount, target string, readOnly bool, vfs []string) error {
	if err := os.MkdirAll(target, 0o750); err != nil {
		return fmt.Errorf("create target: %w", err)
	}
	mounted, err := n.mounter.IsMountPoint(target)
	if err != nil {
		return fmt.Errorf("inspect target: %w", err)
	}
	if mounted {
		return checkSameMount(m, target, readOnly)
	}
	opts := slices.Clone(m.Options)
	if m.FSType == "" {
		opts = append(opts, "bind")
		opts = append(opts, vfs...)
	}
	if readOnly && !slices.Contains(opts, "ro") {
		opts = append(opts, "ro")
	}
	return n.mounter.Mount(m.Source, target, m.FSType, opts)
}

// checkSameMount accepts a target that already holds this volume the same
// way: a repeated publish, or one that a restarted plugin finished before
// it died.
func checkSameMount(m Mount, target string, readOnly bool) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return fmt.Errorf("inspect mounted target: %w", err)
	}
	if isRO := st.Flags&unix.ST_RDONLY != 0; isRO != readOnly {
		return status.Errorf(codes.AlreadyExists, "target %s is already mounted read-only=%t; this publish asks read-only=%t", target, isRO, readOnly)
	}
	if m.FSType != "" {
		return nil
	}
	same, err := sameFile(m.Source, target)
	if err != nil {
		return err
	}
	if !same {
		return status.Errorf(codes.AlreadyExists, "target %s already holds a different mount", target)
	}
	return nil
}

// sameFile tells whether two paths are one directory: a bind mount's root
// has its source's device and inode.
func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// NodeUnpublishVolume unmounts the target and removes it. An absent target
// or one that is not mounted is success.
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
	if err := n.source.Release(ctx, target); err != nil {
		return nil, fmt.Errorf("unpublish volume %s from %s: %w", id, target, err)
	}
	if err := n.pubs.Remove(id, target); err != nil {
		return nil, err
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats reports capacity and inodes of a published volume,
// and its condition: a target that is no longer mounted, or whose directory
// was deleted on the file system, is abnormal rather than an error, so the
// CO can show it on the PVC.
func (n *Node) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case path == "":
		return nil, status.Error(codes.InvalidArgument, "volume_path is required")
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "volume %s: path %s does not exist", id, path)
	}
	health := n.health(ctx, id, path)
	resp := &csi.NodeGetVolumeStatsResponse{}
	if len(health) == 0 {
		usage, err := mountUsage(path)
		if err != nil {
			health = append(health, csiserver.Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "StatFailed", err.Error()))
		}
		resp.Usage = usage
	}
	csiserver.SetVolumeCondition(resp, health)
	return resp, nil
}

// NodeGetVolumeHealth reports what is wrong with a volume on this node:
// its backing directory, and when given, the mount at the publish path.
func (n *Node) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{
		VolumeId:       id,
		HealthStatuses: n.health(ctx, id, req.GetVolumePublishPath()),
	}}, nil
}

func (n *Node) health(ctx context.Context, id, path string) []*csi.VolumeHealth_VolumeHealthEntry {
	var out []*csi.VolumeHealth_VolumeHealthEntry
	if h, err := ParseHandle(id); err != nil {
		out = append(out, csiserver.Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "InvalidHandle", err.Error()))
	} else if err := n.source.Check(ctx, h); err != nil {
		out = append(out, csiserver.Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "SourceUnavailable", err.Error()))
	}
	if path == "" {
		return out
	}
	fi, err := os.Stat(path)
	if err != nil {
		return append(out, csiserver.Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "PathUnavailable", err.Error()))
	}
	mounted, err := n.mounter.IsMountPoint(path)
	switch {
	case err != nil:
		return append(out, csiserver.Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "MountUnknown", err.Error()))
	case !mounted:
		return append(out, csiserver.Unhealthy(csi.VolumeHealthErrorType_INACCESSIBLE, "NotMounted", path+" is not mounted"))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		out = append(out, csiserver.Unhealthy(csi.VolumeHealthErrorType_DATA_LOSS, "DirectoryDeleted", "the directory mounted at "+path+" was deleted from the file system"))
	}
	return out
}

// mountUsage reads bytes and inodes of the file system mounted at path.
func mountUsage(path string) ([]*csi.VolumeUsage, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	bsize := int64(fs.Bsize)
	return []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(fs.Blocks) * bsize, Available: int64(fs.Bavail) * bsize, Used: int64(fs.Blocks-fs.Bfree) * bsize},
		{Unit: csi.VolumeUsage_INODES, Total: int64(fs.Files), Available: int64(fs.Ffree), Used: int64(fs.Files - fs.Ffree)},
	}, nil
}
