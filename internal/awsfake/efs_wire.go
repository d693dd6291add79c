package awsfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

const efsPathPrefix = "/2015-02-01/"

// efsErrorStatus is the HTTP status EFS gives each error code.
var efsErrorStatus = map[string]int{
	"AccessDeniedException":               403,
	"AccessPointAlreadyExists":            409,
	"AccessPointLimitExceeded":            403,
	"AccessPointNotFound":                 404,
	"AvailabilityZonesMismatch":           400,
	"BadRequest":                          400,
	"ConflictException":                   409,
	"DependencyTimeout":                   504,
	"FileSystemAlreadyExists":             409,
	"FileSystemInUse":                     409,
	"FileSystemLimitExceeded":             403,
	"FileSystemNotFound":                  404,
	"IncorrectFileSystemLifeCycleState":   409,
	"IncorrectMountTargetState":           409,
	"InsufficientThroughputCapacity":      503,
	"InternalServerError":                 500,
	"IpAddressInUse":                      409,
	"MissingAuthenticationTokenException": 403,
	"MountTargetConflict":                 409,
	"MountTargetNotFound":                 404,
	"NetworkInterfaceLimitExceeded":       409,
	"NoFreeAddressesInSubnet":             409,
	"SecurityGroupNotFound":               400,
	"SubnetNotFound":                      400,
	"ThrottlingException":                 429,
	"TooManyRequests":                     429,
	"UnknownOperationException":           404,
	"UnsupportedAvailabilityZone":         400,
	"ValidationException":                 400,
}

func efsErr(code, format string, args ...any) *apiError {
	status, ok := efsErrorStatus[code]
	if !ok {
		status = 400
	}
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

type efsProtocol struct{}

// writeError answers the way EFS does: the code both in the
// x-amzn-ErrorType header (with the Coral namespace suffix the SDK strips)
// and in the JSON body's ErrorCode, beside Message.
func (efsProtocol) writeError(w http.ResponseWriter, requestID string, e *apiError) {
	body := map[string]string{"ErrorCode": e.code, "Message": e.message}
	for k, v := range e.fields {
		body[k] = v
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("x-amzn-RequestId", requestID)
	h.Set("x-amzn-ErrorType", e.code+":http://internal.amazon.com/coral/com.amazonaws.magnolia.v20150201/")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(body)
}

func (efsProtocol) throttle() *apiError {
	return efsErr("ThrottlingException", "Rate exceeded")
}

func (efsProtocol) internal() *apiError {
	return efsErr("InternalServerError", "An internal error occurred. Try again.")
}

func (efsProtocol) injected(code, message string) *apiError {
	return efsErr(code, "%s", message)
}

// efsJSON prepares a JSON answer.
func efsJSON(status int, requestID string, v any) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		h := w.Header()
		h.Set("x-amzn-RequestId", requestID)
		if v == nil {
			w.WriteHeader(status)
			return
		}
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
}

type efsTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

func efsTags(t map[string]string) []efsTag {
	out := make([]efsTag, 0, len(t))
	for k, v := range t {
		out = append(out, efsTag{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// epoch is how REST-JSON carries timestamps: seconds since 1970 as a
// JSON number.
func epoch(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}

type efsSize struct {
	Value           int64   `json:"Value"`
	Timestamp       float64 `json:"Timestamp,omitempty"`
	ValueInIA       int64   `json:"ValueInIA"`
	ValueInStandard int64   `json:"ValueInStandard"`
	ValueInArchive  int64   `json:"ValueInArchive"`
}

type efsProtection struct {
	ReplicationOverwriteProtection string `json:"ReplicationOverwriteProtection"`
}

type efsFileSystemJSON struct {
	OwnerId                      string         `json:"OwnerId"`
	CreationToken                string         `json:"CreationToken"`
	FileSystemId                 string         `json:"FileSystemId"`
	FileSystemArn                string         `json:"FileSystemArn"`
	CreationTime                 float64        `json:"CreationTime"`
	LifeCycleState               string         `json:"LifeCycleState"`
	Name                         string         `json:"Name,omitempty"`
	NumberOfMountTargets         int            `json:"NumberOfMountTargets"`
	SizeInBytes                  efsSize        `json:"SizeInBytes"`
	PerformanceMode              string         `json:"PerformanceMode"`
	Encrypted                    bool           `json:"Encrypted"`
	KmsKeyId                     string         `json:"KmsKeyId,omitempty"`
	ThroughputMode               string         `json:"ThroughputMode"`
	ProvisionedThroughputInMibps float64        `json:"ProvisionedThroughputInMibps,omitempty"`
	AvailabilityZoneName         string         `json:"AvailabilityZoneName,omitempty"`
	AvailabilityZoneId           string         `json:"AvailabilityZoneId,omitempty"`
	Tags                         []efsTag       `json:"Tags"`
	FileSystemProtection         *efsProtection `json:"FileSystemProtection,omitempty"`
}

type efsAccessPointJSON struct {
	ClientToken    string         `json:"ClientToken"`
	Name           string         `json:"Name,omitempty"`
	Tags           []efsTag       `json:"Tags"`
	AccessPointId  string         `json:"AccessPointId"`
	AccessPointArn string         `json:"AccessPointArn"`
	FileSystemId   string         `json:"FileSystemId"`
	PosixUser      *posixUser     `json:"PosixUser,omitempty"`
	RootDirectory  *rootDirectory `json:"RootDirectory,omitempty"`
	OwnerId        string         `json:"OwnerId"`
	LifeCycleState string         `json:"LifeCycleState"`
}

type efsMountTargetJSON struct {
	OwnerId              string `json:"OwnerId"`
	MountTargetId        string `json:"MountTargetId"`
	FileSystemId         string `json:"FileSystemId"`
	SubnetId             string `json:"SubnetId"`
	LifeCycleState       string `json:"LifeCycleState"`
	IpAddress            string `json:"IpAddress"`
	NetworkInterfaceId   string `json:"NetworkInterfaceId"`
	AvailabilityZoneId   string `json:"AvailabilityZoneId"`
	AvailabilityZoneName string `json:"AvailabilityZoneName"`
	VpcId                string `json:"VpcId"`
}

// Request bodies. Pointers tell a missing member from a zero one.

type efsPosixUserIn struct {
	Uid           *int64  `json:"Uid"`
	Gid           *int64  `json:"Gid"`
	SecondaryGids []int64 `json:"SecondaryGids,omitempty"`
}

type efsCreationInfoIn struct {
	OwnerUid    *int64  `json:"OwnerUid"`
	OwnerGid    *int64  `json:"OwnerGid"`
	Permissions *string `json:"Permissions"`
}

type efsRootDirectoryIn struct {
	Path         *string            `json:"Path,omitempty"`
	CreationInfo *efsCreationInfoIn `json:"CreationInfo,omitempty"`
}

type efsCreateAccessPointIn struct {
	ClientToken   string              `json:"ClientToken,omitempty"`
	FileSystemId  string              `json:"FileSystemId"`
	PosixUser     *efsPosixUserIn     `json:"PosixUser,omitempty"`
	RootDirectory *efsRootDirectoryIn `json:"RootDirectory,omitempty"`
	Tags          []efsTag            `json:"Tags,omitempty"`
}

type efsCreateFileSystemIn struct {
	CreationToken                string   `json:"CreationToken"`
	PerformanceMode              string   `json:"PerformanceMode"`
	Encrypted                    *bool    `json:"Encrypted"`
	KmsKeyId                     string   `json:"KmsKeyId"`
	ThroughputMode               string   `json:"ThroughputMode"`
	ProvisionedThroughputInMibps *float64 `json:"ProvisionedThroughputInMibps"`
	AvailabilityZoneName         string   `json:"AvailabilityZoneName"`
	Backup                       *bool    `json:"Backup"`
	Tags                         []efsTag `json:"Tags"`
}

type efsCreateMountTargetIn struct {
	FileSystemId   string   `json:"FileSystemId"`
	SubnetId       string   `json:"SubnetId"`
	IpAddress      string   `json:"IpAddress"`
	SecurityGroups []string `json:"SecurityGroups"`
}

type efsTagsIn struct {
	Tags []efsTag `json:"Tags"`
}

// Page tokens are opaque to callers; inside they name the operation they
// belong to and the last ID returned, so a page boundary survives
// resources being created or deleted between calls.

func pageToken(kind, lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "|" + lastID))
}

func parsePageToken(kind, token string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", false
	}
	k, id, ok := strings.Cut(string(b), "|")
	if !ok || k != kind || id == "" {
		return "", false
	}
	return id, true
}

// page cuts the sorted ids after the token's position, at most limit
// long, and says where the next page starts.
func page(ids []string, after string, limit int) (out []string, last string, more bool) {
	sort.Strings(ids)
	// A request naming an ID twice gets it once, as from AWS.
	ids = slices.Compact(ids)
	start := sort.SearchStrings(ids, after)
	if after != "" && start < len(ids) && ids[start] == after {
		start++
	}
	ids = ids[start:]
	if limit <= 0 || len(ids) <= limit {
		return ids, "", false
	}
	return ids[:limit], ids[limit-1], true
}
