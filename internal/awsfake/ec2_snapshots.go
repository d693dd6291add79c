package awsfake

import (
	"net/http"
	"strconv"
	"time"
)

func (f *Fake) snapshotXML(s *snapshot) xmlSnapshot {
	out := xmlSnapshot{
		SnapshotID:  s.id,
		VolumeID:    s.volumeID,
		Status:      s.state,
		StartTime:   ec2Time(s.started),
		Progress:    "0%",
		OwnerID:     f.opts.AccountID,
		VolumeSize:  s.sizeGiB,
		Description: s.description,
		Encrypted:   s.encrypted,
		KmsKeyID:    s.kmsKeyID,
		StorageTier: "standard",
	}
	if s.state == "completed" {
		out.Progress = "100%"
		out.CompletionTime = ec2Time(s.completed)
	}
	if len(s.tags) > 0 {
		t := xmlTags(s.tags)
		out.Tags = &t
	}
	return out
}

type snapshotResponse struct {
	ec2Header
	xmlSnapshot
}

func (f *Fake) ec2CreateSnapshot(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	v, aerr := f.volumeLocked(q.Get("VolumeId"))
	if aerr != nil {
		return nil, aerr
	}
	if v.state != "available" && v.state != "in-use" {
		return nil, ec2Err("IncorrectState", "The volume '%s' is '%s'.", v.id, v.state)
	}
	tags, aerr := q.tagSpecs("snapshot")
	if aerr != nil {
		return nil, aerr
	}
	s := &snapshot{
		id:          uniqueIDLocked(f, "snap", 17, f.snapshots),
		volumeID:    v.id,
		description: q.Get("Description"),
		state:       "pending",
		sizeGiB:     v.sizeGiB,
		encrypted:   v.encrypted,
		kmsKeyID:    v.kmsKeyID,
		started:     now,
		visibleAt:   now.Add(f.inj.visibility()),
		tags:        tags,
	}
	f.snapshots[s.id] = s
	// The snapshot holds the data as it was when it was asked for.
	f.deviceSnapshotLocked(v, s)
	f.afterLocked(now, SnapshotComplete, func(at time.Time) {
		if s.state == "pending" {
			s.state, s.completed = "completed", at
		}
	})
	return ec2XML("CreateSnapshot", reqID, &snapshotResponse{xmlSnapshot: f.snapshotXML(s)}), nil
}

func (f *Fake) ec2DeleteSnapshot(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	id := q.Get("SnapshotId")
	if id == "" {
		return nil, ec2Err("MissingParameter", "The request must contain the parameter SnapshotId")
	}
	s, ok := f.snapshots[id]
	if !ok {
		return nil, ec2Err("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	delete(f.snapshots, id)
	f.deviceDeleteSnapshotLocked(s)
	return ec2XML("DeleteSnapshot", reqID, &ec2Return{Return: true}), nil
}

type describeSnapshotsResponse struct {
	ec2Header
	Snapshots itemSet[xmlSnapshot] `xml:"snapshotSet"`
	NextToken string               `xml:"nextToken,omitempty"`
}

func (f *Fake) ec2DescribeSnapshots(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	ids := q.list("SnapshotId")
	limit, after, aerr := q.paging("snap", len(ids) > 0, "snapshotSet", 5, 1000)
	if aerr != nil {
		return nil, aerr
	}
	// Every snapshot here belongs to the account; asking for another
	// owner finds nothing.
	owners := q.list("Owner")
	ownerOK := len(owners) == 0
	for _, o := range owners {
		if o == "self" || o == f.opts.AccountID {
			ownerOK = true
		}
	}
	var candidates []string
	if len(ids) > 0 {
		for _, id := range ids {
			s, ok := f.snapshots[id]
			if !ok || !visible(s.visibleAt, now) {
				return nil, ec2Err("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
			}
			candidates = append(candidates, id)
		}
	} else {
		for id, s := range f.snapshots {
			if visible(s.visibleAt, now) {
				candidates = append(candidates, id)
			}
		}
	}
	filters := q.filters()
	var matched []string
	for _, id := range candidates {
		s := f.snapshots[id]
		ok, aerr := matchFilters(filters, s.tags, func(name string) ([]string, bool) { return f.snapshotFilterValues(s, name) })
		if aerr != nil {
			return nil, aerr
		}
		if ok && ownerOK {
			matched = append(matched, id)
		}
	}
	matched, last, more := page(matched, after, limit)
	out := &describeSnapshotsResponse{Snapshots: itemSet[xmlSnapshot]{Items: []xmlSnapshot{}}}
	for _, id := range matched {
		out.Snapshots.Items = append(out.Snapshots.Items, f.snapshotXML(f.snapshots[id]))
	}
	if more {
		out.NextToken = pageToken("snap", last)
	}
	return ec2XML("DescribeSnapshots", reqID, out), nil
}

func (f *Fake) snapshotFilterValues(s *snapshot, name string) ([]string, bool) {
	switch name {
	case "snapshot-id":
		return []string{s.id}, true
	case "volume-id":
		return []string{s.volumeID}, true
	case "status":
		return []string{s.state}, true
	case "owner-id":
		return []string{f.opts.AccountID}, true
	case "description":
		return []string{s.description}, true
	case "volume-size":
		return []string{strconv.FormatInt(s.sizeGiB, 10)}, true
	case "encrypted":
		return []string{strconv.FormatBool(s.encrypted)}, true
	case "progress":
		if s.state == "completed" {
			return []string{"100%"}, true
		}
		return []string{"0%"}, true
	case "start-time":
		return []string{ec2Time(s.started)}, true
	case "storage-tier":
		return []string{"standard"}, true
	}
	return nil, false
}

func modificationXML(v *volume) xmlModification {
	m := v.mod
	out := xmlModification{
		VolumeID:                   v.id,
		ModificationState:          m.state,
		TargetSize:                 m.targetSize,
		TargetIops:                 m.targetIops,
		TargetVolumeType:           m.targetType,
		TargetThroughput:           m.targetTput,
		TargetMultiAttachEnabled:   m.targetMulti,
		OriginalSize:               m.origSize,
		OriginalIops:               m.origIops,
		OriginalVolumeType:         m.origType,
		OriginalThroughput:         m.origTput,
		OriginalMultiAttachEnabled: m.origMulti,
		Progress:                   m.progress,
		StartTime:                  ec2Time(m.start),
	}
	if m.state == "completed" {
		out.EndTime = ec2Time(m.end)
	}
	return out
}

type modifyVolumeResponse struct {
	ec2Header
	Modification xmlModification `xml:"volumeModification"`
}

func (f *Fake) ec2ModifyVolume(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	v, aerr := f.volumeLocked(q.Get("VolumeId"))
	if aerr != nil {
		return nil, aerr
	}
	if v.state != "available" && v.state != "in-use" {
		return nil, ec2Err("IncorrectState", "The volume '%s' is '%s'.", v.id, v.state)
	}
	if v.mod != nil && v.mod.state != "completed" && v.mod.state != "failed" {
		return nil, ec2Err("IncorrectModificationState", "Cannot modify volume %s as it is currently in '%s' state.", v.id, v.mod.state)
	}
	spec := volumeSpec{volType: v.volType, sizeGiB: v.sizeGiB, iops: v.iops, throughput: v.throughput, multiAttach: v.multiAttach}
	if t := q.Get("VolumeType"); t != "" {
		spec.volType = t
	}
	size, sizeGiven, aerr := q.intParam("Size")
	if aerr != nil {
		return nil, aerr
	}
	if sizeGiven {
		if size < v.sizeGiB {
			return nil, ec2Err("InvalidParameterValue", "New size cannot be smaller than existing size")
		}
		spec.sizeGiB = size
	}
	iops, iopsGiven, aerr := q.intParam("Iops")
	if aerr != nil {
		return nil, aerr
	}
	tput, tputGiven, aerr := q.intParam("Throughput")
	if aerr != nil {
		return nil, aerr
	}
	multi, multiGiven, aerr := q.boolParam("MultiAttachEnabled")
	if aerr != nil {
		return nil, aerr
	}
	if multiGiven {
		spec.multiAttach = multi
	}
	// A volume changing type gets the new type's defaults unless the
	// request names values; one keeping its type keeps its values.
	keepIops := !iopsGiven && spec.volType == v.volType && volumeTypes[spec.volType].iops
	keepTput := !tputGiven && spec.volType == v.volType && volumeTypes[spec.volType].throughput
	if iopsGiven {
		spec.iops = int32(iops)
	}
	if tputGiven {
		spec.throughput = int32(tput)
	}
	if !iopsGiven && !keepIops {
		spec.iops = 0
	}
	if !tputGiven && !keepTput {
		spec.throughput = 0
	}
	if aerr := checkVolumeSpec(&spec, iopsGiven || keepIops, tputGiven || keepTput); aerr != nil {
		return nil, aerr
	}
	if spec == (volumeSpec{volType: v.volType, sizeGiB: v.sizeGiB, iops: v.iops, throughput: v.throughput, multiAttach: v.multiAttach}) {
		return nil, ec2Err("InvalidParameterValue", "New configuration for volume %s is the same as the existing one.", v.id)
	}
	if aerr := f.checkVolumeQuotaLocked(spec.sizeGiB - v.sizeGiB); aerr != nil && spec.sizeGiB > v.sizeGiB {
		return nil, aerr
	}
	m := &modification{
		state:       "modifying",
		origSize:    v.sizeGiB,
		targetSize:  spec.sizeGiB,
		origIops:    v.iops,
		targetIops:  spec.iops,
		origTput:    v.throughput,
		targetTput:  spec.throughput,
		origType:    v.volType,
		targetType:  spec.volType,
		origMulti:   v.multiAttach,
		targetMulti: spec.multiAttach,
		start:       now,
	}
	v.mod = m
	f.afterLocked(now, ModifyStart, func(at time.Time) {
		if v.mod != m {
			return
		}
		// The new size and performance are the volume's as soon as it
		// starts optimizing; optimizing only finishes the data movement.
		m.state, m.progress = "optimizing", 10
		v.sizeGiB, v.iops, v.throughput, v.volType, v.multiAttach = m.targetSize, m.targetIops, m.targetTput, m.targetType, m.targetMulti
		if m.targetSize != m.origSize {
			f.deviceResizeLocked(v)
		}
		f.afterLocked(at, ModifyOptimize, func(done time.Time) {
			if v.mod == m {
				m.state, m.progress, m.end = "completed", 100, done
			}
		})
	})
	return ec2XML("ModifyVolume", reqID, &modifyVolumeResponse{Modification: modificationXML(v)}), nil
}

type describeModificationsResponse struct {
	ec2Header
	Modifications itemSet[xmlModification] `xml:"volumeModificationSet"`
	NextToken     string                   `xml:"nextToken,omitempty"`
}

func (f *Fake) ec2DescribeVolumesModifications(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	ids := q.list("VolumeId")
	limit, after, aerr := q.paging("mod", false, "", 1, 500)
	if aerr != nil {
		return nil, aerr
	}
	var candidates []string
	if len(ids) > 0 {
		for _, id := range ids {
			v, aerr := f.volumeLocked(id)
			if aerr != nil {
				return nil, aerr
			}
			if v.mod == nil {
				return nil, ec2Err("InvalidVolumeModification.NotFound", "Modification for volume '%s' does not exist.", id)
			}
			candidates = append(candidates, id)
		}
	} else {
		for id, v := range f.volumes {
			if v.mod != nil {
				candidates = append(candidates, id)
			}
		}
	}
	filters := q.filters()
	var matched []string
	for _, id := range candidates {
		v := f.volumes[id]
		ok, aerr := matchFilters(filters, nil, func(name string) ([]string, bool) { return modificationFilterValues(v, name) })
		if aerr != nil {
			return nil, aerr
		}
		if ok {
			matched = append(matched, id)
		}
	}
	matched, last, more := page(matched, after, limit)
	out := &describeModificationsResponse{Modifications: itemSet[xmlModification]{Items: []xmlModification{}}}
	for _, id := range matched {
		out.Modifications.Items = append(out.Modifications.Items, modificationXML(f.volumes[id]))
	}
	if more {
		out.NextToken = pageToken("mod", last)
	}
	return ec2XML("DescribeVolumesModifications", reqID, out), nil
}

func modificationFilterValues(v *volume, name string) ([]string, bool) {
	m := v.mod
	switch name {
	case "volume-id":
		return []string{v.id}, true
	case "modification-state":
		return []string{m.state}, true
	case "target-size":
		return []string{strconv.FormatInt(m.targetSize, 10)}, true
	case "target-iops":
		return []string{strconv.Itoa(int(m.targetIops))}, true
	case "target-volume-type":
		return []string{m.targetType}, true
	case "target-throughput":
		return []string{strconv.Itoa(int(m.targetTput))}, true
	case "original-size":
		return []string{strconv.FormatInt(m.origSize, 10)}, true
	case "original-iops":
		return []string{strconv.Itoa(int(m.origIops))}, true
	case "original-volume-type":
		return []string{m.origType}, true
	case "start-time":
		return []string{ec2Time(m.start)}, true
	}
	return nil, false
}
