package ebs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/csiserver"
)

const (
	gib = int64(1) << 30
	// defaultSizeGiB is upstream's size for a request without one.
	defaultSizeGiB = 100
	// DevicePathKey is the publish context key upstream uses for the device
	// name the controller attached the volume as.
	DevicePathKey = "devicePath"
)

// Controller is the EBS Controller service.
type Controller struct {
	csi.UnimplementedControllerServer
	opts  Options
	cloud Cloud
}

// ControllerGetCapabilities lists what the controller implements. Beyond
// upstream: listing volumes with their nodes, and getting one volume.
func (c *Controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: csiserver.ControllerCapabilities(
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES,
		csi.ControllerServiceCapability_RPC_GET_VOLUME,
		csi.ControllerServiceCapability_RPC_MODIFY_VOLUME,
		csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	)}, nil
}

// CreateVolume creates a volume in the zone the topology requirements
// choose, optionally from a snapshot. It is idempotent by name through the
// cloud's client token.
func (c *Controller) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	name := req.GetName()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	fsType := ""
	for _, vc := range req.GetVolumeCapabilities() {
		if m := vc.GetMount(); m != nil && m.GetFsType() != "" {
			fsType = m.GetFsType()
		}
	}
	params, err := withMutableParameters(req.GetParameters(), req.GetMutableParameters())
	if err != nil {
		return nil, err
	}
	p, err := parseCreateParams(params, fsType)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	var snapshotID string
	var snapshotGiB int64
	if src := req.GetVolumeContentSource(); src != nil {
		if src.GetVolume() != nil {
			return nil, status.Error(codes.InvalidArgument, "volume_content_source: cloning volumes is not supported; snapshot the volume and restore the snapshot")
		}
		snapshotID = src.GetSnapshot().GetSnapshotId()
		snap, err := c.snapshot(ctx, snapshotID)
		if err != nil {
			return nil, err
		}
		if snap.State != "completed" {
			return nil, status.Errorf(codes.Unavailable, "snapshot %s is %s, not yet completed", snapshotID, snap.State)
		}
		snapshotGiB = snap.SizeGiB
	}
	size, err := sizeGiB(req.GetCapacityRange(), p.Type, snapshotGiB)
	if err != nil {
		return nil, err
	}
	perf, err := p.performance(size)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	zone, err := pickZone(req.GetAccessibilityRequirements(), c.opts)
	if err != nil {
		return nil, err
	}
	tags, err := p.tags(name)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	v, err := c.cloud.CreateVolume(ctx, cloud.CreateVolumeInput{
		ClientToken: clientToken(name), SizeGiB: size, Type: p.Type.name, IOPS: perf.IOPS, Throughput: perf.Throughput,
		Encrypted: p.Encrypted, KMSKeyID: p.KMSKeyID, AvailabilityZone: zone, SnapshotID: snapshotID, Tags: tags,
	})
	if errors.Is(err, cloud.ErrParameterMismatch) {
		return nil, status.Errorf(codes.AlreadyExists, "volume %s already exists with different parameters, size or zone: %v", name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("create volume %s: %w", name, err)
	}
	resp := c.csiVolume(v)
	resp.VolumeContext = p.Format.context()
	resp.ContentSource = req.GetVolumeContentSource()
	return &csi.CreateVolumeResponse{Volume: resp}, nil
}

func (c *Controller) csiVolume(v *cloud.Volume) *csi.Volume {
	return &csi.Volume{
		VolumeId:      v.ID,
		CapacityBytes: v.SizeGiB * gib,
		AccessibleTopology: []*csi.Topology{{Segments: map[string]string{
			c.opts.ZoneKey(): v.AvailabilityZone, WellKnownZoneKey: v.AvailabilityZone,
		}}},
	}
}

// withMutableParameters applies a VolumeAttributesClass given at creation
// over the StorageClass parameters; it may only set what ModifyVolume can
// change later.
func withMutableParameters(params, mutable map[string]string) (map[string]string, error) {
	if len(mutable) == 0 {
		return params, nil
	}
	out := make(map[string]string, len(params)+len(mutable))
	for k, v := range params {
		out[k] = v
	}
	for k, v := range mutable {
		switch lk := strings.ToLower(k); {
		case lk == "type", lk == "iops", lk == "throughput", strings.HasPrefix(lk, paramTagPrefix):
			// A StorageClass key of different case must not survive next
			// to the class's value.
			for pk := range out {
				if strings.EqualFold(pk, k) {
					delete(out, pk)
				}
			}
			out[k] = v
		default:
			return nil, status.Errorf(codes.InvalidArgument, "mutable parameter %s is not supported; VolumeAttributesClass parameters are type, iops, throughput and tagSpecification_N", k)
		}
	}
	return out, nil
}

// sizeGiB chooses the size to create: the request rounded up to whole GiB,
// at least the type's minimum and the snapshot's size, at most the limit.
func sizeGiB(r *csi.CapacityRange, t volumeType, snapshotGiB int64) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "capacity_range: required_bytes %d and limit_bytes %d must not be negative", req, lim)
	}
	if lim > 0 && req > lim {
		return 0, status.Errorf(codes.InvalidArgument, "capacity_range: required_bytes %d exceeds limit_bytes %d", req, lim)
	}
	size := (req + gib - 1) / gib
	if req == 0 {
		size = max(defaultSizeGiB, snapshotGiB)
		if lim > 0 {
			size = min(size, lim/gib)
		}
	}
	size = max(size, t.minGiB, snapshotGiB)
	switch {
	case lim > 0 && size*gib > lim:
		why := fmt.Sprintf("%s volumes start at %d GiB", t.name, t.minGiB)
		if snapshotGiB > t.minGiB {
			why = fmt.Sprintf("the snapshot holds %d GiB", snapshotGiB)
		}
		return 0, status.Errorf(codes.OutOfRange, "capacity_range: limit_bytes %d is below %d GiB: %s", lim, size, why)
	case size > t.maxGiB:
		return 0, status.Errorf(codes.OutOfRange, "capacity_range: %d GiB is more than %s allows (%d to %d GiB)", size, t.name, t.minGiB, t.maxGiB)
	}
	return size, nil
}

// pickZone honours the external-provisioner's requirements: a preferred
// zone that is also requisite, else a requisite one, else the default.
func pickZone(tr *csi.TopologyRequirement, opts Options) (string, error) {
	zoneOf := func(t *csi.Topology) string {
		if z := t.GetSegments()[opts.ZoneKey()]; z != "" {
			return z
		}
		return t.GetSegments()[WellKnownZoneKey]
	}
	requisite := map[string]bool{}
	var first string
	for _, t := range tr.GetRequisite() {
		if z := zoneOf(t); z != "" {
			requisite[z] = true
			if first == "" {
				first = z
			}
		}
	}
	for _, t := range tr.GetPreferred() {
		if z := zoneOf(t); z != "" && (len(requisite) == 0 || requisite[z]) {
			return z, nil
		}
	}
	if first != "" {
		return first, nil
	}
	if len(tr.GetRequisite())+len(tr.GetPreferred()) > 0 {
		return "", status.Errorf(codes.InvalidArgument, "accessibility_requirements name no zone under %s or %s", opts.ZoneKey(), WellKnownZoneKey)
	}
	if opts.Zone == "" {
		return "", status.Error(codes.InvalidArgument, "accessibility_requirements are empty and the controller has no default zone")
	}
	return opts.Zone, nil
}

// clientToken derives EC2's idempotency token (at most 64 characters) from
// the volume name.
func clientToken(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// DeleteVolume deletes a volume. One that does not exist, or an ID that
// cannot be an EBS volume, is success; an attached one is
// FailedPrecondition.
func (c *Controller) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if !cloud.ValidVolumeID(id) {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if err := c.cloud.DeleteVolume(ctx, id); err != nil && !errors.Is(err, cloud.ErrNotFound) {
		return nil, fmt.Errorf("delete volume %s: %w", id, err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// volume describes a volume; an ID of the wrong shape is NotFound.
func (c *Controller) volume(ctx context.Context, id string) (*cloud.Volume, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if err := volumeIDShape(id); err != nil {
		return nil, err
	}
	v, err := c.cloud.DescribeVolume(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", id, err)
	}
	return v, nil
}

// volumeIDShape answers NotFound for an ID no EBS volume can have.
func volumeIDShape(id string) error {
	if !cloud.ValidVolumeID(id) {
		return status.Errorf(codes.NotFound, "volume %s does not exist: an EBS volume ID is vol- and 17 hex digits", id)
	}
	return nil
}

func (c *Controller) snapshot(ctx context.Context, id string) (*cloud.Snapshot, error) {
	if !cloud.ValidSnapshotID(id) {
		return nil, status.Errorf(codes.NotFound, "snapshot %s does not exist: an EBS snapshot ID is snap- and 17 hex digits", id)
	}
	s, err := c.cloud.DescribeSnapshot(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return s, nil
}

// ControllerPublishVolume attaches the volume to the node and tells the
// node where the cloud put it.
func (c *Controller) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	id, node := req.GetVolumeId(), req.GetNodeId()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	case node == "":
		return nil, status.Error(codes.InvalidArgument, "node_id is required")
	}
	if err := validateCapability(req.GetVolumeCapability()); err != nil {
		return nil, err
	}
	if err := volumeIDShape(id); err != nil {
		return nil, err
	}
	// AttachVolume looks the volume and the node up itself (NotFound for
	// either), so describing them here first would only double the calls.
	dev, err := c.cloud.AttachVolume(ctx, id, node)
	if err != nil {
		return nil, fmt.Errorf("attach %s to %s: %w", id, node, err)
	}
	return &csi.ControllerPublishVolumeResponse{PublishContext: map[string]string{DevicePathKey: dev}}, nil
}

// ControllerUnpublishVolume detaches the volume from the node; a volume or
// attachment that is already gone is success.
func (c *Controller) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	id, node := req.GetVolumeId(), req.GetNodeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if !cloud.ValidVolumeID(id) {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	if err := c.cloud.DetachVolume(ctx, id, node); err != nil && !errors.Is(err, cloud.ErrNotFound) {
		return nil, fmt.Errorf("detach %s from %s: %w", id, node, err)
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

// ValidateVolumeCapabilities confirms capabilities for an existing volume.
func (c *Controller) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities: at least one is required")
	}
	if _, err := c.volume(ctx, req.GetVolumeId()); err != nil {
		return nil, err
	}
	if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.GetVolumeContext(), VolumeCapabilities: req.GetVolumeCapabilities(), Parameters: req.GetParameters(),
	}}, nil
}

// ListVolumes pages through every volume with the nodes it is attached to.
func (c *Controller) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	page, err := c.cloud.ListVolumes(ctx, int(req.GetMaxEntries()), req.GetStartingToken())
	if errors.Is(err, cloud.ErrInvalidArgument) {
		return nil, status.Errorf(codes.Aborted, "starting_token %q is not valid: %v", req.GetStartingToken(), err)
	}
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	resp := &csi.ListVolumesResponse{NextToken: page.NextToken}
	for _, v := range page.Items {
		resp.Entries = append(resp.Entries, &csi.ListVolumesResponse_Entry{
			Volume: c.csiVolume(v),
			Status: &csi.ListVolumesResponse_VolumeStatus{PublishedNodeIds: publishedNodes(v)},
		})
	}
	return resp, nil
}

func publishedNodes(v *cloud.Volume) []string {
	var nodes []string
	for _, a := range v.Attachments {
		if a.State == "attached" || a.State == "attaching" {
			nodes = append(nodes, a.NodeID)
		}
	}
	sort.Strings(nodes)
	return nodes
}

// ControllerGetVolume returns one volume and the nodes it is attached to.
func (c *Controller) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	v, err := c.volume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeResponse{
		Volume: c.csiVolume(v),
		Status: &csi.ControllerGetVolumeResponse_VolumeStatus{PublishedNodeIds: publishedNodes(v)},
	}, nil
}

// ControllerExpandVolume grows a volume, attached or not. The node then
// grows the file system (not needed for raw block volumes).
func (c *Controller) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	r := req.GetCapacityRange()
	if r == nil || r.GetRequiredBytes() <= 0 {
		return nil, status.Error(codes.InvalidArgument, "capacity_range.required_bytes is required")
	}
	v, err := c.volume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	want := (r.GetRequiredBytes() + gib - 1) / gib
	if lim := r.GetLimitBytes(); lim > 0 && want*gib > lim {
		return nil, status.Errorf(codes.OutOfRange, "capacity_range: %d GiB exceeds limit_bytes %d", want, lim)
	}
	if t := volumeTypes[v.Type]; t.maxGiB > 0 && want > t.maxGiB {
		return nil, status.Errorf(codes.OutOfRange, "capacity_range: %d GiB is more than %s allows (%d GiB)", want, v.Type, t.maxGiB)
	}
	size := v.SizeGiB
	if want > size {
		if size, err = c.cloud.ResizeVolume(ctx, v.ID, want); err != nil {
			return nil, fmt.Errorf("expand %s to %d GiB: %w", v.ID, want, err)
		}
	}
	return &csi.ControllerExpandVolumeResponse{
		CapacityBytes:         size * gib,
		NodeExpansionRequired: req.GetVolumeCapability().GetBlock() == nil,
	}, nil
}

// ControllerModifyVolume applies a VolumeAttributesClass: type, iops,
// throughput and tags, validated against the new type's limits.
func (c *Controller) ControllerModifyVolume(ctx context.Context, req *csi.ControllerModifyVolumeRequest) (*csi.ControllerModifyVolumeResponse, error) {
	v, err := c.volume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	in := cloud.ModifyVolumeInput{}
	var tagSpecs []string
	keys := make([]string, 0, len(req.GetMutableParameters()))
	for k := range req.GetMutableParameters() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := req.GetMutableParameters()[k]
		switch lk := strings.ToLower(k); {
		case lk == "type":
			if _, ok := volumeTypes[strings.ToLower(val)]; !ok {
				return nil, status.Errorf(codes.InvalidArgument, "parameter %s=%q: choose gp3, gp2, io1, io2, st1, sc1 or standard", k, val)
			}
			in.Type = strings.ToLower(val)
		case lk == "iops":
			if in.IOPS, err = parsePositive(k, val); err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
		case lk == "throughput":
			if in.Throughput, err = parsePositive(k, val); err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
		case strings.HasPrefix(lk, paramTagPrefix):
			tagSpecs = append(tagSpecs, val)
		default:
			return nil, status.Errorf(codes.InvalidArgument, "mutable parameter %s is not supported; VolumeAttributesClass parameters are type, iops, throughput and tagSpecification_N", k)
		}
	}
	t := volumeTypes[v.Type]
	if in.Type != "" {
		t = volumeTypes[in.Type]
	}
	perf := performance{IOPS: in.IOPS, Throughput: in.Throughput}
	// What is not changed carries over, as far as the new type allows it.
	if perf.IOPS == 0 && t.iopsMode != iopsNone && v.IOPS != 0 {
		perf.IOPS = v.IOPS
	}
	if perf.Throughput == 0 && t.throughput && v.Throughput != 0 {
		perf.Throughput = v.Throughput
	}
	if err := t.checkPerformance(v.SizeGiB, perf); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if in.Type != "" || in.IOPS != 0 || in.Throughput != 0 {
		in.IOPS, in.Throughput = perf.IOPS, perf.Throughput
		if err := c.cloud.ModifyVolume(ctx, v.ID, in); err != nil {
			return nil, fmt.Errorf("modify %s: %w", v.ID, err)
		}
	}
	if len(tagSpecs) > 0 {
		p := &createParams{tagTemplates: tagSpecs}
		tags, err := p.tags(v.Tags[TagVolumeName])
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		delete(tags, TagVolumeName)
		delete(tags, TagCluster)
		if err := c.cloud.TagVolume(ctx, v.ID, tags); err != nil {
			return nil, fmt.Errorf("tag %s: %w", v.ID, err)
		}
	}
	return &csi.ControllerModifyVolumeResponse{}, nil
}

// CreateSnapshot snapshots a volume. EC2 snapshots have no client token, so
// the request name goes into a tag and a repeated call finds it there.
func (c *Controller) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	name, src := req.GetName(), req.GetSourceVolumeId()
	switch {
	case name == "":
		return nil, status.Error(codes.InvalidArgument, "name is required")
	case src == "":
		return nil, status.Error(codes.InvalidArgument, "source_volume_id is required")
	}
	tagSpecs := []string{}
	for k, v := range req.GetParameters() {
		lk := strings.ToLower(k)
		switch {
		case strings.HasPrefix(lk, paramTagPrefix):
			tagSpecs = append(tagSpecs, v)
		case strings.HasPrefix(lk, "csi.storage.k8s.io/"):
		default:
			return nil, status.Errorf(codes.InvalidArgument, "snapshot parameter %s is not supported; VolumeSnapshotClass parameters are tagSpecification_N", k)
		}
	}
	sort.Strings(tagSpecs)
	existing, err := c.cloud.ListSnapshots(ctx, SnapshotFilter{Tags: map[string]string{TagSnapshotName: name}}, 0, "")
	if err != nil {
		return nil, fmt.Errorf("look for snapshot %s: %w", name, err)
	}
	for _, s := range existing.Items {
		if s.VolumeID != src {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %s already exists as %s of volume %s, not %s", name, s.ID, s.VolumeID, src)
		}
		return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(s)}, nil
	}
	if _, err := c.volume(ctx, src); err != nil {
		return nil, err
	}
	p := &createParams{tagTemplates: tagSpecs}
	tags, err := p.tags(name)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	delete(tags, TagVolumeName)
	tags[TagSnapshotName] = name
	s, err := c.cloud.CreateSnapshot(ctx, cloud.CreateSnapshotInput{VolumeID: src, Tags: tags})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s of %s: %w", name, src, err)
	}
	return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(s)}, nil
}

func csiSnapshot(s *cloud.Snapshot) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId: s.ID, SourceVolumeId: s.VolumeID, SizeBytes: s.SizeGiB * gib,
		CreationTime: timestamppb.New(s.StartTime), ReadyToUse: s.State == "completed",
	}
}

// DeleteSnapshot deletes a snapshot; an unknown one is success.
func (c *Controller) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	if !cloud.ValidSnapshotID(id) {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if err := c.cloud.DeleteSnapshot(ctx, id); err != nil && !errors.Is(err, cloud.ErrNotFound) {
		return nil, fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// ListSnapshots pages through snapshots, optionally of one volume or one
// ID; an unknown ID gives an empty list.
func (c *Controller) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	f := SnapshotFilter{SnapshotID: req.GetSnapshotId(), VolumeID: req.GetSourceVolumeId()}
	if (f.SnapshotID != "" && !cloud.ValidSnapshotID(f.SnapshotID)) || (f.VolumeID != "" && !cloud.ValidVolumeID(f.VolumeID)) {
		return &csi.ListSnapshotsResponse{}, nil
	}
	page, err := c.cloud.ListSnapshots(ctx, f, int(req.GetMaxEntries()), req.GetStartingToken())
	if errors.Is(err, cloud.ErrInvalidArgument) {
		return nil, status.Errorf(codes.Aborted, "starting_token %q is not valid: %v", req.GetStartingToken(), err)
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	resp := &csi.ListSnapshotsResponse{NextToken: page.NextToken}
	for _, s := range page.Items {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: csiSnapshot(s)})
	}
	return resp, nil
}

// GetSnapshot returns one snapshot.
func (c *Controller) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	s, err := c.snapshot(ctx, req.GetSnapshotId())
	if err != nil {
		return nil, err
	}
	return &csi.GetSnapshotResponse{Snapshot: csiSnapshot(s)}, nil
}
