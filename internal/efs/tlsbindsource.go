package efs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/tunnel"
)

// TLSBindOptions configure NewTLSBindSource.
type TLSBindOptions struct {
	// Resolver maps volumes to local directories, as for BindSource.
	Resolver DirectoryResolver
	// Tunnels carry the TLS connections. Required.
	Tunnels Tunnels
	// Region and DNSSuffix make the file system names the mount target's
	// certificate carries (fs-X.efs.REGION.SUFFIX).
	Region, DNSSuffix string
	// MountTarget is the TLS endpoint standing in for every mount target,
	// host:port.
	MountTarget string
	// CAFile is the PEM bundle the endpoint's certificate chains to.
	CAFile string
	// Probe connects to addr, the local end of a tunnel, and returns nil
	// once the endpoint behind it accepted the connection, or an error
	// naming why it did not.
	Probe func(ctx context.Context, addr string) error
	// EncryptInTransitDefault applies to volumes whose context and mount
	// options do not say.
	EncryptInTransitDefault bool
}

// TLSBindSource publishes the local backend's file systems as bind mounts,
// as BindSource does, but first takes the path an EFS mount takes on AWS:
// a TLS tunnel per file system and access point, with the client
// certificate EFS expects, to a TLS endpoint that checks it. So the local
// backend exercises the tunnels, their certificates and their sharing and
// restoring, on a machine without an NFS client.
type TLSBindSource struct {
	opts TLSBindOptions
	bind BindSource
	book tunnelBook
}

// probeTimeout bounds one end-to-end check of a tunnel.
const probeTimeout = 15 * time.Second

// NewTLSBindSource returns a TLSBindSource.
func NewTLSBindSource(o TLSBindOptions) (*TLSBindSource, error) {
	switch {
	case o.Resolver == nil:
		return nil, errors.New("TLS bind source: no directory resolver")
	case o.Tunnels == nil:
		return nil, errors.New("TLS bind source: no tunnels")
	case o.MountTarget == "":
		return nil, errors.New("TLS bind source: no mount target address")
	case o.Probe == nil:
		return nil, errors.New("TLS bind source: no probe")
	}
	if o.DNSSuffix == "" {
		o.DNSSuffix = tunnel.DefaultDNSSuffix
	}
	return &TLSBindSource{opts: o, bind: BindSource{Resolver: o.Resolver}}, nil
}

// Prepare acquires the volume's tunnel and proves a connection through it
// is accepted by the endpoint, then resolves the directory to bind. The
// tunnel comes first so that what the endpoint says about a certificate
// (say, an access point of another file system) is the error the CO sees.
func (s *TLSBindSource) Prepare(ctx context.Context, req MountRequest) (Mount, error) {
	flags, err := parseMountFlags(req.Options)
	if err != nil {
		return Mount{}, status.Errorf(codes.InvalidArgument, "mount options: %v", err)
	}
	tls, err := useTLS(s.opts.EncryptInTransitDefault, req, flags)
	if err != nil {
		return Mount{}, err
	}
	h := req.Handle
	if !tls {
		s.book.add(req.Key, tunnelUse{fileSystemID: h.FileSystemID, accessPointID: h.AccessPointID})
		return s.bind.Prepare(ctx, req)
	}
	// IAM is left out: the local backend has no credentials to sign with
	// and no IAM to check them.
	spec := tunnel.SpecFor(h.FileSystemID, h.AccessPointID, s.opts.Region, s.opts.DNSSuffix, "", false)
	spec.Target, spec.CAFile = s.opts.MountTarget, s.opts.CAFile
	port, err := s.opts.Tunnels.Acquire(ctx, spec, req.Key)
	if err != nil {
		return Mount{}, tunnelCode(fmt.Errorf("TLS tunnel to %s: %w", spec.Target, err))
	}
	s.book.add(req.Key, tunnelUse{fileSystemID: h.FileSystemID, accessPointID: h.AccessPointID, port: port})
	var m Mount
	err = s.prove(ctx, port)
	if err == nil {
		m, err = s.bind.Prepare(ctx, req)
	}
	if err != nil {
		if rerr := s.Release(ctx, req.Key); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Mount{}, err
	}
	return m, nil
}

// prove connects through the tunnel on port, end to end.
func (s *TLSBindSource) prove(ctx context.Context, port int) error {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := s.opts.Probe(pctx, addr); err != nil {
		return fmt.Errorf("through the TLS tunnel on %s: %w", addr, err)
	}
	return nil
}

// Release releases the publish's tunnel, if it has one.
func (s *TLSBindSource) Release(ctx context.Context, key string) error {
	if !s.book.remove(key) {
		return nil
	}
	if err := s.opts.Tunnels.Release(ctx, key); err != nil {
		return fmt.Errorf("release TLS tunnel of %s: %w", key, err)
	}
	return nil
}

// Check reports a missing directory, as BindSource, or a tunnel of the
// volume that no longer listens.
func (s *TLSBindSource) Check(ctx context.Context, h Handle) error {
	if err := s.bind.Check(ctx, h); err != nil {
		return err
	}
	return s.book.check(h)
}
