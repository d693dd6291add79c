package awsfake

import (
	"fmt"
	"time"
)

// Options configures a Fake. The zero value is usable: region us-east-1,
// three zones, transitions of 0–50 ms, no faults.
type Options struct {
	// Region is reported in ARNs and DescribeAvailabilityZones.
	// Default "us-east-1".
	Region string
	// AccountID owns every resource. Default "123456789012".
	AccountID string
	// Zones are the availability zones of the region. Default the region
	// name with suffixes a, b and c.
	Zones []string
	// Seed makes IDs, delays and fault decisions reproducible: the same
	// seed and the same sequence of requests give the same answers.
	Seed uint64

	// Delays sets how long each state transition takes. Nil means every
	// transition takes a random 0–50 ms, which keeps tests fast while
	// still making callers wait for the states they need.
	Delays *Delays
	// Faults are injected into requests from the start; SetFaults changes
	// them at run time.
	Faults Faults

	// AccessPointLimit is the number of access points a file system may
	// have. Default 10,000, EFS's documented quota (it was 120, then
	// 1,000 before that).
	AccessPointLimit int
	// FileSystemLimit is the number of file systems in the account.
	// Default 1,000, EFS's default quota.
	FileSystemLimit int
	// StrictAccessPointTokens makes any reuse of an access point
	// ClientToken fail with AccessPointAlreadyExists, even with identical
	// parameters. Users have reported that behaviour from real EFS
	// (aws/aws-cli#6198); by default the fake instead returns the existing
	// access point for an identical retry and only conflicts when the
	// parameters differ, which is what the API documents.
	StrictAccessPointTokens bool

	// VolumeLimit caps the number of EBS volumes (VolumeLimitExceeded).
	// Zero means no cap.
	VolumeLimit int
	// StorageLimitGiB caps the total size of all EBS volumes
	// (VolumeLimitExceeded). Zero means no cap.
	StorageLimitGiB int64
	// KMSKeys, if set, lists the KMS key IDs or ARNs that exist. A volume
	// created with any other KmsKeyId is accepted and then fails while
	// creating (it goes to deleted), as EBS does when it cannot use the
	// key, and its ClientToken stays burned.
	KMSKeys []string
	// AttachmentLimit is how many EBS volumes, the root volume included,
	// one instance can have attached (AttachmentLimitExceeded). Default 27:
	// the 28 shared Nitro attachment slots less one network interface.
	AttachmentLimit int

	// Devices, if set, backs attached EBS volumes with real devices and
	// publishes their NVMe by-id links under DevRoot.
	Devices Devices
	// DevRoot is the directory that stands for /dev when Devices is set:
	// links go to DevRoot/disk/by-id.
	DevRoot string

	// Instances, FileSystems and Subnets are seeded at construction, as if
	// AddInstance, AddFileSystem and AddSubnet had been called.
	Instances   []InstanceSpec
	FileSystems []FileSystemSpec
	Subnets     []SubnetSpec

	// Logf, if set, receives one line per request.
	Logf func(format string, args ...any)
}

// Delay is a range a random duration is drawn from.
type Delay struct {
	Min, Max time.Duration
}

func (d Delay) validate(name string) error {
	if d.Min < 0 || d.Max < 0 {
		return fmt.Errorf("delay %s: negative duration", name)
	}
	if d.Max != 0 && d.Max < d.Min {
		return fmt.Errorf("delay %s: max %v below min %v", name, d.Max, d.Min)
	}
	return nil
}

// Transition names one timed state change of a resource.
type Transition string

// The timed transitions. Each has its own delay; those not named in
// Delays.Per use Delays.Default.
const (
	VolumeCreate      Transition = "volume-create"       // creating → available
	VolumeDelete      Transition = "volume-delete"       // deleting → gone
	VolumeAttach      Transition = "volume-attach"       // attaching → attached
	VolumeDetach      Transition = "volume-detach"       // detaching → detached
	SnapshotComplete  Transition = "snapshot-complete"   // pending → completed
	ModifyStart       Transition = "modify-start"        // modifying → optimizing
	ModifyOptimize    Transition = "modify-optimize"     // optimizing → completed
	FileSystemCreate  Transition = "file-system-create"  // creating → available
	MountTargetCreate Transition = "mount-target-create" // creating → available
	MountTargetDelete Transition = "mount-target-delete" // deleting → gone
	AccessPointCreate Transition = "access-point-create" // creating → available
	AccessPointDelete Transition = "access-point-delete" // deleting → gone
	FileSystemDelete  Transition = "file-system-delete"  // deleting → gone
)

// Delays sets transition times.
type Delays struct {
	// Default applies to every transition not in Per.
	Default Delay
	// Per overrides Default for single transitions.
	Per map[Transition]Delay
}

// defaultDelays keeps tests fast but never instantaneous on average, so a
// caller that forgets to wait for a state is caught.
func defaultDelays() Delays {
	return Delays{Default: Delay{Min: 0, Max: 50 * time.Millisecond}}
}

func (d Delays) forTransition(t Transition) Delay {
	if v, ok := d.Per[t]; ok {
		return v
	}
	return d.Default
}

func (d Delays) validate() error {
	if err := d.Default.validate("default"); err != nil {
		return err
	}
	for t, v := range d.Per {
		if err := v.validate(string(t)); err != nil {
			return err
		}
	}
	return nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "123456789012"
	}
	if len(o.Zones) == 0 {
		o.Zones = []string{o.Region + "a", o.Region + "b", o.Region + "c"}
	}
	if o.AccessPointLimit == 0 {
		o.AccessPointLimit = 10000
	}
	if o.FileSystemLimit == 0 {
		o.FileSystemLimit = 1000
	}
	if o.AttachmentLimit == 0 {
		o.AttachmentLimit = 27
	}
	if o.Delays == nil {
		d := defaultDelays()
		o.Delays = &d
	}
	if err := o.Delays.validate(); err != nil {
		return o, err
	}
	if err := o.Faults.validate(); err != nil {
		return o, err
	}
	if o.Devices != nil && o.DevRoot == "" {
		return o, fmt.Errorf("Devices set without DevRoot")
	}
	return o, nil
}
