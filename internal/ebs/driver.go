// Package ebs is the EBS CSI driver: a Controller service that creates,
// attaches, resizes, modifies and snapshots block volumes in one
// availability zone, and a Node service that finds an attached volume's
// device by its ID, checks it really is that volume, formats it only when
// it holds no file system, and mounts it. It keeps the upstream EBS CSI
// driver's parameters, volume IDs and topology keys, and runs on any
// backend that provides the interfaces below.
package ebs

import (
	"context"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/publications"
)

// Cloud is what the controller needs from EC2.
type Cloud interface {
	CreateVolume(ctx context.Context, in cloud.CreateVolumeInput) (*cloud.Volume, error)
	DeleteVolume(ctx context.Context, id string) error
	DescribeVolume(ctx context.Context, id string) (*cloud.Volume, error)
	// ListVolumes pages through volumes in ID order; the token is opaque.
	ListVolumes(ctx context.Context, maxResults int, token string) (cloud.Page[*cloud.Volume], error)
	// AttachVolume attaches and waits until attached, returning the device
	// name the cloud reports. It is idempotent for the same node.
	AttachVolume(ctx context.Context, volumeID, nodeID string) (string, error)
	// DetachVolume detaches and waits; a volume not attached to the node
	// is success.
	DetachVolume(ctx context.Context, volumeID, nodeID string) error
	// ResizeVolume grows a volume to sizeGiB and returns its new size.
	ResizeVolume(ctx context.Context, volumeID string, sizeGiB int64) (int64, error)
	ModifyVolume(ctx context.Context, volumeID string, in cloud.ModifyVolumeInput) error
	TagVolume(ctx context.Context, volumeID string, tags map[string]string) error
	CreateSnapshot(ctx context.Context, in cloud.CreateSnapshotInput) (*cloud.Snapshot, error)
	DeleteSnapshot(ctx context.Context, id string) error
	DescribeSnapshot(ctx context.Context, id string) (*cloud.Snapshot, error)
	ListSnapshots(ctx context.Context, f SnapshotFilter, maxResults int, token string) (cloud.Page[*cloud.Snapshot], error)
	DescribeInstance(ctx context.Context, nodeID string) (*cloud.Instance, error)
}

// SnapshotFilter narrows ListSnapshots; empty fields match everything.
type SnapshotFilter struct {
	SnapshotID string
	VolumeID   string
	Tags       map[string]string
}

// Devices finds an attached volume's block device on this node.
type Devices interface {
	// Find returns the device node of the volume; hint is the device name
	// the controller reported, for clouds without stable links.
	Find(ctx context.Context, volumeID, hint string) (string, error)
	// Verify checks that dev really is the volume before anything formats
	// or mounts it.
	Verify(ctx context.Context, volumeID, dev string) error
}

// Mounter does the node's mount and file system work.
type Mounter interface {
	Mount(source, target, fstype string, options []string) error
	Unmount(target string) error
	IsMountPoint(target string) (bool, error)
	// FormatAndMount formats device with fstype only if it holds no file
	// system, then mounts it.
	FormatAndMount(device, target, fstype string, options, formatOptions []string) error
	// DiskFormat returns the file system type on device, "" for none.
	DiskFormat(device string) (string, error)
	// MountedDevice returns the device mounted at target, "" for none.
	MountedDevice(target string) (string, error)
	// Resize grows the file system on device, mounted at target, to fill
	// the device; it reports whether it had to.
	Resize(device, target string) (bool, error)
	// ResizeUnmounted grows an unmounted ext file system offline.
	ResizeUnmounted(device string) (bool, error)
}

// Publications remembers where volumes are published on this node.
type Publications interface {
	Add(volumeID string, p publications.Publication) error
	Remove(volumeID, target string) error
	List(volumeID string) ([]publications.Publication, error)
}

// Options configure the driver.
type Options struct {
	Name    string
	Version string
	NodeID  string
	// Zone is this node's availability zone (node) or the default zone
	// for volumes without topology requirements (controller).
	Zone string
	// AttachLimit is how many volumes this node can hold attached.
	AttachLimit int
}

// ZoneKey is the topology key of this driver's zones: upstream's pattern,
// topology.<driver name>/zone, so PVs made by the upstream driver keep
// matching when ec2csi serves under its name.
func (o Options) ZoneKey() string { return "topology." + o.Name + "/zone" }

// WellKnownZoneKey is Kubernetes' own zone label, reported too so that
// PVs schedule with plain zone labels.
const WellKnownZoneKey = "topology.kubernetes.io/zone"

// NewController returns the controller service.
func NewController(opts Options, c Cloud) *Controller {
	return &Controller{opts: opts, cloud: c}
}

// NewNode returns the node service.
func NewNode(opts Options, d Devices, m Mounter, pubs Publications) *Node {
	return &Node{opts: opts, devices: d, mounter: m, pubs: pubs}
}
