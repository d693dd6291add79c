package plugin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/cloud/local"
	"github.com/ec2csi/ec2csi/internal/efs"
	"github.com/ec2csi/ec2csi/internal/efscert"
	"github.com/ec2csi/ec2csi/internal/tunnel"
	"github.com/ec2csi/ec2csi/internal/version"
)

// TunnelStateDir is the directory under --state-dir where tunnels run in
// the plugin keep their lock, node key and records.
const TunnelStateDir = "tunnel"

// daemonWait is how long start-up waits for the tunnel daemon to answer.
// The plugin serves either way: the daemon restores its tunnels by itself,
// and only publishes with TLS need it.
const daemonWait = 5 * time.Second

// newEFSNodeSource returns the EFS node's MountSource for --cloud aws:
// NFSv4.1 from the kernel's client, through a TLS tunnel unless a volume
// opts out, with the tunnels in `ec2csi tunnel-daemon` when
// --tunnel-daemon-socket is set and in this process otherwise (restored
// from the state directory before this returns, so before anything is
// served). region and zone are the instance's. In a process that serves
// no EFS node it returns a source that refuses every publish and opens no
// tunnels.
//
// The source is an io.Closer; New closes it with the plugin. aws.go
// calls it once in newAWSBackend and returns the result from EFSSource.
func newEFSNodeSource(ctx context.Context, cfg Config, region, zone string) (efs.MountSource, error) {
	if !cfg.efsNode() {
		return noEFSNode{}, nil
	}
	// IAM tunnels sign with the node's credentials (instance profile, or
	// web identity); the chain resolves lazily, at the first IAM mount.
	var creds awssdk.CredentialsProvider
	if cfg.TunnelDaemonSocket == "" {
		sdk, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("EFS node: AWS SDK configuration for IAM mounts: %w", err)
		}
		creds = sdk.Credentials
	}
	tunnels, closeTunnels, err := openTunnels(ctx, cfg, creds)
	if err != nil {
		return nil, err
	}
	src, err := efs.NewNFSSource(efs.NFSSourceOptions{
		Tunnels: tunnels, Region: region, DNSSuffix: cfg.EFSDNSSuffix, Zone: zone,
		EncryptInTransitDefault: cfg.efsTLS(),
	})
	if err != nil {
		return nil, errors.Join(err, closeTunnels())
	}
	return &closingSource{MountSource: src, close: closeTunnels}, nil
}

// newLocalEFSNodeSource returns the EFS node's MountSource on the local
// backend: bind mounts, and with --efs-tls first a TLS tunnel to the
// backend's mount target, which this process serves.
func newLocalEFSNodeSource(ctx context.Context, cfg Config, b *local.Backend) (efs.MountSource, error) {
	if !cfg.efsTLS() {
		return efs.BindSource{Resolver: b}, nil
	}
	// The mount target first, so tunnels restored below reach it.
	mt, err := b.StartMountTarget(local.MountTargetOptions{Region: b.Region(), DNSSuffix: cfg.EFSDNSSuffix, Logger: cfg.Log})
	if err != nil {
		return nil, err
	}
	tunnels, closeTunnels, err := openTunnels(ctx, cfg, nil)
	if err != nil {
		return nil, errors.Join(err, mt.Close())
	}
	closeAll := func() error { return errors.Join(closeTunnels(), mt.Close()) }
	src, err := efs.NewTLSBindSource(efs.TLSBindOptions{
		Resolver: b, Tunnels: tunnels, Region: b.Region(), DNSSuffix: cfg.EFSDNSSuffix,
		MountTarget: mt.Addr(), CAFile: mt.CAFile(), Probe: local.Probe,
		EncryptInTransitDefault: true,
	})
	if err != nil {
		return nil, errors.Join(err, closeAll())
	}
	return &closingSource{MountSource: src, close: closeAll}, nil
}

// openTunnels reaches the tunnel daemon, or runs the tunnels here: it
// takes the tunnel state directory and rebinds every port recorded there
// before returning, so that NFS clients of mounts made before a restart
// reconnect while the plugin starts.
func openTunnels(ctx context.Context, cfg Config, creds awssdk.CredentialsProvider) (efs.Tunnels, func() error, error) {
	if cfg.TunnelDaemonSocket != "" {
		c := tunnel.NewClient(cfg.TunnelDaemonSocket)
		wctx, cancel := context.WithTimeout(ctx, daemonWait)
		err := c.Restore(wctx)
		cancel()
		if err != nil && cfg.Log != nil {
			cfg.Log.Warn("the tunnel daemon does not answer yet; EFS publishes with TLS fail until it does", "socket", cfg.TunnelDaemonSocket, "err", err)
		}
		return c, func() error { return nil }, nil
	}
	m, err := tunnel.NewManager(tunnel.ManagerConfig{
		StateDir: filepath.Join(cfg.StateDir, TunnelStateDir),
		PortMin:  cfg.TunnelPortMin, PortMax: cfg.TunnelPortMax,
		Credentials: creds,
		ClientInfo:  &efscert.ClientInfo{Source: "ec2csi", Version: version.Get()},
		Registerer:  cfg.registerer,
		// A plugin being replaced may still be exiting and holding the
		// lock; the kernel drops it when the old process is gone.
		LockWait: 30 * time.Second,
		Logger:   cfg.Log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("EFS TLS tunnels: %w", err)
	}
	start := time.Now()
	if err := m.Restore(ctx); err != nil {
		return nil, nil, errors.Join(fmt.Errorf("EFS TLS tunnels: %w", err), m.Close())
	}
	if cfg.Log != nil {
		cfg.Log.Info("EFS TLS tunnels restored", "tunnels", len(m.Tunnels()), "took", time.Since(start))
	}
	return m, m.Close, nil
}

// closingSource is a MountSource that owns what must be stopped with the
// plugin: tunnels run in this process, the local mount target.
type closingSource struct {
	efs.MountSource
	close func() error
}

// Close stops the tunnels (they keep their records for the next process)
// and the local mount target.
func (s *closingSource) Close() error { return s.close() }

// noEFSNode is the EFS mount source of a process that serves no EFS node.
type noEFSNode struct{}

var errNoEFSNode = status.Error(codes.FailedPrecondition, "this process does not serve the EFS node")

func (noEFSNode) Prepare(context.Context, efs.MountRequest) (efs.Mount, error) {
	return efs.Mount{}, errNoEFSNode
}
func (noEFSNode) Release(context.Context, string) error   { return nil }
func (noEFSNode) Check(context.Context, efs.Handle) error { return errNoEFSNode }
