// Package cloud holds what the CSI drivers and their cloud backends share:
// the resource types and the sentinel errors every backend returns, so that
// the gRPC status a caller sees is decided in one place (csiserver) whatever
// the backend.
//
// The backends are cloud/local (everything on this machine) and cloud/aws
// (aws-sdk-go-v2). Each driver package declares the narrow interface it
// needs from them.
package cloud

import (
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them (fmt.Errorf("...: %w", ErrNotFound))
// so callers can test with errors.Is and still read the context.
var (
	// ErrNotFound: the resource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a resource with that identity exists and differs
	// from the request.
	ErrAlreadyExists = errors.New("already exists")
	// ErrParameterMismatch: an idempotency token was reused with different
	// parameters.
	ErrParameterMismatch = errors.New("idempotency token reused with different parameters")
	// ErrInvalidArgument: the request is malformed or out of range.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrOutOfRange: the requested size cannot be satisfied.
	ErrOutOfRange = errors.New("out of range")
	// ErrLimitExceeded: a quota (access points per file system, volumes,
	// attachments per node) is used up.
	ErrLimitExceeded = errors.New("limit exceeded")
	// ErrInsufficientCapacity: the cloud has no capacity for the request now.
	ErrInsufficientCapacity = errors.New("insufficient capacity")
	// ErrThrottled: the API rate limit was hit even after retries.
	ErrThrottled = errors.New("throttled")
	// ErrUnauthorized: the credentials lack a permission.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrInUse: the resource is busy in a way that forbids the operation
	// (attached elsewhere, has dependants, wrong state).
	ErrInUse = errors.New("in use")
	// ErrUnavailable: the backend cannot be reached or is not ready.
	ErrUnavailable = errors.New("unavailable")
)

// FileSystem is an EFS file system.
type FileSystem struct {
	ID   string
	Name string
	// AvailabilityZone is set for One Zone file systems only.
	AvailabilityZone string
	CreationTime     time.Time
	LifeCycleState   string
	SizeBytes        int64
}

// MountTarget is an EFS file system's network endpoint in one zone.
type MountTarget struct {
	ID               string
	FileSystemID     string
	AvailabilityZone string
	IPAddress        string
}

// PosixUser is the identity every request through an access point runs as.
type PosixUser struct {
	UID int64
	GID int64
}

// CreationInfo says how EFS creates an access point's root directory.
type CreationInfo struct {
	OwnerUID    int64
	OwnerGID    int64
	Permissions string // octal, e.g. "0755"
}

// AccessPoint is an EFS access point: a root directory and a POSIX identity
// on a file system.
type AccessPoint struct {
	ID            string
	FileSystemID  string
	ClientToken   string
	RootDirectory string
	PosixUser     *PosixUser
	CreationInfo  *CreationInfo
	Tags          map[string]string
}

// CreateAccessPointInput is the request for an access point. ClientToken
// makes it idempotent: the same token with the same parameters returns the
// same access point; with different parameters, ErrParameterMismatch.
type CreateAccessPointInput struct {
	FileSystemID  string
	ClientToken   string
	RootDirectory string
	PosixUser     *PosixUser
	CreationInfo  *CreationInfo
	Tags          map[string]string
}

// Volume is an EBS volume.
type Volume struct {
	ID               string
	SizeGiB          int64
	Type             string
	IOPS             int64 // 0 when the type has no provisioned IOPS
	Throughput       int64 // MiB/s; 0 when not provisioned
	Encrypted        bool
	KMSKeyID         string
	AvailabilityZone string
	SnapshotID       string // the snapshot it was restored from
	MultiAttach      bool
	State            string // creating, available, in-use, deleting
	Tags             map[string]string
	Attachments      []Attachment
	CreateTime       time.Time
	// Modification is the state of the last ModifyVolume: "" when none,
	// else modifying, optimizing, completed or failed.
	Modification string
}

// Attachment is a volume's attachment to a node (an EC2 instance).
type Attachment struct {
	NodeID string
	// Device is where the cloud says the volume appears on the node; nodes
	// find it by volume ID, this is a hint.
	Device string
	State  string // attaching, attached, detaching
}

// CreateVolumeInput asks for a volume. ClientToken makes it idempotent like
// EC2's: same token and parameters give the same volume.
type CreateVolumeInput struct {
	ClientToken      string
	SizeGiB          int64
	Type             string
	IOPS             int64
	Throughput       int64
	Encrypted        bool
	KMSKeyID         string
	AvailabilityZone string
	SnapshotID       string
	MultiAttach      bool
	Tags             map[string]string
}

// ModifyVolumeInput changes a volume's performance in place; zero fields
// stay as they are.
type ModifyVolumeInput struct {
	Type       string
	IOPS       int64
	Throughput int64
}

// Snapshot is an EBS snapshot.
type Snapshot struct {
	ID         string
	VolumeID   string
	SizeGiB    int64
	State      string // pending, completed, error
	StartTime  time.Time
	Tags       map[string]string
	ReadyToUse bool
}

// CreateSnapshotInput asks for a snapshot of a volume. EC2's CreateSnapshot
// has no client token, so callers make it idempotent by tagging with the
// request name and looking for that tag first.
type CreateSnapshotInput struct {
	VolumeID string
	Tags     map[string]string
}

// Instance is a node as the cloud knows it.
type Instance struct {
	ID               string
	AvailabilityZone string
	Type             string
	// AttachLimit is how many volumes can be attached at once; 0 when
	// unknown.
	AttachLimit int
}

// Page is one page of a listing and the token for the next.
type Page[T any] struct {
	Items     []T
	NextToken string
}
