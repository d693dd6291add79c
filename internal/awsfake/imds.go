package awsfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// IMDS returns a handler that answers as the instance metadata service
// (IMDSv2) of one of the fake's instances, for the SDK's feature/ec2/imds
// client (imds.Options.Endpoint, or AWS_EC2_METADATA_SERVICE_ENDPOINT).
// The answers follow the instance as it is when asked: block devices
// attached later show up. Calls without a session token get 401, as on an
// instance that requires IMDSv2.
func (f *Fake) IMDS(instanceID string) http.Handler {
	return &imdsHandler{f: f, instanceID: instanceID}
}

type imdsHandler struct {
	f          *Fake
	instanceID string
}

const imdsToken = "awsfake-imds-session-token"

func (h *imdsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "token requests must be PUT", http.StatusMethodNotAllowed)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "bad token TTL", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", strconv.Itoa(ttl))
		_, _ = fmt.Fprint(w, imdsToken)
		return
	}
	if r.Header.Get("X-Aws-Ec2-Metadata-Token") != imdsToken {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	body, ok := h.lookup(strings.TrimSuffix(r.URL.Path, "/"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprint(w, body)
}

type identityDocument struct {
	AccountID        string    `json:"accountId"`
	Architecture     string    `json:"architecture"`
	AvailabilityZone string    `json:"availabilityZone"`
	ImageID          string    `json:"imageId"`
	InstanceID       string    `json:"instanceId"`
	InstanceType     string    `json:"instanceType"`
	PendingTime      time.Time `json:"pendingTime"`
	PrivateIP        string    `json:"privateIp"`
	Region           string    `json:"region"`
	Version          string    `json:"version"`
}

// lookup answers one metadata path.
func (h *imdsHandler) lookup(path string) (string, bool) {
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(time.Now())
	inst, ok := f.instances[h.instanceID]
	if !ok {
		return "", false
	}
	const md = "/latest/meta-data"
	devices := map[string]string{"ami": "/dev/xvda", "root": "/dev/xvda"}
	n := 0
	attached := f.instanceAttachmentsLocked(inst.id)
	names := make([]string, 0, len(attached))
	for d := range attached {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		if d != "/dev/xvda" {
			devices[fmt.Sprintf("ebs%d", n+1)] = strings.TrimPrefix(d, "/dev/")
			n++
		}
	}
	switch {
	case path == md+"/instance-id":
		return inst.id, true
	case path == md+"/instance-type":
		return inst.instanceType, true
	case path == md+"/placement/availability-zone":
		return inst.zone, true
	case path == md+"/placement/availability-zone-id":
		return f.zoneID(inst.zone), true
	case path == md+"/placement/region":
		return f.opts.Region, true
	case path == md+"/local-ipv4":
		return inst.privateIP, true
	case path == md+"/local-hostname" || path == md+"/hostname":
		return "ip-" + strings.ReplaceAll(inst.privateIP, ".", "-") + ".ec2.internal", true
	case path == md+"/ami-id":
		return "ami-0123456789abcdef0", true
	case path == md+"/block-device-mapping":
		keys := make([]string, 0, len(devices))
		for k := range devices {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return strings.Join(keys, "\n"), true
	case strings.HasPrefix(path, md+"/block-device-mapping/"):
		d, ok := devices[strings.TrimPrefix(path, md+"/block-device-mapping/")]
		return d, ok
	case path == "/latest/dynamic/instance-identity/document":
		b, _ := json.MarshalIndent(identityDocument{
			AccountID:        f.opts.AccountID,
			Architecture:     "x86_64",
			AvailabilityZone: inst.zone,
			ImageID:          "ami-0123456789abcdef0",
			InstanceID:       inst.id,
			InstanceType:     inst.instanceType,
			PendingTime:      inst.launched.UTC().Truncate(time.Second),
			PrivateIP:        inst.privateIP,
			Region:           f.opts.Region,
			Version:          "2017-09-30",
		}, "", "  ")
		return string(b), true
	}
	return "", false
}
