package awsfake

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

type ec2Handler func(f *Fake, q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error)

// ec2Actions are the EC2 actions the fake serves.
var ec2Actions = map[string]ec2Handler{
	"CreateVolume":                 (*Fake).ec2CreateVolume,
	"DeleteVolume":                 (*Fake).ec2DeleteVolume,
	"AttachVolume":                 (*Fake).ec2AttachVolume,
	"DetachVolume":                 (*Fake).ec2DetachVolume,
	"DescribeVolumes":              (*Fake).ec2DescribeVolumes,
	"ModifyVolume":                 (*Fake).ec2ModifyVolume,
	"DescribeVolumesModifications": (*Fake).ec2DescribeVolumesModifications,
	"CreateSnapshot":               (*Fake).ec2CreateSnapshot,
	"DeleteSnapshot":               (*Fake).ec2DeleteSnapshot,
	"DescribeSnapshots":            (*Fake).ec2DescribeSnapshots,
	"DescribeInstances":            (*Fake).ec2DescribeInstances,
	"CreateTags":                   (*Fake).ec2CreateTags,
	"DeleteTags":                   (*Fake).ec2DeleteTags,
	"DescribeAvailabilityZones":    (*Fake).ec2DescribeAvailabilityZones,
}

// parseEC2 reads an EC2 Query request: a form with Action and Version.
func (f *Fake) parseEC2(r *http.Request) (*request, *apiError) {
	if r.Header.Get("Authorization") == "" {
		return nil, ec2Err("AuthFailure", "AWS was not able to validate the provided access credentials")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return nil, ec2Err("InvalidParameterValue", "cannot parse request: %v", err)
	}
	q := ec2Form{r.Form}
	action := q.Get("Action")
	if action == "" {
		return nil, ec2Err("MissingAction", "The request must contain the parameter Action")
	}
	h, ok := ec2Actions[action]
	if !ok {
		return nil, ec2Err("InvalidAction", "The action %s is not valid for this web service.", action)
	}
	req := &request{op: action, proto: ec2Protocol{}}
	req.handle = func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		if dry, _, _ := q.boolParam("DryRun"); dry {
			return nil, ec2Err("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
		}
		return h(f, q, now, reqID)
	}
	return req, nil
}

// volumeLimits are the bounds EBS puts on one volume type.
type volumeLimits struct {
	minSize, maxSize   int64
	iops               bool // Iops may be given
	iopsRequired       bool
	minIops, maxIops   int64
	iopsPerGiB         int64
	throughput         bool
	minTput, maxTput   int64
	multiAttachAllowed bool
}

// volumeTypes holds EBS's long-standing limits for each type. AWS raises
// them from time to time (gp3 grew in 2025); change them here when tests
// need newer ones.
var volumeTypes = map[string]volumeLimits{
	"gp2":      {minSize: 1, maxSize: 16384},
	"gp3":      {minSize: 1, maxSize: 16384, iops: true, minIops: 3000, maxIops: 16000, iopsPerGiB: 500, throughput: true, minTput: 125, maxTput: 1000},
	"io1":      {minSize: 4, maxSize: 16384, iops: true, iopsRequired: true, minIops: 100, maxIops: 64000, iopsPerGiB: 50, multiAttachAllowed: true},
	"io2":      {minSize: 4, maxSize: 65536, iops: true, iopsRequired: true, minIops: 100, maxIops: 256000, iopsPerGiB: 1000, multiAttachAllowed: true},
	"st1":      {minSize: 125, maxSize: 16384},
	"sc1":      {minSize: 125, maxSize: 16384},
	"standard": {minSize: 1, maxSize: 1024},
}

// volumeSpec is the validated shape of a volume, from CreateVolume or
// ModifyVolume.
type volumeSpec struct {
	volType          string
	sizeGiB          int64
	iops, throughput int32
	multiAttach      bool
}

// checkVolumeSpec applies the type's limits and fills in the IOPS and
// throughput EBS gives when none are asked for.
func checkVolumeSpec(s *volumeSpec, iopsGiven, tputGiven bool) *apiError {
	lim, ok := volumeTypes[s.volType]
	if !ok {
		return ec2Err("InvalidParameterValue", "Value (%s) for parameter volumeType is invalid. Valid values are gp2, gp3, io1, io2, st1, sc1, standard.", s.volType)
	}
	if s.sizeGiB < lim.minSize || s.sizeGiB > lim.maxSize {
		return ec2Err("InvalidParameterValue", "Volume of %dGiB is out of range for %s: it must be between %dGiB and %dGiB.", s.sizeGiB, s.volType, lim.minSize, lim.maxSize)
	}
	switch {
	case iopsGiven && !lim.iops:
		return ec2Err("InvalidParameterCombination", "The parameter iops is not supported for %s volumes.", s.volType)
	case !iopsGiven && lim.iopsRequired:
		return ec2Err("MissingParameter", "The request must contain the parameter iops for %s volumes.", s.volType)
	case iopsGiven:
		i := int64(s.iops)
		if i < lim.minIops || i > lim.maxIops {
			return ec2Err("InvalidParameterValue", "Volume iops of %d is out of range for %s: it must be between %d and %d.", i, s.volType, lim.minIops, lim.maxIops)
		}
		if i > lim.minIops && i > lim.iopsPerGiB*s.sizeGiB {
			return ec2Err("InvalidParameterValue", "Iops to volume size ratio of %d is too high; maximum is %d.", i/s.sizeGiB, lim.iopsPerGiB)
		}
	}
	switch {
	case tputGiven && !lim.throughput:
		return ec2Err("InvalidParameterCombination", "The parameter throughput is not supported for %s volumes.", s.volType)
	case tputGiven:
		t := int64(s.throughput)
		if t < lim.minTput || t > lim.maxTput {
			return ec2Err("InvalidParameterValue", "Throughput of %d MiB/s is out of range: it must be between %d and %d.", t, lim.minTput, lim.maxTput)
		}
	}
	if s.multiAttach && !lim.multiAttachAllowed {
		return ec2Err("InvalidParameterCombination", "Multi-Attach is supported only for io1 and io2 volumes.")
	}
	if !iopsGiven {
		switch s.volType {
		case "gp3":
			s.iops = 3000
		case "gp2":
			s.iops = int32(min(max(3*s.sizeGiB, 100), 16000))
		}
	}
	if s.volType == "gp3" {
		if !tputGiven {
			s.throughput = 125
		}
		if s.throughput > 125 && int64(s.throughput)*4 > int64(s.iops) {
			return ec2Err("InvalidParameterValue", "Throughput of %d MiB/s is too high for %d IOPS; the maximum ratio is 0.25 MiB/s per IOPS.", s.throughput, s.iops)
		}
	}
	return nil
}

func (f *Fake) volumeXML(v *volume) xmlVolume {
	out := xmlVolume{
		VolumeID:           v.id,
		Size:               v.sizeGiB,
		SnapshotID:         v.snapshotID,
		AvailabilityZone:   v.zone,
		AvailabilityZoneID: f.zoneID(v.zone),
		Status:             v.state,
		CreateTime:         ec2Time(v.created),
		VolumeType:         v.volType,
		Iops:               v.iops,
		Encrypted:          v.encrypted,
		KmsKeyID:           v.kmsKeyID,
		Throughput:         v.throughput,
		MultiAttachEnabled: v.multiAttach,
		Attachments:        itemSet[xmlAttachment]{Items: []xmlAttachment{}},
	}
	for _, a := range v.attachments {
		out.Attachments.Items = append(out.Attachments.Items, attachmentXML(v, a))
	}
	if len(v.tags) > 0 {
		t := xmlTags(v.tags)
		out.Tags = &t
	}
	return out
}

func attachmentXML(v *volume, a *attachment) xmlAttachment {
	return xmlAttachment{
		VolumeID:            v.id,
		InstanceID:          a.instanceID,
		Device:              a.device,
		Status:              a.state,
		AttachTime:          ec2Time(a.attachTime),
		DeleteOnTermination: a.deleteOnTermination,
	}
}

// volumeParams is the fingerprint of a CreateVolume request that a
// ClientToken is bound to.
func volumeParams(q ec2Form) string {
	keys := make([]string, 0, len(q.Values))
	for k := range q.Values {
		switch k {
		case "Action", "Version", "ClientToken", "DryRun":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strings.Join(q.Values[k], ","))
		b.WriteByte('&')
	}
	return b.String()
}

func (f *Fake) zoneFromForm(q ec2Form) (string, *apiError) {
	zone, zoneID := q.Get("AvailabilityZone"), q.Get("AvailabilityZoneId")
	switch {
	case zone != "" && zoneID != "":
		return "", ec2Err("InvalidParameterCombination", "Specify either AvailabilityZone or AvailabilityZoneId, not both.")
	case zoneID != "":
		for _, z := range f.opts.Zones {
			if f.zoneID(z) == zoneID {
				return z, nil
			}
		}
		return "", ec2Err("InvalidParameterValue", "Invalid availability zone ID: [%s]", zoneID)
	case zone == "":
		return "", ec2Err("MissingParameter", "The request must contain the parameter AvailabilityZone or AvailabilityZoneId")
	case !f.hasZone(zone):
		return "", ec2Err("InvalidParameterValue", "Invalid availability zone: [%s]", zone)
	}
	return zone, nil
}

func (f *Fake) ec2CreateVolume(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	token := q.Get("ClientToken")
	if len(token) > 64 {
		return nil, ec2Err("InvalidParameterValue", "Client token must be less than or equal to 64 characters")
	}
	params := volumeParams(q)
	if token != "" {
		if rec, ok := f.volumeTokens[token]; ok {
			// EC2 keeps a token bound to the request that first used it:
			// a different request, or any request once that volume is gone
			// or failed, is a mismatch (kubernetes-sigs/aws-ebs-csi-driver
			// issues 1428 and 1951).
			v, live := f.volumes[rec.volumeID]
			if rec.params != params || !live || v.state == "deleting" || v.failing {
				return nil, ec2Err("IdempotentParameterMismatch", "Parameters on this idempotent request are inconsistent with parameters used in previous request(s).")
			}
			return ec2XML("CreateVolume", reqID, &volumeResponse{xmlVolume: f.volumeXML(v)}), nil
		}
	}
	zone, aerr := f.zoneFromForm(q)
	if aerr != nil {
		return nil, aerr
	}
	spec := volumeSpec{volType: q.Get("VolumeType")}
	if spec.volType == "" {
		spec.volType = "gp2"
	}
	size, sizeGiven, aerr := q.intParam("Size")
	if aerr != nil {
		return nil, aerr
	}
	iops, iopsGiven, aerr := q.intParam("Iops")
	if aerr != nil {
		return nil, aerr
	}
	tput, tputGiven, aerr := q.intParam("Throughput")
	if aerr != nil {
		return nil, aerr
	}
	encrypted, _, aerr := q.boolParam("Encrypted")
	if aerr != nil {
		return nil, aerr
	}
	multi, _, aerr := q.boolParam("MultiAttachEnabled")
	if aerr != nil {
		return nil, aerr
	}
	kms := q.Get("KmsKeyId")
	if kms != "" && !encrypted {
		return nil, ec2Err("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
	}
	var snap *snapshot
	if id := q.Get("SnapshotId"); id != "" {
		s, ok := f.snapshots[id]
		if !ok {
			return nil, ec2Err("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
		}
		if s.state != "completed" {
			return nil, ec2Err("IncorrectState", "Snapshot is in invalid state - %s", s.state)
		}
		snap = s
		if !sizeGiven {
			size, sizeGiven = s.sizeGiB, true
		}
		if size < s.sizeGiB {
			return nil, ec2Err("InvalidParameterValue", "Volume of %dGiB is too small; minimum is %dGiB.", size, s.sizeGiB)
		}
		if s.encrypted {
			encrypted = true
			if kms == "" {
				kms = s.kmsKeyID
			}
		}
	}
	if !sizeGiven {
		return nil, ec2Err("MissingParameter", "The request must contain the parameter size or snapshotId")
	}
	spec.sizeGiB, spec.iops, spec.throughput, spec.multiAttach = size, int32(iops), int32(tput), multi
	if aerr := checkVolumeSpec(&spec, iopsGiven, tputGiven); aerr != nil {
		return nil, aerr
	}
	tags, aerr := q.tagSpecs("volume")
	if aerr != nil {
		return nil, aerr
	}
	if aerr := f.checkVolumeQuotaLocked(spec.sizeGiB); aerr != nil {
		return nil, aerr
	}
	if encrypted && kms == "" {
		kms = f.defaultKMSKey()
	}
	v := &volume{
		id:          uniqueIDLocked(f, "vol", 17, f.volumes),
		zone:        zone,
		volType:     spec.volType,
		kmsKeyID:    kms,
		sizeGiB:     spec.sizeGiB,
		iops:        spec.iops,
		throughput:  spec.throughput,
		encrypted:   encrypted,
		multiAttach: spec.multiAttach,
		state:       "creating",
		created:     now,
		visibleAt:   now.Add(f.inj.visibility()),
		tags:        tags,
		failing:     kms != "" && len(f.opts.KMSKeys) > 0 && !slices.Contains(f.opts.KMSKeys, kms),
	}
	if snap != nil {
		v.snapshotID = snap.id
	}
	f.volumes[v.id] = v
	if token != "" {
		f.volumeTokens[token] = &clientToken{volumeID: v.id, params: params}
	}
	f.afterLocked(now, VolumeCreate, func(time.Time) {
		if v.state != "creating" {
			return
		}
		if v.failing {
			delete(f.volumes, v.id)
			return
		}
		v.state = "available"
		if v.snapshotID != "" {
			f.deviceRestoreLocked(v)
		}
	})
	return ec2XML("CreateVolume", reqID, &volumeResponse{xmlVolume: f.volumeXML(v)}), nil
}

type volumeResponse struct {
	ec2Header
	xmlVolume
}

func (f *Fake) checkVolumeQuotaLocked(addGiB int64) *apiError {
	if f.opts.VolumeLimit == 0 && f.opts.StorageLimitGiB == 0 {
		return nil
	}
	count, total := 0, int64(0)
	for _, v := range f.volumes {
		count++
		total += v.sizeGiB
	}
	if f.opts.VolumeLimit > 0 && count >= f.opts.VolumeLimit {
		return ec2Err("VolumeLimitExceeded", "You have exceeded your maximum number of volumes (%d).", f.opts.VolumeLimit)
	}
	if f.opts.StorageLimitGiB > 0 && total+addGiB > f.opts.StorageLimitGiB {
		return ec2Err("VolumeLimitExceeded", "You have exceeded your maximum storage limit of %d GiB.", f.opts.StorageLimitGiB)
	}
	return nil
}

func (f *Fake) volumeLocked(id string) (*volume, *apiError) {
	if id == "" {
		return nil, ec2Err("MissingParameter", "The request must contain the parameter VolumeId")
	}
	v, ok := f.volumes[id]
	if !ok {
		if !strings.HasPrefix(id, "vol-") {
			return nil, ec2Err("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\")", id)
		}
		return nil, ec2Err("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}
	return v, nil
}

func (f *Fake) ec2DeleteVolume(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	v, aerr := f.volumeLocked(q.Get("VolumeId"))
	if aerr != nil {
		return nil, aerr
	}
	if len(v.attachments) > 0 {
		return nil, ec2Err("VolumeInUse", "Volume %s is currently attached to %s", v.id, v.attachments[0].instanceID)
	}
	switch v.state {
	case "creating":
		return nil, ec2Err("IncorrectState", "The volume '%s' is 'creating'.", v.id)
	case "deleting":
		return ec2XML("DeleteVolume", reqID, &ec2Return{Return: true}), nil
	}
	v.state = "deleting"
	f.afterLocked(now, VolumeDelete, func(time.Time) {
		delete(f.volumes, v.id)
		f.deviceDeleteLocked(v)
	})
	return ec2XML("DeleteVolume", reqID, &ec2Return{Return: true}), nil
}

type describeVolumesResponse struct {
	ec2Header
	Volumes   itemSet[xmlVolume] `xml:"volumeSet"`
	NextToken string             `xml:"nextToken,omitempty"`
}

func (f *Fake) ec2DescribeVolumes(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	ids := q.list("VolumeId")
	limit, after, aerr := q.paging("vol", len(ids) > 0, "volumeSet", 5, 500)
	if aerr != nil {
		return nil, aerr
	}
	filters := q.filters()
	var candidates []string
	if len(ids) > 0 {
		for _, id := range ids {
			v, ok := f.volumes[id]
			if !ok || !visible(v.visibleAt, now) {
				return nil, ec2Err("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
			}
			candidates = append(candidates, id)
		}
	} else {
		for id, v := range f.volumes {
			if visible(v.visibleAt, now) {
				candidates = append(candidates, id)
			}
		}
	}
	var matched []string
	for _, id := range candidates {
		v := f.volumes[id]
		ok, aerr := matchFilters(filters, v.tags, func(name string) ([]string, bool) { return volumeFilterValues(v, name) })
		if aerr != nil {
			return nil, aerr
		}
		if ok {
			matched = append(matched, id)
		}
	}
	matched, last, more := page(matched, after, limit)
	out := &describeVolumesResponse{Volumes: itemSet[xmlVolume]{Items: []xmlVolume{}}}
	for _, id := range matched {
		out.Volumes.Items = append(out.Volumes.Items, f.volumeXML(f.volumes[id]))
	}
	if more {
		out.NextToken = pageToken("vol", last)
	}
	return ec2XML("DescribeVolumes", reqID, out), nil
}

func volumeFilterValues(v *volume, name string) ([]string, bool) {
	collect := func(fn func(a *attachment) string) []string {
		var out []string
		for _, a := range v.attachments {
			out = append(out, fn(a))
		}
		return out
	}
	switch name {
	case "volume-id":
		return []string{v.id}, true
	case "status":
		return []string{v.state}, true
	case "availability-zone":
		return []string{v.zone}, true
	case "volume-type":
		return []string{v.volType}, true
	case "size":
		return []string{strconv.FormatInt(v.sizeGiB, 10)}, true
	case "encrypted":
		return []string{strconv.FormatBool(v.encrypted)}, true
	case "snapshot-id":
		return []string{v.snapshotID}, true
	case "multi-attach-enabled":
		return []string{strconv.FormatBool(v.multiAttach)}, true
	case "create-time":
		return []string{ec2Time(v.created)}, true
	case "attachment.instance-id":
		return collect(func(a *attachment) string { return a.instanceID }), true
	case "attachment.status":
		return collect(func(a *attachment) string { return a.state }), true
	case "attachment.device":
		return collect(func(a *attachment) string { return a.device }), true
	case "attachment.delete-on-termination":
		return collect(func(a *attachment) string { return strconv.FormatBool(a.deleteOnTermination) }), true
	case "attachment.attach-time":
		return collect(func(a *attachment) string { return ec2Time(a.attachTime) }), true
	}
	return nil, false
}
