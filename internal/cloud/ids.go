package cloud

import "regexp"

var (
	// EFS file system IDs carry 8 (old) or 17 hex digits.
	fileSystemIDRe = regexp.MustCompile(`^fs-([0-9a-f]{8}|[0-9a-f]{17})$`)
	// Access point IDs carry 17 hex digits; the upstream driver accepts 8
	// to 40, and so do we, so that handles written for it keep parsing.
	accessPointIDRe = regexp.MustCompile(`^fsap-[0-9a-f]{8,40}$`)
)

// ValidFileSystemID reports whether id has the shape of an EFS file system
// ID: fs- and 8 or 17 lower-case hex digits.
func ValidFileSystemID(id string) bool { return fileSystemIDRe.MatchString(id) }

// ValidAccessPointID reports whether id has the shape of an EFS access
// point ID.
func ValidAccessPointID(id string) bool { return accessPointIDRe.MatchString(id) }
