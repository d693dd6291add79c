package plugin

import (
	"context"

	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/ebs"
	"github.com/ec2csi/ec2csi/internal/efs"
)

// backend is what a cloud gives the drivers. The local backend and the AWS
// one (aws.go) each provide it; the drivers never know which they got.
type backend interface {
	// Ready reports whether the backend is usable, for Probe and /healthz.
	Ready(ctx context.Context) error
	// EFS controller side: the EFS API and, for deleting access point
	// directories, access to the file systems' contents (may be nil).
	EFS() (efs.Cloud, efs.Files)
	// EFSSource is how the EFS node mounts volumes.
	EFSSource() efs.MountSource
	// EBS controller side.
	EBS() ebs.Cloud
	// EBSNode describes this node to the EBS driver: its zone, its
	// attachment limit (limit is the flag's value, 0 when unset) and how it
	// finds devices.
	EBSNode(ctx context.Context, nodeID string, limit int) (zone string, attachLimit int, devices ebs.Devices, err error)
	// DefaultZone is where the EBS controller creates volumes that come
	// without topology requirements.
	DefaultZone() string
}

// localBackend adapts cloud/local.
type localBackend struct {
	*local.Backend
	// efsSource is the EFS node's mount source when New made one
	// (newLocalEFSNodeSource: bind mounts, through TLS with --efs-tls).
	efsSource efs.MountSource
}

func (b localBackend) EFS() (efs.Cloud, efs.Files) { return b.Backend, b.Backend }

func (b localBackend) EFSSource() efs.MountSource {
	if b.efsSource != nil {
		return b.efsSource
	}
	return efs.BindSource{Resolver: b.Backend}
}

func (b localBackend) EBS() ebs.Cloud      { return b.Backend }
func (b localBackend) DefaultZone() string { return b.Zone() }

// EBSNode registers the node with the backend, as EC2 knows its instances,
// so the controller can check zones and limits.
func (b localBackend) EBSNode(ctx context.Context, nodeID string, limit int) (string, int, ebs.Devices, error) {
	if limit == 0 {
		limit = DefaultLocalAttachLimit
	}
	if err := b.RegisterNode(ctx, nodeID, b.Zone(), limit); err != nil {
		return "", 0, nil, err
	}
	return b.Zone(), limit, ebs.LinkDevices{Root: b.DeviceRoot(), VerifyDevice: b.VerifyDevice}, nil
}
