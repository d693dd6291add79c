package awsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds request bodies; real requests are a few kilobytes.
const maxBody = 1 << 20

// parseEFS routes an EFS REST-JSON request to its operation.
func (f *Fake) parseEFS(r *http.Request) (*request, *apiError) {
	if r.Header.Get("Authorization") == "" {
		return nil, efsErr("MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, efsErr("BadRequest", "cannot read request body: %v", err)
	}
	rest := strings.TrimPrefix(r.URL.Path, efsPathPrefix)
	collection, id, _ := strings.Cut(rest, "/")
	q := r.URL.Query()
	req := &request{proto: efsProtocol{}}
	switch {
	case collection == "file-systems" && id == "" && r.Method == http.MethodGet:
		req.op, req.handle = "DescribeFileSystems", f.efsDescribeFileSystems(q)
	case collection == "file-systems" && id == "" && r.Method == http.MethodPost:
		req.op, req.handle = "CreateFileSystem", f.efsCreateFileSystem(body)
	case collection == "file-systems" && id != "" && !strings.Contains(id, "/") && r.Method == http.MethodDelete:
		req.op, req.handle = "DeleteFileSystem", f.efsDeleteFileSystem(id)
	case collection == "access-points" && id == "" && r.Method == http.MethodGet:
		req.op, req.handle = "DescribeAccessPoints", f.efsDescribeAccessPoints(q)
	case collection == "access-points" && id == "" && r.Method == http.MethodPost:
		req.op, req.handle = "CreateAccessPoint", f.efsCreateAccessPoint(body)
	case collection == "access-points" && id != "" && r.Method == http.MethodDelete:
		req.op, req.handle = "DeleteAccessPoint", f.efsDeleteAccessPoint(id)
	case collection == "mount-targets" && id == "" && r.Method == http.MethodGet:
		req.op, req.handle = "DescribeMountTargets", f.efsDescribeMountTargets(q)
	case collection == "mount-targets" && id == "" && r.Method == http.MethodPost:
		req.op, req.handle = "CreateMountTarget", f.efsCreateMountTarget(body)
	case collection == "mount-targets" && id != "" && !strings.Contains(id, "/") && r.Method == http.MethodDelete:
		req.op, req.handle = "DeleteMountTarget", f.efsDeleteMountTarget(id)
	case collection == "resource-tags" && id != "" && r.Method == http.MethodGet:
		req.op, req.handle = "ListTagsForResource", f.efsListTags(id, q)
	case collection == "resource-tags" && id != "" && r.Method == http.MethodPost:
		req.op, req.handle = "TagResource", f.efsTagResource(id, body)
	case collection == "resource-tags" && id != "" && r.Method == http.MethodDelete:
		req.op, req.handle = "UntagResource", f.efsUntagResource(id, q["tagKeys"])
	default:
		return nil, efsErr("UnknownOperationException", "%s %s is not an operation this fake serves", r.Method, r.URL.Path)
	}
	return req, nil
}

// decodeEFS reads a JSON body strictly enough to catch shape mistakes.
func decodeEFS(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return efsErr("BadRequest", "malformed request body: %v", err)
	}
	return nil
}

func (f *Fake) fsARN(id string) string {
	return fmt.Sprintf("arn:aws:elasticfilesystem:%s:%s:file-system/%s", f.opts.Region, f.opts.AccountID, id)
}

func (f *Fake) apARN(id string) string {
	return fmt.Sprintf("arn:aws:elasticfilesystem:%s:%s:access-point/%s", f.opts.Region, f.opts.AccountID, id)
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

func (f *Fake) apJSON(ap *accessPoint) efsAccessPointJSON {
	root := ap.root
	return efsAccessPointJSON{
		ClientToken:    ap.clientToken,
		Name:           ap.tags["Name"],
		Tags:           efsTags(ap.tags),
		AccessPointId:  ap.id,
		AccessPointArn: f.apARN(ap.id),
		FileSystemId:   ap.fsID,
		PosixUser:      ap.posix,
		RootDirectory:  &root,
		OwnerId:        f.opts.AccountID,
		LifeCycleState: ap.state,
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

// positiveInt parses an optional paging size.
func positiveInt(q url.Values, name string, def int) (int, *apiError) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, efsErr("BadRequest", "%s must be a positive integer", name)
	}
	return n, nil
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

func efsTagMap(tags []efsTag) (map[string]string, *apiError) {
	if len(tags) > 50 {
		return nil, efsErr("BadRequest", "A resource can have at most 50 tags")
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return nil, efsErr("BadRequest", "Tag keys must be 1-128 characters and values at most 256")
		}
		if _, dup := m[t.Key]; dup {
			return nil, efsErr("BadRequest", "Duplicate tag key '%s'", t.Key)
		}
		m[t.Key] = t.Value
	}
	return m, nil
}

var permissionsRE = regexp.MustCompile(`^[0-7]{3,4}$`)

// validateAccessPoint checks a CreateAccessPoint body as EFS does and
// turns it into the stored shape.
func validateAccessPoint(in *efsCreateAccessPointIn) (*posixUser, rootDirectory, *apiError) {
	var pu *posixUser
	if p := in.PosixUser; p != nil {
		if p.Uid == nil || p.Gid == nil {
			return nil, rootDirectory{}, efsErr("BadRequest", "PosixUser requires Uid and Gid")
		}
		if *p.Uid < 0 || *p.Uid > 4294967295 || *p.Gid < 0 || *p.Gid > 4294967295 {
			return nil, rootDirectory{}, efsErr("BadRequest", "PosixUser Uid and Gid must be between 0 and 4294967295")
		}
		if len(p.SecondaryGids) > 16 {
			return nil, rootDirectory{}, efsErr("BadRequest", "PosixUser allows at most 16 SecondaryGids")
		}
		pu = &posixUser{Uid: *p.Uid, Gid: *p.Gid, SecondaryGids: p.SecondaryGids}
	}
	root := rootDirectory{Path: "/"}
	if rd := in.RootDirectory; rd != nil {
		if rd.Path != nil {
			p := *rd.Path
			if p == "" || len(p) > 100 || !strings.HasPrefix(p, "/") {
				return nil, rootDirectory{}, efsErr("BadRequest", "RootDirectory Path must be an absolute path of at most 100 characters")
			}
			root.Path = p
		}
		if ci := rd.CreationInfo; ci != nil {
			if ci.OwnerUid == nil || ci.OwnerGid == nil || ci.Permissions == nil {
				return nil, rootDirectory{}, efsErr("BadRequest", "CreationInfo requires OwnerUid, OwnerGid and Permissions")
			}
			if !permissionsRE.MatchString(*ci.Permissions) {
				return nil, rootDirectory{}, efsErr("BadRequest", "Permissions must be an octal string of 3 or 4 digits")
			}
			root.CreationInfo = &creationInfo{OwnerUid: *ci.OwnerUid, OwnerGid: *ci.OwnerGid, Permissions: *ci.Permissions}
		}
	}
	return pu, root, nil
}

func (f *Fake) efsCreateAccessPoint(body []byte) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		var in efsCreateAccessPointIn
		if err := decodeEFS(body, &in); err != nil {
			return nil, err
		}
		if in.ClientToken == "" || len(in.ClientToken) > 64 {
			return nil, efsErr("BadRequest", "ClientToken must be 1 to 64 characters long")
		}
		if in.FileSystemId == "" {
			return nil, efsErr("BadRequest", "FileSystemId is required")
		}
		pu, root, aerr := validateAccessPoint(&in)
		if aerr != nil {
			return nil, aerr
		}
		tags, aerr := efsTagMap(in.Tags)
		if aerr != nil {
			return nil, aerr
		}
		// The token is scoped to the account and region, not to the file
		// system, as it is in EFS.
		token := in.ClientToken
		in.ClientToken = ""
		paramsJSON, _ := json.Marshal(in)
		params := string(paramsJSON)
		if apID, ok := f.apTokens[token]; ok {
			ap := f.accessPoints[apID]
			if !f.opts.StrictAccessPointTokens && ap.params == params && ap.state != "deleting" {
				return efsJSON(200, reqID, f.apJSON(ap)), nil
			}
			e := efsErr("AccessPointAlreadyExists", "Access point already exists with client token '%s'", token)
			e.fields = map[string]string{"AccessPointId": apID}
			return nil, e
		}
		fs, aerr := f.lookupFSLocked(in.FileSystemId, now, false)
		if aerr != nil {
			return nil, aerr
		}
		if fs.state != "available" {
			return nil, efsErr("IncorrectFileSystemLifeCycleState", "File system '%s' is in state '%s'", fs.id, fs.state)
		}
		n := 0
		for _, ap := range f.accessPoints {
			if ap.fsID == fs.id {
				n++
			}
		}
		if n >= f.opts.AccessPointLimit {
			return nil, efsErr("AccessPointLimitExceeded", "You have reached the maximum number of access points (%d) for file system %s.", f.opts.AccessPointLimit, fs.id)
		}
		ap := &accessPoint{
			id:          uniqueIDLocked(f, "fsap", 17, f.accessPoints),
			fsID:        fs.id,
			clientToken: token,
			params:      params,
			state:       "creating",
			posix:       pu,
			root:        root,
			tags:        tags,
			visibleAt:   now.Add(f.inj.visibility()),
		}
		f.accessPoints[ap.id] = ap
		f.apTokens[token] = ap.id
		f.afterLocked(now, AccessPointCreate, func(time.Time) {
			if ap.state == "creating" {
				ap.state = "available"
			}
		})
		return efsJSON(200, reqID, f.apJSON(ap)), nil
	}
}

// forgetAccessPointLocked removes an access point and frees its token.
func (f *Fake) forgetAccessPointLocked(id string) {
	if ap, ok := f.accessPoints[id]; ok {
		if f.apTokens[ap.clientToken] == id {
			delete(f.apTokens, ap.clientToken)
		}
		delete(f.accessPoints, id)
	}
}

func (f *Fake) efsDeleteAccessPoint(id string) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		ap, ok := f.accessPoints[id]
		if !ok {
			return nil, efsErr("AccessPointNotFound", "Access point '%s' does not exist.", id)
		}
		if ap.state != "deleting" {
			ap.state = "deleting"
			f.afterLocked(now, AccessPointDelete, func(time.Time) { f.forgetAccessPointLocked(id) })
		}
		return efsJSON(204, reqID, nil), nil
	}
}

func (f *Fake) efsDescribeAccessPoints(q url.Values) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		limit, aerr := positiveInt(q, "MaxResults", 100)
		if aerr != nil {
			return nil, aerr
		}
		apID, fsID := q.Get("AccessPointId"), q.Get("FileSystemId")
		if apID != "" && fsID != "" {
			return nil, efsErr("BadRequest", "Specify either AccessPointId or FileSystemId, not both")
		}
		var after string
		if t := q.Get("NextToken"); t != "" {
			id, ok := parsePageToken("ap", t)
			if !ok {
				return nil, efsErr("BadRequest", "Invalid NextToken")
			}
			after = id
		}
		var ids []string
		switch {
		case apID != "":
			ap, ok := f.accessPoints[apID]
			if !ok || !visible(ap.visibleAt, now) {
				return nil, efsErr("AccessPointNotFound", "Access point '%s' does not exist.", apID)
			}
			ids = []string{apID}
		default:
			if fsID != "" {
				if _, aerr := f.lookupFSLocked(fsID, now, true); aerr != nil {
					return nil, aerr
				}
			}
			for id, ap := range f.accessPoints {
				if (fsID == "" || ap.fsID == fsID) && visible(ap.visibleAt, now) {
					ids = append(ids, id)
				}
			}
		}
		ids, last, more := page(ids, after, limit)
		out := struct {
			AccessPoints []efsAccessPointJSON `json:"AccessPoints"`
			NextToken    string               `json:"NextToken,omitempty"`
		}{AccessPoints: make([]efsAccessPointJSON, 0, len(ids))}
		for _, id := range ids {
			out.AccessPoints = append(out.AccessPoints, f.apJSON(f.accessPoints[id]))
		}
		if more {
			out.NextToken = pageToken("ap", last)
		}
		return efsJSON(200, reqID, out), nil
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

// taggedLocked finds the tags of a file system or access point.
func (f *Fake) taggedLocked(id string) (map[string]string, *apiError) {
	switch {
	case strings.HasPrefix(id, "fsap-"):
		ap, ok := f.accessPoints[id]
		if !ok {
			return nil, efsErr("AccessPointNotFound", "Access point '%s' does not exist.", id)
		}
		return ap.tags, nil
	case strings.HasPrefix(id, "fs-"):
		fs, ok := f.fileSystems[id]
		if !ok {
			return nil, efsErr("FileSystemNotFound", "File system '%s' does not exist.", id)
		}
		return fs.tags, nil
	default:
		return nil, efsErr("BadRequest", "Invalid resource ID '%s'", id)
	}
}

func (f *Fake) efsListTags(id string, q url.Values) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		tags, aerr := f.taggedLocked(id)
		if aerr != nil {
			return nil, aerr
		}
		limit, aerr := positiveInt(q, "MaxResults", 100)
		if aerr != nil {
			return nil, aerr
		}
		var after string
		if t := q.Get("NextToken"); t != "" {
			k, ok := parsePageToken("tag", t)
			if !ok {
				return nil, efsErr("BadRequest", "Invalid NextToken")
			}
			after = k
		}
		keys := make([]string, 0, len(tags))
		for k := range tags {
			keys = append(keys, k)
		}
		keys, last, more := page(keys, after, limit)
		out := struct {
			Tags      []efsTag `json:"Tags"`
			NextToken string   `json:"NextToken,omitempty"`
		}{Tags: make([]efsTag, 0, len(keys))}
		for _, k := range keys {
			out.Tags = append(out.Tags, efsTag{Key: k, Value: tags[k]})
		}
		if more {
			out.NextToken = pageToken("tag", last)
		}
		return efsJSON(200, reqID, out), nil
	}
}

func (f *Fake) efsTagResource(id string, body []byte) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		var in efsTagsIn
		if err := decodeEFS(body, &in); err != nil {
			return nil, err
		}
		tags, aerr := f.taggedLocked(id)
		if aerr != nil {
			return nil, aerr
		}
		add, aerr := efsTagMap(in.Tags)
		if aerr != nil {
			return nil, aerr
		}
		if len(add) == 0 {
			return nil, efsErr("BadRequest", "Tags must not be empty")
		}
		merged := copyTags(tags)
		for k, v := range add {
			merged[k] = v
		}
		if len(merged) > 50 {
			return nil, efsErr("BadRequest", "A resource can have at most 50 tags")
		}
		for k, v := range add {
			tags[k] = v
		}
		return efsJSON(200, reqID, nil), nil
	}
}

func (f *Fake) efsUntagResource(id string, keys []string) func(time.Time, string) (func(http.ResponseWriter), error) {
	return func(now time.Time, reqID string) (func(http.ResponseWriter), error) {
		tags, aerr := f.taggedLocked(id)
		if aerr != nil {
			return nil, aerr
		}
		if len(keys) == 0 {
			return nil, efsErr("BadRequest", "tagKeys must not be empty")
		}
		for _, k := range keys {
			delete(tags, k)
		}
		return efsJSON(200, reqID, nil), nil
	}
}

// defaultKMSKey stands for the account's AWS-managed key of a service.
func (f *Fake) defaultKMSKey() string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/00000000-0000-4000-8000-000000000000", f.opts.Region, f.opts.AccountID)
}
