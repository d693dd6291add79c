package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Spec says what a tunnel connects to and as whom. Mounts whose Specs are
// equal share one tunnel.
type Spec struct {
	// FileSystemID is the EFS file system, e.g. fs-12345678.
	FileSystemID string `json:"fileSystemID"`
	// AccessPointID is the access point, or empty.
	AccessPointID string `json:"accessPointID,omitempty"`
	// IAM turns on IAM authorization with the Manager's credentials.
	IAM bool `json:"iam,omitempty"`
	// Region scopes the IAM signature; empty means the region in
	// ServerName (fs-X.efs.REGION.suffix).
	Region string `json:"region,omitempty"`
	// Target is the mount target, "host:port": the file system's DNS name
	// or a mount target IP, port 2049.
	Target string `json:"target"`
	// ServerName is the name the server's certificate must carry and the
	// SNI sent, normally the file system's DNS name.
	ServerName string `json:"serverName"`
	// CAFile is an optional PEM bundle trusted besides the system roots.
	CAFile string `json:"caFile,omitempty"`
}

// Key identifies the tunnel a Spec gets.
func (s Spec) Key() string {
	iam := ""
	if s.IAM {
		iam = "iam"
	}
	return strings.Join([]string{s.FileSystemID, s.AccessPointID, iam, s.Region, s.Target, s.ServerName, s.CAFile}, "|")
}

// Validate reports a Spec that cannot make a tunnel.
func (s Spec) Validate() error {
	if s.FileSystemID == "" {
		return errors.New("tunnel spec: no file system ID")
	}
	if strings.Contains(s.Key(), "\x00") {
		return errors.New("tunnel spec: NUL in a field")
	}
	if _, port, err := net.SplitHostPort(s.Target); err != nil || port == "" {
		return fmt.Errorf("tunnel spec: target %q is not host:port", s.Target)
	}
	if s.ServerName == "" {
		return errors.New("tunnel spec: no server name")
	}
	if s.IAM && s.region() == "" {
		return fmt.Errorf("tunnel spec: IAM needs a region and none is in %q", s.ServerName)
	}
	return nil
}

// region is Region or the one in the EFS DNS name
// [az.]fs-X.efs.REGION.suffix.
func (s Spec) region() string {
	if s.Region != "" {
		return s.Region
	}
	labels := strings.Split(s.ServerName, ".")
	for i := 0; i+1 < len(labels); i++ {
		if labels[i] == "efs" && i > 0 && strings.HasPrefix(labels[i-1], "fs-") {
			return labels[i+1]
		}
	}
	return ""
}

// Acquirer is what the EFS node plugin uses, in process (Manager) or
// through the tunnel daemon (Client).
type Acquirer interface {
	// Acquire returns the local port of the tunnel for spec, opening it if
	// no mount uses it yet, and records mountKey (e.g. the target path) as
	// a user. Acquiring the same mountKey again is idempotent.
	Acquire(ctx context.Context, spec Spec, mountKey string) (port int, err error)
	// Release drops mountKey's use; the tunnel closes with its last user.
	// Releasing an unknown key is not an error.
	Release(ctx context.Context, mountKey string) error
	// Restore brings back, on their own ports, the tunnels a previous
	// process left; call it at start-up before serving anything.
	Restore(ctx context.Context) error
}

// ErrMountConflict is returned when a mount key is acquired again for a
// different Spec without a Release in between.
var ErrMountConflict = errors.New("mount key already holds a tunnel for another spec")

// ErrNoPorts is returned when every port of the range is taken.
var ErrNoPorts = errors.New("no free tunnel port in range")

// DefaultDNSSuffix is the DNS suffix of EFS names in most partitions; China
// regions use amazonaws.com.cn and isolated ones their own, hence the
// parameter of SpecFor.
const DefaultDNSSuffix = "amazonaws.com"

// NFSPort is the port EFS mount targets serve NFS over TLS on.
const NFSPort = "2049"

// SpecFor is the usual Spec for a file system reached by its DNS name,
// fs-X.efs.REGION.SUFFIX:2049, which is also the name its certificate
// carries. mountTargetIP, when set, is dialled instead of the name (the
// certificate is still checked against the name).
func SpecFor(fileSystemID, accessPointID, region, dnsSuffix, mountTargetIP string, iam bool) Spec {
	if dnsSuffix == "" {
		dnsSuffix = DefaultDNSSuffix
	}
	name := fileSystemID + ".efs." + region + "." + dnsSuffix
	target := net.JoinHostPort(name, NFSPort)
	if mountTargetIP != "" {
		target = net.JoinHostPort(mountTargetIP, NFSPort)
	}
	return Spec{
		FileSystemID: fileSystemID, AccessPointID: accessPointID, IAM: iam, Region: region,
		Target: target, ServerName: name,
	}
}
