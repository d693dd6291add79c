package awsfake

import (
	"container/heap"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The resources. All fields are guarded by Fake.mu.

type volume struct {
	id, zone, volType  string
	snapshotID         string
	kmsKeyID           string
	sizeGiB            int64
	iops, throughput   int32
	encrypted          bool
	multiAttach        bool
	state              string
	created, visibleAt time.Time
	tags               map[string]string
	attachments        []*attachment
	mod                *modification
	// failing marks a volume whose creation will fail (unknown KMS key).
	failing bool
	// root marks an instance's root volume, which has no device behind it.
	root bool
}

type attachment struct {
	instanceID, device  string
	state               string
	attachTime          time.Time
	deleteOnTermination bool
}

type modification struct {
	state                  string
	origSize, targetSize   int64
	origIops, targetIops   int32
	origTput, targetTput   int32
	origType, targetType   string
	progress               int64
	start, end             time.Time
	origMulti, targetMulti bool
}

type snapshot struct {
	id, volumeID, description string
	state                     string
	sizeGiB                   int64
	encrypted                 bool
	kmsKeyID                  string
	started, completed        time.Time
	visibleAt                 time.Time
	tags                      map[string]string
}

type instance struct {
	id, zone, instanceType string
	launched               time.Time
	tags                   map[string]string
	rootVolumeID           string
	privateIP              string
}

// clientToken remembers what an EC2 ClientToken created, for good: EC2
// keeps a token bound to its volume even after the volume is gone.
type clientToken struct {
	volumeID string
	params   string
}

type fileSystem struct {
	id, creationToken string
	state             string
	zone              string // One Zone file systems only
	performanceMode   string
	throughputMode    string
	provisionedMibps  float64
	encrypted         bool
	kmsKeyID          string
	created           time.Time
	visibleAt         time.Time
	tags              map[string]string
	sizeBytes         int64
}

type mountTarget struct {
	id, fsID, subnetID string
	zone, ip, eni      string
	state              string
	visibleAt          time.Time
}

type posixUser struct {
	Uid           int64   `json:"Uid"`
	Gid           int64   `json:"Gid"`
	SecondaryGids []int64 `json:"SecondaryGids,omitempty"`
}

type creationInfo struct {
	OwnerUid    int64  `json:"OwnerUid"`
	OwnerGid    int64  `json:"OwnerGid"`
	Permissions string `json:"Permissions"`
}

type rootDirectory struct {
	Path         string        `json:"Path,omitempty"`
	CreationInfo *creationInfo `json:"CreationInfo,omitempty"`
}

type accessPoint struct {
	id, fsID, clientToken string
	params                string
	state                 string
	posix                 *posixUser
	root                  rootDirectory
	tags                  map[string]string
	visibleAt             time.Time
}

type subnet struct {
	id, zone, vpcID string
	prefix          netip.Prefix
	next            netip.Addr
}

// InstanceSpec seeds an EC2 instance.
type InstanceSpec struct {
	// ID is the instance ID; empty picks one.
	ID string
	// Zone must be one of the fake's zones; empty picks the first.
	Zone string
	// InstanceType defaults to "m5.large".
	InstanceType string
	Tags         map[string]string
}

// FileSystemSpec seeds an EFS file system that is already available.
type FileSystemSpec struct {
	// ID is the file system ID; empty picks one.
	ID   string
	Name string
	// OneZone makes a One Zone file system in that zone.
	OneZone string
	// MountTargetZones get one available mount target each. Nil means
	// every zone (or the One Zone); an empty non-nil slice means none.
	MountTargetZones []string
	Tags             map[string]string
}

// SubnetSpec seeds a subnet mount targets can be created in.
type SubnetSpec struct {
	ID   string
	Zone string
	// CIDR defaults to a /24 of 10.0.0.0/16 chosen by zone.
	CIDR string
}

// VolumeSpec seeds an EBS volume that is already available.
type VolumeSpec struct {
	// ID is the volume ID; empty picks one.
	ID         string
	Zone       string
	SizeGiB    int64
	VolumeType string
	Tags       map[string]string
}

// event is a timed state change. Events run in time order under Fake.mu.
type event struct {
	at  time.Time
	seq uint64
	fn  func(at time.Time)
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// afterLocked runs fn once the delay for transition t has passed, and
// returns when that will be.
func (f *Fake) afterLocked(now time.Time, t Transition, fn func(at time.Time)) time.Time {
	at := now.Add(drawDelay(f.delayRNG, f.delays.forTransition(t)))
	f.eventSeq++
	heap.Push(&f.events, event{at: at, seq: f.eventSeq, fn: fn})
	f.armLocked(now)
	return at
}

// armLocked makes sure the timer fires for the earliest event, so that
// transitions (and their device side effects) happen on time even when
// nobody is asking.
func (f *Fake) armLocked(now time.Time) {
	if len(f.events) == 0 || f.closed {
		return
	}
	next := f.events[0].at
	if f.timerArmed && !f.timerAt.After(next) {
		return
	}
	d := max(next.Sub(now), 0)
	if f.timer == nil {
		f.timer = time.AfterFunc(d, f.tick)
	} else {
		f.timer.Reset(d)
	}
	f.timerAt, f.timerArmed = next, true
}

func (f *Fake) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timerArmed = false
	now := time.Now()
	f.advanceLocked(now)
	f.armLocked(now)
}

// advanceLocked applies every transition due by now, oldest first.
func (f *Fake) advanceLocked(now time.Time) {
	for len(f.events) > 0 && !f.events[0].at.After(now) {
		e := heap.Pop(&f.events).(event)
		e.fn(e.at)
	}
}

// newID makes an AWS-style ID: prefix, dash, n lowercase hex digits.
func newID(rng *rand.Rand, prefix string, n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, len(prefix)+1+n)
	b = append(b, prefix...)
	b = append(b, '-')
	for range n {
		b = append(b, hex[rng.IntN(16)])
	}
	return string(b)
}

// uniqueIDLocked draws IDs until one is unused in taken.
func uniqueIDLocked[V any](f *Fake, prefix string, n int, taken map[string]V) string {
	for {
		id := newID(f.idRNG, prefix, n)
		if _, ok := taken[id]; !ok {
			return id
		}
	}
}

func (f *Fake) requestIDLocked() string {
	r := f.idRNG
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, 0x8000|r.Uint32()&0x3fff, r.Uint64()&0xffffffffffff)
}

func (f *Fake) hasZone(zone string) bool {
	return slices.Contains(f.opts.Zones, zone)
}

// zoneID maps a zone name to a zone ID in AWS's style (us-east-1a →
// use1-az1). Real zone IDs are shuffled per account; a fixed mapping is
// enough for a fake.
func (f *Fake) zoneID(zone string) string {
	i := slices.Index(f.opts.Zones, zone)
	if i < 0 {
		return ""
	}
	parts := strings.Split(f.opts.Region, "-")
	abbr := parts[0]
	for j, p := range parts[1:] {
		if j == len(parts)-2 || p == "" {
			abbr += p
		} else {
			abbr += p[:1]
		}
	}
	return fmt.Sprintf("%s-az%d", abbr, i+1)
}

func copyTags(t map[string]string) map[string]string {
	out := make(map[string]string, len(t))
	maps.Copy(out, t)
	return out
}

// visible reports whether a resource created with visibleAt shows in
// Describe* calls at now.
func visible(visibleAt, now time.Time) bool {
	return !now.Before(visibleAt)
}
