package awsfake

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

func (f *Fake) instanceXML(inst *instance) xmlInstance {
	out := xmlInstance{
		InstanceID:         inst.id,
		ImageID:            "ami-0123456789abcdef0",
		State:              xmlInstanceState{Code: 16, Name: "running"},
		PrivateDNSName:     "ip-" + strings.ReplaceAll(inst.privateIP, ".", "-") + ".ec2.internal",
		InstanceType:       inst.instanceType,
		LaunchTime:         ec2Time(inst.launched),
		Placement:          xmlPlacement{AvailabilityZone: inst.zone, AvailabilityZoneID: f.zoneID(inst.zone), Tenancy: "default"},
		PrivateIPAddress:   inst.privateIP,
		Architecture:       "x86_64",
		RootDeviceType:     "ebs",
		RootDeviceName:     "/dev/xvda",
		VirtualizationType: "hvm",
		Hypervisor:         "xen",
		EBSOptimized:       true,
		BlockDeviceMapping: itemSet[xmlBlockDevice]{Items: []xmlBlockDevice{}},
	}
	attached := f.instanceAttachmentsLocked(inst.id)
	devices := make([]string, 0, len(attached))
	for d := range attached {
		devices = append(devices, d)
	}
	sort.Strings(devices)
	for _, d := range devices {
		v := attached[d]
		for _, a := range v.attachments {
			if a.instanceID == inst.id {
				out.BlockDeviceMapping.Items = append(out.BlockDeviceMapping.Items, xmlBlockDevice{
					DeviceName: d,
					EBS: xmlEBSDevice{
						VolumeID:            v.id,
						Status:              a.state,
						AttachTime:          ec2Time(a.attachTime),
						DeleteOnTermination: a.deleteOnTermination,
					},
				})
			}
		}
	}
	if len(inst.tags) > 0 {
		t := xmlTags(inst.tags)
		out.Tags = &t
	}
	return out
}

type describeInstancesResponse struct {
	ec2Header
	Reservations itemSet[xmlReservation] `xml:"reservationSet"`
	NextToken    string                  `xml:"nextToken,omitempty"`
}

func (f *Fake) ec2DescribeInstances(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	ids := q.list("InstanceId")
	limit, after, aerr := q.paging("inst", len(ids) > 0, "instanceIds", 5, 1000)
	if aerr != nil {
		return nil, aerr
	}
	var candidates []string
	if len(ids) > 0 {
		for _, id := range ids {
			if _, aerr := f.instanceLocked(id); aerr != nil {
				return nil, aerr
			}
			candidates = append(candidates, id)
		}
	} else {
		for id := range f.instances {
			candidates = append(candidates, id)
		}
	}
	filters := q.filters()
	var matched []string
	for _, id := range candidates {
		inst := f.instances[id]
		ok, aerr := matchFilters(filters, inst.tags, func(name string) ([]string, bool) { return f.instanceFilterValues(inst, name) })
		if aerr != nil {
			return nil, aerr
		}
		if ok {
			matched = append(matched, id)
		}
	}
	matched, last, more := page(matched, after, limit)
	out := &describeInstancesResponse{Reservations: itemSet[xmlReservation]{Items: []xmlReservation{}}}
	for _, id := range matched {
		inst := f.instances[id]
		out.Reservations.Items = append(out.Reservations.Items, xmlReservation{
			ReservationID: "r-" + strings.TrimPrefix(inst.id, "i-"),
			OwnerID:       f.opts.AccountID,
			Instances:     itemSet[xmlInstance]{Items: []xmlInstance{f.instanceXML(inst)}},
		})
	}
	if more {
		out.NextToken = pageToken("inst", last)
	}
	return ec2XML("DescribeInstances", reqID, out), nil
}

func (f *Fake) instanceFilterValues(inst *instance, name string) ([]string, bool) {
	switch name {
	case "instance-id":
		return []string{inst.id}, true
	case "availability-zone":
		return []string{inst.zone}, true
	case "instance-type":
		return []string{inst.instanceType}, true
	case "instance-state-name":
		return []string{"running"}, true
	case "instance-state-code":
		return []string{"16"}, true
	case "private-ip-address":
		return []string{inst.privateIP}, true
	case "block-device-mapping.volume-id":
		var out []string
		for _, v := range f.instanceAttachmentsLocked(inst.id) {
			out = append(out, v.id)
		}
		return out, true
	case "block-device-mapping.device-name":
		var out []string
		for d := range f.instanceAttachmentsLocked(inst.id) {
			out = append(out, d)
		}
		return out, true
	}
	return nil, false
}

// tagsOfLocked finds the tag map of any taggable EC2 resource.
func (f *Fake) tagsOfLocked(id string) (map[string]string, *apiError) {
	switch {
	case strings.HasPrefix(id, "vol-"):
		v, aerr := f.volumeLocked(id)
		if aerr != nil {
			return nil, aerr
		}
		return v.tags, nil
	case strings.HasPrefix(id, "snap-"):
		s, ok := f.snapshots[id]
		if !ok {
			return nil, ec2Err("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
		}
		return s.tags, nil
	case strings.HasPrefix(id, "i-"):
		inst, aerr := f.instanceLocked(id)
		if aerr != nil {
			return nil, aerr
		}
		return inst.tags, nil
	}
	return nil, ec2Err("InvalidID", "The ID '%s' is not valid", id)
}

func (f *Fake) ec2CreateTags(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	ids := q.list("ResourceId")
	if len(ids) == 0 {
		return nil, ec2Err("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	add := map[string]string{}
	for _, t := range q.tagList("Tag") {
		add[t.key] = t.value
	}
	if len(add) == 0 {
		return nil, ec2Err("MissingParameter", "The request must contain the parameter tagSet")
	}
	if aerr := validateTags(add); aerr != nil {
		return nil, aerr
	}
	// Check every resource before changing any, so a failed call changes
	// nothing.
	targets := make([]map[string]string, 0, len(ids))
	for _, id := range ids {
		tags, aerr := f.tagsOfLocked(id)
		if aerr != nil {
			return nil, aerr
		}
		merged := copyTags(tags)
		for k, v := range add {
			merged[k] = v
		}
		if aerr := validateTags(merged); aerr != nil {
			return nil, aerr
		}
		targets = append(targets, tags)
	}
	for _, tags := range targets {
		for k, v := range add {
			tags[k] = v
		}
	}
	return ec2XML("CreateTags", reqID, &ec2Return{Return: true}), nil
}

func (f *Fake) ec2DeleteTags(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	ids := q.list("ResourceId")
	if len(ids) == 0 {
		return nil, ec2Err("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	del := q.tagList("Tag")
	targets := make([]map[string]string, 0, len(ids))
	for _, id := range ids {
		tags, aerr := f.tagsOfLocked(id)
		if aerr != nil {
			return nil, aerr
		}
		targets = append(targets, tags)
	}
	for _, tags := range targets {
		if len(del) == 0 {
			clear(tags)
		}
		for _, t := range del {
			if v, ok := tags[t.key]; ok && (!t.hasValue || v == t.value) {
				delete(tags, t.key)
			}
		}
	}
	return ec2XML("DeleteTags", reqID, &ec2Return{Return: true}), nil
}

type describeZonesResponse struct {
	ec2Header
	Zones itemSet[xmlZone] `xml:"availabilityZoneInfo"`
}

func (f *Fake) ec2DescribeAvailabilityZones(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	names, ids := q.list("ZoneName"), q.list("ZoneId")
	for _, n := range names {
		if !f.hasZone(n) {
			return nil, ec2Err("InvalidParameterValue", "Invalid availability zone: [%s]", n)
		}
	}
	filters := q.filters()
	out := &describeZonesResponse{Zones: itemSet[xmlZone]{Items: []xmlZone{}}}
	for _, z := range f.opts.Zones {
		zid := f.zoneID(z)
		if len(names) > 0 || len(ids) > 0 {
			if !slices.Contains(names, z) && !slices.Contains(ids, zid) {
				continue
			}
		}
		ok, aerr := matchFilters(filters, nil, func(name string) ([]string, bool) {
			switch name {
			case "zone-name":
				return []string{z}, true
			case "zone-id":
				return []string{zid}, true
			case "state":
				return []string{"available"}, true
			case "region-name":
				return []string{f.opts.Region}, true
			case "zone-type":
				return []string{"availability-zone"}, true
			case "group-name":
				return []string{f.opts.Region}, true
			case "opt-in-status":
				return []string{"opt-in-not-required"}, true
			}
			return nil, false
		})
		if aerr != nil {
			return nil, aerr
		}
		if !ok {
			continue
		}
		out.Zones.Items = append(out.Zones.Items, xmlZone{
			ZoneName:           z,
			ZoneState:          "available",
			RegionName:         f.opts.Region,
			ZoneID:             zid,
			ZoneType:           "availability-zone",
			OptInStatus:        "opt-in-not-required",
			GroupName:          f.opts.Region,
			NetworkBorderGroup: f.opts.Region,
		})
	}
	return ec2XML("DescribeAvailabilityZones", reqID, out), nil
}
