package awsfake

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Seeding puts resources straight into their settled state (available,
// attached, visible), bypassing the API, delays and faults, so tests can
// start from a known world.

// AddSubnet adds a subnet for mount targets and returns its ID. New
// already adds one subnet per zone; see SubnetForZone.
func (f *Fake) AddSubnet(s SubnetSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Zone == "" || !f.hasZone(s.Zone) {
		return "", fmt.Errorf("awsfake: subnet zone %q is not one of %v", s.Zone, f.opts.Zones)
	}
	if s.ID == "" {
		s.ID = uniqueIDLocked(f, "subnet", 17, f.subnets)
	} else if _, dup := f.subnets[s.ID]; dup {
		return "", fmt.Errorf("awsfake: subnet %s already exists", s.ID)
	}
	if s.CIDR == "" {
		s.CIDR = fmt.Sprintf("10.0.%d.0/24", len(f.subnets))
	}
	p, err := netip.ParsePrefix(s.CIDR)
	if err != nil || !p.Addr().Is4() || p.Bits() > 28 {
		return "", fmt.Errorf("awsfake: subnet CIDR %q must be an IPv4 prefix of /28 or larger", s.CIDR)
	}
	p = p.Masked()
	// AWS reserves the first four addresses of every subnet.
	first := p.Addr()
	for range 4 {
		first = first.Next()
	}
	f.subnets[s.ID] = &subnet{id: s.ID, zone: s.Zone, vpcID: f.vpcIDLocked(), prefix: p, next: first}
	return s.ID, nil
}

// vpcIDLocked is the one VPC every subnet belongs to.
func (f *Fake) vpcIDLocked() string {
	for _, s := range f.subnets {
		return s.vpcID
	}
	return newID(f.idRNG, "vpc", 17)
}

// SubnetForZone returns the subnet New made for zone.
func (f *Fake) SubnetForZone(zone string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, s := range f.subnets {
		if s.zone == zone {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	// The first subnet of a zone has the lowest address range.
	slices.SortFunc(ids, func(a, b string) int { return f.subnets[a].prefix.Addr().Compare(f.subnets[b].prefix.Addr()) })
	return ids[0]
}

// AddInstance adds a running instance with an 8 GiB root volume attached
// at /dev/xvda.
func (f *Fake) AddInstance(id, zone, instanceType string) error {
	_, err := f.AddInstanceSpec(InstanceSpec{ID: id, Zone: zone, InstanceType: instanceType})
	return err
}

// AddInstanceSpec is AddInstance with tags and defaults; it returns the
// instance ID.
func (f *Fake) AddInstanceSpec(s InstanceSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.advanceLocked(now)
	if s.Zone == "" {
		s.Zone = f.opts.Zones[0]
	}
	if !f.hasZone(s.Zone) {
		return "", fmt.Errorf("awsfake: instance zone %q is not one of %v", s.Zone, f.opts.Zones)
	}
	if s.InstanceType == "" {
		s.InstanceType = "m5.large"
	}
	if s.ID == "" {
		s.ID = uniqueIDLocked(f, "i", 17, f.instances)
	} else if !strings.HasPrefix(s.ID, "i-") {
		return "", fmt.Errorf("awsfake: instance ID %q must start with i-", s.ID)
	} else if _, dup := f.instances[s.ID]; dup {
		return "", fmt.Errorf("awsfake: instance %s already exists", s.ID)
	}
	zi := slices.Index(f.opts.Zones, s.Zone)
	inst := &instance{
		id:           s.ID,
		zone:         s.Zone,
		instanceType: s.InstanceType,
		launched:     now,
		tags:         copyTags(s.Tags),
		privateIP:    fmt.Sprintf("10.0.%d.%d", 200+zi, 10+len(f.instances)%240),
	}
	root := &volume{
		id:         uniqueIDLocked(f, "vol", 17, f.volumes),
		zone:       s.Zone,
		volType:    "gp3",
		sizeGiB:    8,
		iops:       3000,
		throughput: 125,
		state:      "in-use",
		created:    now,
		tags:       map[string]string{},
		root:       true,
		attachments: []*attachment{{
			instanceID: s.ID, device: "/dev/xvda", state: "attached", attachTime: now, deleteOnTermination: true,
		}},
	}
	inst.rootVolumeID = root.id
	f.volumes[root.id] = root
	f.instances[s.ID] = inst
	return s.ID, nil
}

// AddFileSystem adds an available EFS file system with available mount
// targets and returns its ID.
func (f *Fake) AddFileSystem(s FileSystemSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.advanceLocked(now)
	if s.ID == "" {
		s.ID = uniqueIDLocked(f, "fs", 17, f.fileSystems)
	} else if !strings.HasPrefix(s.ID, "fs-") {
		return "", fmt.Errorf("awsfake: file system ID %q must start with fs-", s.ID)
	} else if _, dup := f.fileSystems[s.ID]; dup {
		return "", fmt.Errorf("awsfake: file system %s already exists", s.ID)
	}
	if s.OneZone != "" && !f.hasZone(s.OneZone) {
		return "", fmt.Errorf("awsfake: zone %q is not one of %v", s.OneZone, f.opts.Zones)
	}
	zones := s.MountTargetZones
	if zones == nil {
		zones = f.opts.Zones
		if s.OneZone != "" {
			zones = []string{s.OneZone}
		}
	}
	tags := copyTags(s.Tags)
	if s.Name != "" {
		tags["Name"] = s.Name
	}
	fs := &fileSystem{
		id:              s.ID,
		creationToken:   "seed-" + s.ID,
		state:           "available",
		zone:            s.OneZone,
		performanceMode: "generalPurpose",
		throughputMode:  "elastic",
		encrypted:       true,
		kmsKeyID:        f.defaultKMSKey(),
		created:         now,
		tags:            tags,
		sizeBytes:       6144,
	}
	f.fileSystems[fs.id] = fs
	for _, z := range zones {
		sn := f.firstSubnetLocked(z)
		if sn == nil {
			delete(f.fileSystems, fs.id)
			return "", fmt.Errorf("awsfake: no subnet in zone %q", z)
		}
		if _, aerr := f.addMountTargetLocked(fs, sn, netip.Addr{}, now, false); aerr != nil {
			delete(f.fileSystems, fs.id)
			return "", fmt.Errorf("awsfake: mount target in %s: %w", z, aerr)
		}
	}
	return fs.id, nil
}

func (f *Fake) firstSubnetLocked(zone string) *subnet {
	var best *subnet
	for _, s := range f.subnets {
		if s.zone == zone && (best == nil || s.prefix.Addr().Less(best.prefix.Addr())) {
			best = s
		}
	}
	return best
}

// AddAccessPoints adds n available access points to a file system, up to
// the access point limit, and returns their IDs. Each has its own root
// directory and POSIX user, as a dynamic provisioner would make them.
func (f *Fake) AddAccessPoints(fsID string, n int) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(time.Now())
	if _, ok := f.fileSystems[fsID]; !ok {
		return nil, fmt.Errorf("awsfake: file system %s does not exist", fsID)
	}
	have := 0
	for _, ap := range f.accessPoints {
		if ap.fsID == fsID {
			have++
		}
	}
	if have+n > f.opts.AccessPointLimit {
		return nil, fmt.Errorf("awsfake: %d access points would exceed the limit of %d on %s", have+n, f.opts.AccessPointLimit, fsID)
	}
	ids := make([]string, 0, n)
	for i := range n {
		id := uniqueIDLocked(f, "fsap", 17, f.accessPoints)
		gid := int64(50000 + have + i)
		ap := &accessPoint{
			id:          id,
			fsID:        fsID,
			clientToken: "seed-" + id,
			params:      "seed-" + id,
			state:       "available",
			posix:       &posixUser{Uid: gid, Gid: gid},
			root: rootDirectory{
				Path:         "/seed/" + strconv.Itoa(have+i),
				CreationInfo: &creationInfo{OwnerUid: gid, OwnerGid: gid, Permissions: "700"},
			},
			tags: map[string]string{},
		}
		f.accessPoints[id] = ap
		f.apTokens[ap.clientToken] = id
		ids = append(ids, id)
	}
	return ids, nil
}

// AddVolume adds an available EBS volume and returns its ID.
func (f *Fake) AddVolume(s VolumeSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.advanceLocked(now)
	if s.Zone == "" {
		s.Zone = f.opts.Zones[0]
	}
	if !f.hasZone(s.Zone) {
		return "", fmt.Errorf("awsfake: volume zone %q is not one of %v", s.Zone, f.opts.Zones)
	}
	if s.ID == "" {
		s.ID = uniqueIDLocked(f, "vol", 17, f.volumes)
	} else if _, dup := f.volumes[s.ID]; dup || !strings.HasPrefix(s.ID, "vol-") {
		return "", fmt.Errorf("awsfake: volume ID %q is taken or not vol-…", s.ID)
	}
	spec := volumeSpec{volType: s.VolumeType, sizeGiB: s.SizeGiB}
	if spec.volType == "" {
		spec.volType = "gp3"
	}
	if spec.sizeGiB == 0 {
		spec.sizeGiB = 1
	}
	if aerr := checkVolumeSpec(&spec, false, false); aerr != nil && !volumeTypes[spec.volType].iopsRequired {
		return "", fmt.Errorf("awsfake: %w", aerr)
	}
	if volumeTypes[spec.volType].iopsRequired {
		spec.iops = int32(volumeTypes[spec.volType].minIops)
	}
	f.volumes[s.ID] = &volume{
		id:         s.ID,
		zone:       s.Zone,
		volType:    spec.volType,
		sizeGiB:    spec.sizeGiB,
		iops:       spec.iops,
		throughput: spec.throughput,
		state:      "available",
		created:    now,
		tags:       copyTags(s.Tags),
	}
	return s.ID, nil
}

// VolumeIDs lists the EBS volumes that exist, root volumes included, in
// whatever state, sorted.
func (f *Fake) VolumeIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(time.Now())
	return sortedKeys(f.volumes)
}

// SnapshotIDs lists the snapshots that exist, sorted.
func (f *Fake) SnapshotIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(time.Now())
	return sortedKeys(f.snapshots)
}

// AccessPointIDs lists the access points of a file system (all of them
// for ""), whatever their state, sorted.
func (f *Fake) AccessPointIDs(fsID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(time.Now())
	var ids []string
	for id, ap := range f.accessPoints {
		if fsID == "" || ap.fsID == fsID {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// VolumeState returns a volume's state and the states of its attachments,
// or false if it does not exist.
func (f *Fake) VolumeState(id string) (state string, attachments []string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(time.Now())
	v, ok := f.volumes[id]
	if !ok {
		return "", nil, false
	}
	for _, a := range v.attachments {
		attachments = append(attachments, a.instanceID+":"+a.state)
	}
	return v.state, attachments, true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
