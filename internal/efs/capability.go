package efs

import (
	"fmt"
	"strings"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/csiserver"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// validateCapabilities checks that EFS can serve every capability: a file
// system in any access mode, never a raw block device.
func validateCapabilities(caps []*csi.VolumeCapability) error {
	return csiserver.ValidateCapabilities(caps, validateCapability)
}

func validateCapability(c *csi.VolumeCapability) error {
	if c == nil {
		return status.Error(codes.InvalidArgument, "volume_capability is required")
	}
	if c.GetBlock() != nil {
		return status.Error(codes.InvalidArgument, "volume_capability: EFS is a shared file system and has no block access type; use access type mount (for a raw block device use EBS)")
	}
	m := c.GetMount()
	if m == nil {
		return status.Error(codes.InvalidArgument, "volume_capability: access type mount is required")
	}
	switch m.GetFsType() {
	case "", "nfs", "nfs4", "efs":
	default:
		return status.Errorf(codes.InvalidArgument, "volume_capability.mount.fs_type %q: EFS volumes are NFS; leave it empty or set nfs", m.GetFsType())
	}
	mode := c.GetAccessMode().GetMode()
	if mode == csi.VolumeCapability_AccessMode_UNKNOWN {
		return status.Error(codes.InvalidArgument, "volume_capability.access_mode is required")
	}
	if _, ok := csi.VolumeCapability_AccessMode_Mode_name[int32(mode)]; !ok {
		return status.Errorf(codes.InvalidArgument, "volume_capability.access_mode %d is unknown", mode)
	}
	if _, err := parseMountFlags(m.GetMountFlags()); err != nil {
		return status.Errorf(codes.InvalidArgument, "volume_capability.mount.mount_flags: %v", err)
	}
	return nil
}

func readOnlyMode(c *csi.VolumeCapability) bool {
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		return true
	}
	return false
}

// mountFlagSyntax lists the options a user may put in a PV's or
// StorageClass's mountOptions: the NFS client's and efs-utils' own. The value
// says whether the option takes "=value" (true) or not (false).
var mountFlagSyntax = map[string]bool{
	// efs-utils
	"tls": false, "notls": false, "iam": false, "ocsp": false, "noocsp": false,
	"accesspoint": true, "tlsport": true, "verify": true, "awsprofile": true, "awscredsuri": true,
	"netns": true, "az": true, "mounttargetip": true, "crossaccount": false, "fsap": true,
	// NFS client
	"nfsvers": true, "vers": true, "minorversion": true, "rsize": true, "wsize": true,
	"hard": false, "soft": false, "softerr": false, "timeo": true, "retrans": true, "retry": true,
	"noresvport": false, "resvport": false, "proto": true, "port": true, "sec": true,
	"ac": false, "noac": false, "actimeo": true, "acregmin": true, "acregmax": true,
	"acdirmin": true, "acdirmax": true, "lookupcache": true, "cto": false, "nocto": false,
	"sharecache": false, "nosharecache": false, "fsc": false, "nofsc": false, "local_lock": true,
	"intr": false, "nointr": false, "_netdev": false, "nconnect": true, "max_connect": true,
	"lock": false, "nolock": false, "clientaddr": true, "namlen": true,
	// generic VFS
	"ro": false, "rw": false, "nosuid": false, "suid": false, "nodev": false, "dev": false,
	"noexec": false, "exec": false, "noatime": false, "atime": false, "relatime": false,
	"norelatime": false, "nodiratime": false, "diratime": false, "strictatime": false,
	"sync": false, "async": false, "defaults": false,
}

// mountFlags are parsed capability mount flags.
type mountFlags struct {
	ReadOnly    bool
	TLS         bool
	NoTLS       bool
	IAM         bool
	AccessPoint string
	// VFS are the generic options a bind mount can honour.
	VFS []string
	All []string
}

// parseMountFlags validates flags; each may be a comma-separated list, as
// Kubernetes passes PV mountOptions through unchanged.
func parseMountFlags(flags []string) (mountFlags, error) {
	var f mountFlags
	for _, flag := range flags {
		for _, opt := range strings.Split(flag, ",") {
			opt = strings.TrimSpace(opt)
			if opt == "" {
				continue
			}
			name, value, hasValue := strings.Cut(opt, "=")
			wantValue, known := mountFlagSyntax[name]
			switch {
			case !known:
				return f, fmt.Errorf("unknown mount option %q (EFS accepts NFS client options such as nfsvers, rsize, hard, noresvport and efs-utils options such as tls, iam, accesspoint)", opt)
			case wantValue && (!hasValue || value == ""):
				return f, fmt.Errorf("mount option %q needs a value (%s=…)", opt, name)
			case !wantValue && hasValue:
				return f, fmt.Errorf("mount option %q takes no value", opt)
			case strings.ContainsAny(value, " \t\n\"'"):
				return f, fmt.Errorf("mount option %q has a malformed value", opt)
			}
			switch name {
			case "ro":
				f.ReadOnly = true
				f.VFS = append(f.VFS, name)
			case "tls":
				f.TLS = true
			case "notls":
				f.NoTLS = true
			case "iam":
				f.IAM = true
			case "accesspoint", "fsap":
				if !cloud.ValidAccessPointID(value) {
					return f, fmt.Errorf("mount option %q: %q is not an access point ID", opt, value)
				}
				f.AccessPoint = value
			case "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "strictatime":
				f.VFS = append(f.VFS, name)
			}
			f.All = append(f.All, opt)
		}
	}
	if f.TLS && f.NoTLS {
		return f, fmt.Errorf("mount options tls and notls contradict each other")
	}
	return f, nil
}
