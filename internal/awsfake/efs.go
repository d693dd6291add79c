package awsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
