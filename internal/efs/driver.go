// Package efs is the EFS CSI driver: a Controller service that provisions
// volumes as access points and a Node service that mounts file systems,
// sub paths and access points. It is compatible with the upstream EFS CSI
// driver's volume handles, StorageClass parameters and volume context, and
// runs on any backend that provides the interfaces below.
package efs

import (
	"context"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/publications"
)

// Cloud is what the controller needs from the EFS API.
type Cloud interface {
	DescribeFileSystem(ctx context.Context, id string) (*cloud.FileSystem, error)
	DescribeMountTargets(ctx context.Context, fileSystemID string) ([]cloud.MountTarget, error)
	CreateAccessPoint(ctx context.Context, in cloud.CreateAccessPointInput) (*cloud.AccessPoint, error)
	DescribeAccessPoint(ctx context.Context, id string) (*cloud.AccessPoint, error)
	// ListAccessPoints calls fn with each page of the file system's access
	// points, so a caller with a large file system never holds all pages.
	ListAccessPoints(ctx context.Context, fileSystemID string, fn func([]*cloud.AccessPoint) error) error
	DeleteAccessPoint(ctx context.Context, id string) error
}

// Files reaches into a file system from the controller. It is used only to
// delete an access point's root directory when the user asked for it.
type Files interface {
	RemoveDirectory(ctx context.Context, fileSystemID, dir string) error
}

// Mount is what the node mounts for a volume.
type Mount struct {
	Source  string
	FSType  string // empty for a bind mount
	Options []string
}

// MountRequest describes one NodePublishVolume to a MountSource.
type MountRequest struct {
	Handle   Handle
	Context  VolumeContext
	ReadOnly bool
	// Options are the capability's mount flags, validated.
	Options []string
	// Key identifies this publish (the target path); Release gets it back.
	Key string
}

// MountSource turns a volume handle into a mount on this node: a local
// directory on the local backend, NFS through a TLS tunnel on AWS.
type MountSource interface {
	Prepare(ctx context.Context, req MountRequest) (Mount, error)
	// Release undoes what Prepare set up besides the mount (a tunnel
	// reference); releasing an unknown key is not an error.
	Release(ctx context.Context, key string) error
	// Check reports whether what the handle names is reachable from this
	// node, for volume health.
	Check(ctx context.Context, h Handle) error
}

// Mounter performs mounts on the node.
type Mounter interface {
	Mount(source, target, fstype string, options []string) error
	// Unmount unmounts target if it is mounted and removes it; a missing
	// target is not an error.
	Unmount(target string) error
	IsMountPoint(target string) (bool, error)
}

// Publications remembers where each volume is published on this node,
// across restarts of the plugin.
type Publications interface {
	Add(volumeID string, p publications.Publication) error
	Remove(volumeID, target string) error
	List(volumeID string) ([]publications.Publication, error)
}

// Options configure a Driver.
type Options struct {
	// Name is the CSI driver name, e.g. efs.ec2csi.io or efs.csi.aws.com.
	Name    string
	Version string
	NodeID  string
	// DeleteAccessPointRootDir deletes an access point's directory with
	// the volume for every StorageClass, as upstream's flag of that name.
	DeleteAccessPointRootDir bool
	// Tags are added to every access point the controller creates.
	Tags map[string]string
}

// NewController returns the controller service over the given backend.
func NewController(opts Options, c Cloud, files Files) *Controller {
	return &Controller{opts: opts, cloud: c, files: files, aps: newAccessPointCache(c)}
}

// NewNode returns the node service.
func NewNode(opts Options, src MountSource, m Mounter, pubs Publications) *Node {
	return &Node{opts: opts, source: src, mounter: m, pubs: pubs}
}
