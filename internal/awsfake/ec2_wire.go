package awsfake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// ec2ErrorStatus is the HTTP status EC2 gives the codes that are not
// plain 400 client errors.
var ec2ErrorStatus = map[string]int{
	"AuthFailure":                401,
	"UnauthorizedOperation":      403,
	"OptInRequired":              403,
	"DryRunOperation":            412,
	"InternalError":              500,
	"InternalFailure":            500,
	"InsufficientVolumeCapacity": 500,
	"RequestLimitExceeded":       503,
	"ServiceUnavailable":         503,
	"Unavailable":                503,
}

func ec2Err(code, format string, args ...any) *apiError {
	status, ok := ec2ErrorStatus[code]
	if !ok {
		status = 400
	}
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

type ec2Protocol struct{}

type ec2ErrorXML struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

func (ec2Protocol) writeError(w http.ResponseWriter, requestID string, e *apiError) {
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("x-amzn-RequestId", requestID)
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(ec2ErrorXML{Code: e.code, Message: e.message, RequestID: requestID})
}

func (ec2Protocol) throttle() *apiError {
	return ec2Err("RequestLimitExceeded", "Request limit exceeded.")
}

func (ec2Protocol) internal() *apiError {
	return ec2Err("InternalError", "An internal error has occurred")
}

func (ec2Protocol) injected(code, message string) *apiError {
	return ec2Err(code, "%s", message)
}

// ec2Header starts every EC2 answer: the request ID is the first child
// of a root element named after the action.
type ec2Header struct {
	RequestID string `xml:"requestId"`
}

func (h *ec2Header) stamp(requestID string) { h.RequestID = requestID }

type stamper interface {
	stamp(requestID string)
}

// ec2XML prepares an XML answer. The root element is given explicitly
// rather than through an XMLName field, so one response type can serve
// several actions.
func ec2XML(action, requestID string, v stamper) func(http.ResponseWriter) {
	v.stamp(requestID)
	return func(w http.ResponseWriter) {
		h := w.Header()
		h.Set("Content-Type", "text/xml;charset=UTF-8")
		h.Set("x-amzn-RequestId", requestID)
		w.WriteHeader(200)
		_, _ = w.Write([]byte(xml.Header))
		root := xml.StartElement{Name: xml.Name{Space: ec2Namespace, Local: action + "Response"}}
		_ = xml.NewEncoder(w).EncodeElement(v, root)
	}
}

// itemSet is EC2's list shape: <fooSet><item>…</item></fooSet>, written
// even when empty, as EC2 does.
type itemSet[T any] struct {
	Items []T `xml:"item"`
}

type ec2Return struct {
	ec2Header
	Return bool `xml:"return"`
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func xmlTags(t map[string]string) itemSet[xmlTag] {
	out := make([]xmlTag, 0, len(t))
	for k, v := range t {
		out = append(out, xmlTag{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return itemSet[xmlTag]{Items: out}
}

// ec2Time is the timestamp format of EC2's XML.
func ec2Time(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

type xmlAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlVolume struct {
	VolumeID           string                 `xml:"volumeId"`
	Size               int64                  `xml:"size"`
	SnapshotID         string                 `xml:"snapshotId"`
	AvailabilityZone   string                 `xml:"availabilityZone"`
	AvailabilityZoneID string                 `xml:"availabilityZoneId,omitempty"`
	Status             string                 `xml:"status"`
	CreateTime         string                 `xml:"createTime"`
	Attachments        itemSet[xmlAttachment] `xml:"attachmentSet"`
	Tags               *itemSet[xmlTag]       `xml:"tagSet,omitempty"`
	VolumeType         string                 `xml:"volumeType"`
	Iops               int32                  `xml:"iops,omitempty"`
	Encrypted          bool                   `xml:"encrypted"`
	KmsKeyID           string                 `xml:"kmsKeyId,omitempty"`
	Throughput         int32                  `xml:"throughput,omitempty"`
	MultiAttachEnabled bool                   `xml:"multiAttachEnabled"`
	OwnerID            string                 `xml:"ownerId,omitempty"`
}

type xmlModification struct {
	VolumeID                   string `xml:"volumeId"`
	ModificationState          string `xml:"modificationState"`
	TargetSize                 int64  `xml:"targetSize"`
	TargetIops                 int32  `xml:"targetIops,omitempty"`
	TargetVolumeType           string `xml:"targetVolumeType"`
	TargetThroughput           int32  `xml:"targetThroughput,omitempty"`
	TargetMultiAttachEnabled   bool   `xml:"targetMultiAttachEnabled"`
	OriginalSize               int64  `xml:"originalSize"`
	OriginalIops               int32  `xml:"originalIops,omitempty"`
	OriginalVolumeType         string `xml:"originalVolumeType"`
	OriginalThroughput         int32  `xml:"originalThroughput,omitempty"`
	OriginalMultiAttachEnabled bool   `xml:"originalMultiAttachEnabled"`
	Progress                   int64  `xml:"progress"`
	StartTime                  string `xml:"startTime"`
	EndTime                    string `xml:"endTime,omitempty"`
}

type xmlSnapshot struct {
	SnapshotID  string           `xml:"snapshotId"`
	VolumeID    string           `xml:"volumeId"`
	Status      string           `xml:"status"`
	StartTime   string           `xml:"startTime"`
	Progress    string           `xml:"progress"`
	OwnerID     string           `xml:"ownerId"`
	VolumeSize  int64            `xml:"volumeSize"`
	Description string           `xml:"description"`
	Encrypted   bool             `xml:"encrypted"`
	KmsKeyID    string           `xml:"kmsKeyId,omitempty"`
	StorageTier string           `xml:"storageTier"`
	Tags        *itemSet[xmlTag] `xml:"tagSet,omitempty"`
	// CompletionTime is set once the snapshot is completed.
	CompletionTime string `xml:"completionTime,omitempty"`
}

type xmlEBSDevice struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlBlockDevice struct {
	DeviceName string       `xml:"deviceName"`
	EBS        xmlEBSDevice `xml:"ebs"`
}

type xmlInstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlPlacement struct {
	AvailabilityZone   string `xml:"availabilityZone"`
	AvailabilityZoneID string `xml:"availabilityZoneId,omitempty"`
	GroupName          string `xml:"groupName"`
	Tenancy            string `xml:"tenancy"`
}

type xmlInstance struct {
	InstanceID         string                  `xml:"instanceId"`
	ImageID            string                  `xml:"imageId"`
	State              xmlInstanceState        `xml:"instanceState"`
	PrivateDNSName     string                  `xml:"privateDnsName"`
	DNSName            string                  `xml:"dnsName"`
	AmiLaunchIndex     int                     `xml:"amiLaunchIndex"`
	InstanceType       string                  `xml:"instanceType"`
	LaunchTime         string                  `xml:"launchTime"`
	Placement          xmlPlacement            `xml:"placement"`
	PrivateIPAddress   string                  `xml:"privateIpAddress"`
	Architecture       string                  `xml:"architecture"`
	RootDeviceType     string                  `xml:"rootDeviceType"`
	RootDeviceName     string                  `xml:"rootDeviceName"`
	BlockDeviceMapping itemSet[xmlBlockDevice] `xml:"blockDeviceMapping"`
	VirtualizationType string                  `xml:"virtualizationType"`
	Hypervisor         string                  `xml:"hypervisor"`
	EBSOptimized       bool                    `xml:"ebsOptimized"`
	Tags               *itemSet[xmlTag]        `xml:"tagSet,omitempty"`
}

type xmlReservation struct {
	ReservationID string               `xml:"reservationId"`
	OwnerID       string               `xml:"ownerId"`
	Groups        itemSet[struct{}]    `xml:"groupSet"`
	Instances     itemSet[xmlInstance] `xml:"instancesSet"`
}

type xmlZone struct {
	ZoneName           string            `xml:"zoneName"`
	ZoneState          string            `xml:"zoneState"`
	RegionName         string            `xml:"regionName"`
	ZoneID             string            `xml:"zoneId"`
	ZoneType           string            `xml:"zoneType"`
	OptInStatus        string            `xml:"optInStatus"`
	GroupName          string            `xml:"groupName"`
	NetworkBorderGroup string            `xml:"networkBorderGroup"`
	Messages           itemSet[struct{}] `xml:"messageSet"`
}

// ec2Form is a parsed EC2 Query request.
type ec2Form struct {
	url.Values
}

// list collects a numbered list parameter: Name.1, Name.2, ...
func (q ec2Form) list(name string) []string {
	type kv struct {
		n int
		v string
	}
	var items []kv
	prefix := name + "."
	for k, vs := range q.Values {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || len(vs) == 0 {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		items = append(items, kv{n, vs[0]})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].n < items[j].n })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// indices lists the N of every Name.N.* key, in order.
func (q ec2Form) indices(name string) []int {
	seen := map[int]bool{}
	prefix := name + "."
	for k := range q.Values {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		head, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(head); err == nil {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

type filter struct {
	name   string
	values []string
}

func (q ec2Form) filters() []filter {
	var out []filter
	for _, n := range q.indices("Filter") {
		p := fmt.Sprintf("Filter.%d.", n)
		out = append(out, filter{name: q.Get(p + "Name"), values: q.list(p + "Value")})
	}
	return out
}

type kvTag struct {
	key, value string
	hasValue   bool
}

// tagList reads Prefix.N.Key / Prefix.N.Value pairs.
func (q ec2Form) tagList(prefix string) []kvTag {
	var out []kvTag
	for _, n := range q.indices(prefix) {
		p := fmt.Sprintf("%s.%d.", prefix, n)
		_, has := q.Values[p+"Value"]
		out = append(out, kvTag{key: q.Get(p + "Key"), value: q.Get(p + "Value"), hasValue: has})
	}
	return out
}

// tagSpecs reads TagSpecification.N.ResourceType and its tags, keeping
// only those for resourceType.
func (q ec2Form) tagSpecs(resourceType string) (map[string]string, *apiError) {
	tags := map[string]string{}
	for _, n := range q.indices("TagSpecification") {
		p := fmt.Sprintf("TagSpecification.%d.", n)
		rt := q.Get(p + "ResourceType")
		if rt != resourceType {
			return nil, ec2Err("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
		for _, t := range q.tagList(p + "Tag") {
			tags[t.key] = t.value
		}
	}
	if aerr := validateTags(tags); aerr != nil {
		return nil, aerr
	}
	return tags, nil
}

func validateTags(tags map[string]string) *apiError {
	if len(tags) > 50 {
		return ec2Err("TagLimitExceeded", "The maximum number of tags for a resource is 50.")
	}
	for k, v := range tags {
		if k == "" || len(k) > 128 || len(v) > 256 {
			return ec2Err("InvalidParameterValue", "Tag keys must be 1-128 characters and values at most 256.")
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return ec2Err("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
		}
	}
	return nil
}

func (q ec2Form) boolParam(name string) (bool, bool, *apiError) {
	s := q.Get(name)
	if s == "" {
		return false, false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, false, ec2Err("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Expected: 'true' or 'false'.", s, name)
	}
	return b, true, nil
}

func (q ec2Form) intParam(name string) (int64, bool, *apiError) {
	s := q.Get(name)
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, ec2Err("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Expected an integer.", s, name)
	}
	return n, true, nil
}

// paging reads MaxResults and NextToken. EC2 forbids MaxResults together
// with an explicit ID list; lo and hi bound MaxResults.
func (q ec2Form) paging(kind string, haveIDs bool, idParam string, lo, hi int64) (limit int, after string, aerr *apiError) {
	n, ok, aerr := q.intParam("MaxResults")
	if aerr != nil {
		return 0, "", aerr
	}
	if ok {
		if haveIDs {
			return 0, "", ec2Err("InvalidParameterCombination", "The parameter %s cannot be used with the parameter maxResults", idParam)
		}
		if n < lo || n > hi {
			return 0, "", ec2Err("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.", n, lo, hi)
		}
		limit = int(n)
	}
	if t := q.Get("NextToken"); t != "" {
		id, ok := parsePageToken(kind, t)
		if !ok {
			return 0, "", ec2Err("InvalidParameterValue", "The value supplied for the NextToken is invalid.")
		}
		after = id
	}
	return limit, after, nil
}

// matchFilters reports whether a resource passes every filter. values
// returns the resource's values for a filter name, and false for a name
// the operation does not know.
func matchFilters(filters []filter, tags map[string]string, values func(name string) ([]string, bool)) (bool, *apiError) {
	for _, fl := range filters {
		var have []string
		switch {
		case strings.HasPrefix(fl.name, "tag:"):
			if v, ok := tags[strings.TrimPrefix(fl.name, "tag:")]; ok {
				have = []string{v}
			}
		case fl.name == "tag-key":
			for k := range tags {
				have = append(have, k)
			}
		case fl.name == "tag-value":
			for _, v := range tags {
				have = append(have, v)
			}
		default:
			v, ok := values(fl.name)
			if !ok {
				return false, ec2Err("InvalidParameterValue", "The filter '%s' is invalid", fl.name)
			}
			have = v
		}
		if !anyMatch(fl.values, have) {
			return false, nil
		}
	}
	return true, nil
}

// anyMatch applies EC2's filter rule: a value matches if it equals any
// wanted value, where * and ? are wildcards.
func anyMatch(want, have []string) bool {
	for _, w := range want {
		for _, h := range have {
			if w == h {
				return true
			}
			if strings.ContainsAny(w, "*?") {
				if ok, _ := path.Match(w, h); ok {
					return true
				}
			}
		}
	}
	return false
}
