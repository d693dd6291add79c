package efs

import (
	"context"
)

// DirectoryResolver maps what a volume handle names to a directory on this
// machine.
type DirectoryResolver interface {
	ResolveDirectory(ctx context.Context, fileSystemID, accessPointID, subPath string) (string, error)
}

// BindSource publishes volumes as bind mounts of local directories; it is
// how the embedded local backend's file systems reach pods.
type BindSource struct {
	Resolver DirectoryResolver
}

// Prepare resolves the volume's directory.
func (s BindSource) Prepare(ctx context.Context, req MountRequest) (Mount, error) {
	dir, err := s.Resolver.ResolveDirectory(ctx, req.Handle.FileSystemID, req.Handle.AccessPointID, req.Handle.SubPath)
	if err != nil {
		return Mount{}, err
	}
	return Mount{Source: dir}, nil
}

// Release has nothing to undo for a bind mount.
func (s BindSource) Release(context.Context, string) error { return nil }

// Check reports whether the volume's directory still exists.
func (s BindSource) Check(ctx context.Context, h Handle) error {
	_, err := s.Resolver.ResolveDirectory(ctx, h.FileSystemID, h.AccessPointID, h.SubPath)
	return err
}
