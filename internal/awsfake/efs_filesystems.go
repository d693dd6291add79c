package awsfake

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

func (f *Fake) fsARN(id string) string {
	return fmt.Sprintf("arn:aws:elasticfilesystem:%s:%s:file-system/%s", f.opts.Region, f.opts.AccountID, id)
}

func (f *Fake) fsJSONLocked(fs *fileSystem, now time.Time) efsFileSystemJSON {
	n := 0
	for _, mt := range f.mountTargets {
		if mt.fsID == fs.id {
			n++
		}
	}
	out := efsFileSystemJSON{
		OwnerId:              f.opts.AccountID,
		CreationToken:        fs.creationToken,
		FileSystemId:         fs.id,
		FileSystemArn:        f.fsARN(fs.id),
		CreationTime:         epoch(fs.created),
		LifeCycleState:       fs.state,
		Name:                 fs.tags["Name"],
		NumberOfMountTargets: n,
		SizeInBytes:          efsSize{Value: fs.sizeBytes, ValueInStandard: fs.sizeBytes, Timestamp: epoch(now)},
		PerformanceMode:      fs.performanceMode,
		Encrypted:            fs.encrypted,
		KmsKeyId:             fs.kmsKeyID,
		ThroughputMode:       fs.throughputMode,
		Tags:                 efsTags(fs.tags),
		FileSystemProtection: &efsProtection{ReplicationOverwriteProtection: "ENABLED"},
	}
	if fs.throughputMode == "provisioned" {
		out.ProvisionedThroughputInMibps = fs.provisionedMibps
	}
	if fs.zone != "" {
		out.AvailabilityZoneName, out.AvailabilityZoneId = fs.zone, f.zoneID(fs.zone)
	}
	return out
}

// lookupFSLocked finds a file system a Describe call may see.
func (f *Fake) lookupFSLocked(id string, now time.Time, describe bool) (*fileSystem, *apiError) {
	fs, ok := f.fileSystems[id]
	if !ok || (describe && !visible(fs.visibleAt, now)) {
		return nil, efsErr("FileSystemNotFound", "File system '%s' does not exist.", id)
	}
	return fs, nil
}

func (f *Fake) efsDescribeFileSystems(q url.Values) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		limit, aerr := positiveInt(q, "MaxItems", 100)
		if aerr != nil {
			return nil, aerr
		}
		var after string
		if m := q.Get("Marker"); m != "" {
			id, ok := parsePageToken("fs", m)
			if !ok {
				return nil, efsErr("BadRequest", "Invalid Marker")
			}
			after = id
		}
		var ids []string
		if id := q.Get("FileSystemId"); id != "" {
			if _, aerr := f.lookupFSLocked(id, now, true); aerr != nil {
				return nil, aerr
			}
			ids = []string{id}
		} else {
			token := q.Get("CreationToken")
			for id, fs := range f.fileSystems {
				if visible(fs.visibleAt, now) && (token == "" || fs.creationToken == token) {
					ids = append(ids, id)
				}
			}
		}
		ids, last, more := page(ids, after, limit)
		out := struct {
			FileSystems []efsFileSystemJSON `json:"FileSystems"`
			Marker      string              `json:"Marker,omitempty"`
			NextMarker  string              `json:"NextMarker,omitempty"`
		}{FileSystems: []efsFileSystemJSON{}, Marker: q.Get("Marker")}
		for _, id := range ids {
			out.FileSystems = append(out.FileSystems, f.fsJSONLocked(f.fileSystems[id], now))
		}
		if more {
			out.NextMarker = pageToken("fs", last)
		}
		return efsJSON(200, reqID, out), nil
	}
}

var validThroughputModes = map[string]bool{"bursting": true, "provisioned": true, "elastic": true}

func (f *Fake) efsCreateFileSystem(body []byte) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		var in efsCreateFileSystemIn
		if err := decodeEFS(body, &in); err != nil {
			return nil, err
		}
		if in.CreationToken == "" || len(in.CreationToken) > 64 {
			return nil, efsErr("BadRequest", "CreationToken must be 1 to 64 characters long")
		}
		for _, fs := range f.fileSystems {
			if fs.creationToken == in.CreationToken {
				e := efsErr("FileSystemAlreadyExists", "File system '%s' already exists with creation token '%s'", fs.id, in.CreationToken)
				e.fields = map[string]string{"FileSystemId": fs.id}
				return nil, e
			}
		}
		if len(f.fileSystems) >= f.opts.FileSystemLimit {
			return nil, efsErr("FileSystemLimitExceeded", "You have reached the maximum number of file systems allowed.")
		}
		if in.PerformanceMode == "" {
			in.PerformanceMode = "generalPurpose"
		}
		if in.PerformanceMode != "generalPurpose" && in.PerformanceMode != "maxIO" {
			return nil, efsErr("BadRequest", "Invalid PerformanceMode '%s'", in.PerformanceMode)
		}
		if in.ThroughputMode == "" {
			in.ThroughputMode = "bursting"
		}
		if !validThroughputModes[in.ThroughputMode] {
			return nil, efsErr("BadRequest", "Invalid ThroughputMode '%s'", in.ThroughputMode)
		}
		if (in.ThroughputMode == "provisioned") != (in.ProvisionedThroughputInMibps != nil) {
			return nil, efsErr("BadRequest", "ProvisionedThroughputInMibps is required with, and only with, ThroughputMode provisioned")
		}
		encrypted := in.Encrypted != nil && *in.Encrypted
		if in.KmsKeyId != "" && !encrypted {
			return nil, efsErr("BadRequest", "KmsKeyId requires Encrypted to be true")
		}
		if in.AvailabilityZoneName != "" && !f.hasZone(in.AvailabilityZoneName) {
			return nil, efsErr("UnsupportedAvailabilityZone", "Availability Zone '%s' is not supported", in.AvailabilityZoneName)
		}
		tags, aerr := efsTagMap(in.Tags)
		if aerr != nil {
			return nil, aerr
		}
		fs := &fileSystem{
			id:              uniqueIDLocked(f, "fs", 17, f.fileSystems),
			creationToken:   in.CreationToken,
			state:           "creating",
			zone:            in.AvailabilityZoneName,
			performanceMode: in.PerformanceMode,
			throughputMode:  in.ThroughputMode,
			encrypted:       encrypted,
			kmsKeyID:        in.KmsKeyId,
			created:         now,
			visibleAt:       now.Add(f.inj.visibility()),
			tags:            tags,
			sizeBytes:       6144,
		}
		if encrypted && fs.kmsKeyID == "" {
			fs.kmsKeyID = f.defaultKMSKey()
		}
		if in.ProvisionedThroughputInMibps != nil {
			fs.provisionedMibps = *in.ProvisionedThroughputInMibps
		}
		f.fileSystems[fs.id] = fs
		f.afterLocked(now, FileSystemCreate, func(time.Time) {
			if fs.state == "creating" {
				fs.state = "available"
			}
		})
		return efsJSON(201, reqID, f.fsJSONLocked(fs, now)), nil
	}
}

func (f *Fake) efsDeleteFileSystem(id string) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		fs, aerr := f.lookupFSLocked(id, now, false)
		if aerr != nil {
			return nil, aerr
		}
		for _, mt := range f.mountTargets {
			if mt.fsID == id {
				return nil, efsErr("FileSystemInUse", "File system '%s' has mount targets", id)
			}
		}
		if fs.state == "deleting" {
			return efsJSON(204, reqID, nil), nil
		}
		fs.state = "deleting"
		f.afterLocked(now, FileSystemDelete, func(time.Time) {
			delete(f.fileSystems, id)
			for apID, ap := range f.accessPoints {
				if ap.fsID == id {
					f.forgetAccessPointLocked(apID)
				}
			}
		})
		return efsJSON(204, reqID, nil), nil
	}
}

func (f *Fake) mtJSON(mt *mountTarget) efsMountTargetJSON {
	vpc := ""
	if s, ok := f.subnets[mt.subnetID]; ok {
		vpc = s.vpcID
	}
	return efsMountTargetJSON{
		OwnerId:              f.opts.AccountID,
		MountTargetId:        mt.id,
		FileSystemId:         mt.fsID,
		SubnetId:             mt.subnetID,
		LifeCycleState:       mt.state,
		IpAddress:            mt.ip,
		NetworkInterfaceId:   mt.eni,
		AvailabilityZoneId:   f.zoneID(mt.zone),
		AvailabilityZoneName: mt.zone,
		VpcId:                vpc,
	}
}

func (f *Fake) efsDescribeMountTargets(q url.Values) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		limit, aerr := positiveInt(q, "MaxItems", 10)
		if aerr != nil {
			return nil, aerr
		}
		fsID, mtID, apID := q.Get("FileSystemId"), q.Get("MountTargetId"), q.Get("AccessPointId")
		given := 0
		for _, s := range []string{fsID, mtID, apID} {
			if s != "" {
				given++
			}
		}
		if given != 1 {
			return nil, efsErr("BadRequest", "Specify exactly one of FileSystemId, MountTargetId or AccessPointId")
		}
		var after string
		if m := q.Get("Marker"); m != "" {
			id, ok := parsePageToken("mt", m)
			if !ok {
				return nil, efsErr("BadRequest", "Invalid Marker")
			}
			after = id
		}
		var ids []string
		switch {
		case mtID != "":
			mt, ok := f.mountTargets[mtID]
			if !ok || !visible(mt.visibleAt, now) {
				return nil, efsErr("MountTargetNotFound", "Mount target '%s' does not exist.", mtID)
			}
			ids = []string{mtID}
		default:
			if apID != "" {
				ap, ok := f.accessPoints[apID]
				if !ok || !visible(ap.visibleAt, now) {
					return nil, efsErr("AccessPointNotFound", "Access point '%s' does not exist.", apID)
				}
				fsID = ap.fsID
			}
			if _, aerr := f.lookupFSLocked(fsID, now, true); aerr != nil {
				return nil, aerr
			}
			for id, mt := range f.mountTargets {
				if mt.fsID == fsID && visible(mt.visibleAt, now) {
					ids = append(ids, id)
				}
			}
		}
		ids, last, more := page(ids, after, limit)
		out := struct {
			MountTargets []efsMountTargetJSON `json:"MountTargets"`
			Marker       string               `json:"Marker,omitempty"`
			NextMarker   string               `json:"NextMarker,omitempty"`
		}{MountTargets: make([]efsMountTargetJSON, 0, len(ids)), Marker: q.Get("Marker")}
		for _, id := range ids {
			out.MountTargets = append(out.MountTargets, f.mtJSON(f.mountTargets[id]))
		}
		if more {
			out.NextMarker = pageToken("mt", last)
		}
		return efsJSON(200, reqID, out), nil
	}
}

func (f *Fake) efsCreateMountTarget(body []byte) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		var in efsCreateMountTargetIn
		if err := decodeEFS(body, &in); err != nil {
			return nil, err
		}
		if in.FileSystemId == "" || in.SubnetId == "" {
			return nil, efsErr("BadRequest", "FileSystemId and SubnetId are required")
		}
		fs, aerr := f.lookupFSLocked(in.FileSystemId, now, false)
		if aerr != nil {
			return nil, aerr
		}
		if fs.state != "available" {
			return nil, efsErr("IncorrectFileSystemLifeCycleState", "File system '%s' is in state '%s'", fs.id, fs.state)
		}
		sn, ok := f.subnets[in.SubnetId]
		if !ok {
			return nil, efsErr("SubnetNotFound", "The subnet ID '%s' does not exist", in.SubnetId)
		}
		var ip netip.Addr
		if in.IpAddress != "" {
			a, err := netip.ParseAddr(in.IpAddress)
			if err != nil || !sn.prefix.Contains(a) {
				return nil, efsErr("BadRequest", "IP address '%s' is not in subnet %s (%s)", in.IpAddress, sn.id, sn.prefix)
			}
			ip = a
		}
		mt, aerr := f.addMountTargetLocked(fs, sn, ip, now, true)
		if aerr != nil {
			return nil, aerr
		}
		return efsJSON(200, reqID, f.mtJSON(mt)), nil
	}
}

// addMountTargetLocked creates a mount target; timed says whether it
// starts out creating (an API call) or available (seeding).
func (f *Fake) addMountTargetLocked(fs *fileSystem, sn *subnet, ip netip.Addr, now time.Time, timed bool) (*mountTarget, *apiError) {
	if fs.zone != "" && fs.zone != sn.zone {
		return nil, efsErr("AvailabilityZonesMismatch", "One Zone file system %s is in %s, subnet %s is in %s", fs.id, fs.zone, sn.id, sn.zone)
	}
	for _, mt := range f.mountTargets {
		if mt.fsID == fs.id && mt.zone == sn.zone {
			return nil, efsErr("MountTargetConflict", "File system '%s' already has a mount target in Availability Zone '%s'", fs.id, sn.zone)
		}
		if ip.IsValid() && mt.ip == ip.String() {
			return nil, efsErr("IpAddressInUse", "IP address %s is already in use", ip)
		}
	}
	if !ip.IsValid() {
		a, ok := f.nextAddressLocked(sn)
		if !ok {
			return nil, efsErr("NoFreeAddressesInSubnet", "Subnet '%s' has no free addresses", sn.id)
		}
		ip = a
	}
	mt := &mountTarget{
		id:        uniqueIDLocked(f, "fsmt", 17, f.mountTargets),
		fsID:      fs.id,
		subnetID:  sn.id,
		zone:      sn.zone,
		ip:        ip.String(),
		eni:       newID(f.idRNG, "eni", 17),
		state:     "available",
		visibleAt: now,
	}
	if timed {
		mt.state = "creating"
		mt.visibleAt = now.Add(f.inj.visibility())
		f.afterLocked(now, MountTargetCreate, func(time.Time) {
			if mt.state == "creating" {
				mt.state = "available"
			}
		})
	}
	f.mountTargets[mt.id] = mt
	return mt, nil
}

// nextAddressLocked hands out subnet addresses in order, skipping the
// first four and the last, which AWS reserves, and any in use.
func (f *Fake) nextAddressLocked(sn *subnet) (netip.Addr, bool) {
	used := map[string]bool{}
	for _, mt := range f.mountTargets {
		used[mt.ip] = true
	}
	for a := sn.next; sn.prefix.Contains(a); a = a.Next() {
		if !sn.prefix.Contains(a.Next()) {
			break // broadcast address
		}
		if !used[a.String()] {
			sn.next = a.Next()
			return a, true
		}
	}
	return netip.Addr{}, false
}

func (f *Fake) efsDeleteMountTarget(id string) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		mt, ok := f.mountTargets[id]
		if !ok {
			return nil, efsErr("MountTargetNotFound", "Mount target '%s' does not exist.", id)
		}
		if mt.state != "deleting" {
			mt.state = "deleting"
			f.afterLocked(now, MountTargetDelete, func(time.Time) { delete(f.mountTargets, id) })
		}
		return efsJSON(204, reqID, nil), nil
	}
}
