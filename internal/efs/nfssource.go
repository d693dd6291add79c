package efs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/tunnel"
)

// NFSSourceOptions configure NewNFSSource.
type NFSSourceOptions struct {
	// Tunnels carry TLS mounts. Required unless no volume can use TLS
	// (EncryptInTransitDefault false and no tls option ever given); a TLS
	// publish without it fails.
	Tunnels Tunnels
	// Region is the node's region, part of every file system's DNS name
	// and of the IAM signature. Required.
	Region string
	// DNSSuffix ends the file system DNS names; empty means
	// tunnel.DefaultDNSSuffix (amazonaws.com). China regions use
	// amazonaws.com.cn.
	DNSSuffix string
	// Zone is the node's availability zone, the key into a volume's
	// mounttargetipmap.
	Zone string
	// EncryptInTransitDefault applies to volumes whose context and mount
	// options do not say; upstream's default is true.
	EncryptInTransitDefault bool
	// CAFile is a PEM bundle the tunnels trust besides the system roots,
	// for endpoints with a private CA; empty for EFS.
	CAFile string
}

// NFSSource mounts EFS over NFSv4.1 from the kernel's NFS client: through a
// local TLS tunnel (127.0.0.1:/path, port=N) when the volume is encrypted
// in transit, else straight to the file system's DNS name or a mount target
// IP. It is the EFS node's MountSource on --cloud aws.
type NFSSource struct {
	opts NFSSourceOptions
	// lookupHost resolves a file system's DNS name; a field so tests need
	// no resolver.
	lookupHost func(ctx context.Context, host string) ([]string, error)
	// targetPort is the mount target's port, 2049 on EFS; a field so
	// tests can stand in for a mount target on another port.
	targetPort string
	book       tunnelBook
}

// NewNFSSource returns an NFSSource.
func NewNFSSource(o NFSSourceOptions) (*NFSSource, error) {
	if o.Region == "" {
		return nil, errors.New("EFS NFS mounts: the node's region is unknown (set --region)")
	}
	if o.DNSSuffix == "" {
		o.DNSSuffix = tunnel.DefaultDNSSuffix
	}
	return &NFSSource{opts: o, lookupHost: net.DefaultResolver.LookupHost, targetPort: tunnel.NFSPort}, nil
}

// EFS's recommended NFS client options (efs-utils and the EFS user guide):
// NFSv4.1, 1 MiB transfers, hard mounts with a 60 s timeout and two
// retransmissions, and a non-privileged source port so a reconnect after a
// network change gets a fresh one.
var nfsDefaultOptions = []string{"nfsvers=4.1", "rsize=1048576", "wsize=1048576", "hard", "timeo=600", "retrans=2", "noresvport"}

// efsUtilsOnly are mount options that mean something to efs-utils (or to
// this driver, which plays its part) but not to the kernel's NFS client;
// they never reach mount(2).
var efsUtilsOnly = map[string]bool{
	"tls": true, "notls": true, "iam": true, "ocsp": true, "noocsp": true, "accesspoint": true, "fsap": true,
	"tlsport": true, "verify": true, "awsprofile": true, "awscredsuri": true, "netns": true, "az": true,
	"mounttargetip": true, "crossaccount": true,
}

// dnsTimeout bounds the check that a file system's name resolves, so a
// broken resolver fails the publish instead of the CO's deadline.
const dnsTimeout = 10 * time.Second

// Prepare works out the NFS mount for req and, with TLS, acquires its
// tunnel under req.Key.
func (s *NFSSource) Prepare(ctx context.Context, req MountRequest) (Mount, error) {
	flags, err := parseMountFlags(req.Options)
	if err != nil {
		return Mount{}, status.Errorf(codes.InvalidArgument, "mount options: %v", err)
	}
	tls, err := useTLS(s.opts.EncryptInTransitDefault, req, flags)
	if err != nil {
		return Mount{}, err
	}
	user, err := nfsUserOptions(flags.All, tls)
	if err != nil {
		return Mount{}, err
	}
	h := req.Handle
	name := h.FileSystemID + ".efs." + s.opts.Region + "." + s.opts.DNSSuffix
	ip := req.Context.MountTargetFor(s.opts.Zone)
	if ip == "" {
		// Without a mount target IP the mount (or every connection of the
		// tunnel) goes to the DNS name, which resolves only where the VPC
		// has a mount target in this zone and DNS hostnames on. Checking
		// now turns a mount that would hang into a message. The node has
		// no EFS API access (as upstream's), so there is no
		// DescribeMountTargets fallback: the volume context must say.
		lctx, cancel := context.WithTimeout(ctx, dnsTimeout)
		_, err := s.lookupHost(lctx, name)
		cancel()
		if err != nil {
			return Mount{}, status.Errorf(codes.Unavailable,
				"file system %s: its DNS name %s does not resolve from this node (%v); give the mount target's IP in the volume context (mounttargetip, or mounttargetipmap by zone; the StorageClass parameter az sets it)",
				h.FileSystemID, name, err)
		}
	}

	if !tls {
		host := name
		if ip != "" {
			host = ip
			if strings.Contains(ip, ":") {
				host = "[" + ip + "]" // an IPv6 mount target
			}
		}
		s.book.add(req.Key, tunnelUse{fileSystemID: h.FileSystemID, accessPointID: h.AccessPointID})
		return Mount{Source: host + ":" + h.SubPath, FSType: "nfs4", Options: mergeNFSOptions(nfsDefaultOptions, user)}, nil
	}

	if s.opts.Tunnels == nil {
		return Mount{}, status.Error(codes.FailedPrecondition, "encryption in transit is on, but this node has no TLS tunnels configured")
	}
	spec := tunnel.SpecFor(h.FileSystemID, h.AccessPointID, s.opts.Region, s.opts.DNSSuffix, ip, flags.IAM)
	spec.CAFile = s.opts.CAFile
	if s.targetPort != tunnel.NFSPort {
		host, _, _ := net.SplitHostPort(spec.Target)
		spec.Target = net.JoinHostPort(host, s.targetPort)
	}
	port, err := s.opts.Tunnels.Acquire(ctx, spec, req.Key)
	if err != nil {
		return Mount{}, tunnelCode(fmt.Errorf("TLS tunnel to %s: %w", spec.Target, err))
	}
	s.book.add(req.Key, tunnelUse{fileSystemID: h.FileSystemID, accessPointID: h.AccessPointID, port: port})
	defaults := append(nfsDefaultOptions[:len(nfsDefaultOptions):len(nfsDefaultOptions)], "port="+strconv.Itoa(port))
	return Mount{Source: "127.0.0.1:" + h.SubPath, FSType: "nfs4", Options: mergeNFSOptions(defaults, user)}, nil
}

// nfsUserOptions keeps the user's options the NFS client understands. With
// TLS the port is the tunnel's, so a port option cannot apply; tlsport is
// dropped with the other efs-utils options, since tunnel ports come from
// the node's range.
func nfsUserOptions(all []string, tls bool) ([]string, error) {
	var out []string
	for _, o := range all {
		name, _, _ := strings.Cut(o, "=")
		if efsUtilsOnly[name] {
			continue
		}
		if tls && name == "port" {
			return nil, status.Errorf(codes.InvalidArgument, "mount option %s: with encryption in transit the NFS client connects to the local TLS tunnel's port; remove it", o)
		}
		out = append(out, o)
	}
	return out, nil
}

// optionKey names what an option sets, so that options setting the same
// thing (hard and soft, vers and nfsvers) replace each other.
func optionKey(o string) string {
	name, _, _ := strings.Cut(o, "=")
	switch name {
	case "vers":
		return "nfsvers"
	case "soft", "softerr":
		return "hard"
	case "resvport":
		return "noresvport"
	}
	return name
}

// mergeNFSOptions returns defaults with each one the user set replaced in
// place by the user's (the last one given), followed by the user's other
// options in their order.
func mergeNFSOptions(defaults, user []string) []string {
	last := map[string]string{}
	for _, o := range user {
		last[optionKey(o)] = o
	}
	out := make([]string, 0, len(defaults)+len(user))
	used := map[string]bool{}
	for _, d := range defaults {
		k := optionKey(d)
		if o, ok := last[k]; ok {
			out = append(out, o)
			used[k] = true
			continue
		}
		out = append(out, d)
	}
	for _, o := range user {
		if !used[optionKey(o)] {
			out = append(out, o)
		}
	}
	return out
}

// Release releases the publish's tunnel, if it has one.
func (s *NFSSource) Release(ctx context.Context, key string) error {
	if !s.book.remove(key) || s.opts.Tunnels == nil {
		return nil
	}
	if err := s.opts.Tunnels.Release(ctx, key); err != nil {
		return fmt.Errorf("release TLS tunnel of %s: %w", key, err)
	}
	return nil
}

// Check reports a TLS tunnel of the volume that is no longer listening;
// the NFS server itself is the kernel client's business.
func (s *NFSSource) Check(_ context.Context, h Handle) error {
	return s.book.check(h)
}
