package awsfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

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

func (f *Fake) apARN(id string) string {
	return fmt.Sprintf("arn:aws:elasticfilesystem:%s:%s:access-point/%s", f.opts.Region, f.opts.AccountID, id)
}
