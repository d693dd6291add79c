package cloud

import (
	"regexp"
	"strings"
)

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

var (
	volumeIDRe   = regexp.MustCompile(`^vol-([0-9a-f]{8}|[0-9a-f]{17})$`)
	snapshotIDRe = regexp.MustCompile(`^snap-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

// ValidVolumeID reports whether id has the shape of an EBS volume ID.
func ValidVolumeID(id string) bool { return volumeIDRe.MatchString(id) }

// ValidSnapshotID reports whether id has the shape of an EBS snapshot ID.
func ValidSnapshotID(id string) bool { return snapshotIDRe.MatchString(id) }

// EBSDeviceLink is the name udev gives, under /dev/disk/by-id, to an EBS
// volume on a Nitro instance: the NVMe model and serial, where the serial
// is the volume ID without its dash. The local backend and the AWS fake
// publish the same links so that the node finds devices one way
// everywhere.
func EBSDeviceLink(volumeID string) string {
	return "nvme-Amazon_Elastic_Block_Store_" + NVMeSerial(volumeID)
}

// NVMeSerial is the serial number an EBS volume's NVMe controller reports.
func NVMeSerial(volumeID string) string {
	return strings.Replace(volumeID, "-", "", 1)
}
