package efs

import (
	"fmt"
	"path"
	"strings"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

// Handle is a parsed EFS volume handle. The upstream EFS CSI driver's
// formats are kept exactly, so PVs it created keep working:
//
//	fs-X                  the file system root
//	fs-X:/sub/path        a directory of the file system
//	fs-X::fsap-Y          an access point (what CreateVolume returns)
//	fs-X:/sub/path:fsap-Y a directory below an access point's root
type Handle struct {
	FileSystemID  string
	SubPath       string // absolute, cleaned; "/" when absent
	AccessPointID string // empty when the handle names no access point
}

// ParseHandle parses a volume handle; the error names the handle and the
// part that is wrong.
func ParseHandle(handle string) (Handle, error) {
	parts := strings.Split(handle, ":")
	if len(parts) > 3 {
		return Handle{}, fmt.Errorf("volume handle %q: want fs-ID, fs-ID:/path, fs-ID::fsap-ID or fs-ID:/path:fsap-ID, got %d ':'-separated fields", handle, len(parts))
	}
	h := Handle{FileSystemID: parts[0], SubPath: "/"}
	if !cloud.ValidFileSystemID(h.FileSystemID) {
		return Handle{}, fmt.Errorf("volume handle %q: file system ID %q is not of the form fs- followed by 8 or 17 lower-case hex digits", handle, h.FileSystemID)
	}
	if len(parts) >= 2 && parts[1] != "" {
		p, err := cleanSubPath(parts[1])
		if err != nil {
			return Handle{}, fmt.Errorf("volume handle %q: %w", handle, err)
		}
		h.SubPath = p
	}
	if len(parts) == 3 {
		h.AccessPointID = parts[2]
		// fs-X:/path: (empty access point) is accepted by upstream.
		if h.AccessPointID != "" && !cloud.ValidAccessPointID(h.AccessPointID) {
			return Handle{}, fmt.Errorf("volume handle %q: access point ID %q is not of the form fsap- followed by hex digits", handle, h.AccessPointID)
		}
	}
	return h, nil
}

// cleanSubPath accepts an absolute path without "..": a handle must never
// reach outside the directory it names.
func cleanSubPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("sub path %q must be absolute", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("sub path %q must not contain '..'", p)
		}
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("sub path %q contains a NUL byte", p)
	}
	return path.Clean(p), nil
}

// String formats the handle the way ParseHandle reads it.
func (h Handle) String() string {
	s := h.FileSystemID
	sub := h.SubPath
	if sub == "/" {
		sub = ""
	}
	switch {
	case h.AccessPointID != "":
		return s + ":" + sub + ":" + h.AccessPointID
	case sub != "":
		return s + ":" + sub
	}
	return s
}
