package efs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
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
	return &csi.NodeGetCapabilitiesResponse{Capabilities: csiserver.NodeCapabilities(
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csiserver.NodeVolumeConditionCapability,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	)}, nil
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
	if err := publications.CheckSingleWriter(n.pubs, n.mounter.IsMountPoint, id, target, mode); err != nil {
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

func (n *Node) mountAt(m Mount, target string, readOnly bool, vfs []string) error {
	if err := os.MkdirAll(target, 0o750); err != nil {
		return fmt.Errorf("create target: %w", err)
	}
	mounted, err := n.mounter.IsMountPoint(target)
	if err != nil {
		return fmt.Errorf("inspect target: %w", err)
	}
	if mounted {
		source := m.Source
		if m.FSType != "" {
			source = "" // an NFS mount has no local source to compare
		}
		return csiserver.CheckRepublish(source, target, readOnly)
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
		usage, err := csiserver.FileSystemUsage(path)
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
	return append(out, csiserver.PublishedPathHealth(path, n.mounter.IsMountPoint)...)
}
