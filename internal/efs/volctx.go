package efs

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Volume context keys. Upstream's node plugin reads these (case-insensitive)
// and rejects others; PVs written for it carry them.
const (
	ctxEncryptInTransit = "encryptintransit"
	ctxMountTargetIP    = "mounttargetip"
	ctxMountTargetIPMap = "mounttargetipmap"
	ctxCrossAccount     = "crossaccount"
)

// VolumeContext is the parsed volume context of a PV.
type VolumeContext struct {
	// EncryptInTransit is nil when the PV does not say; the node's default
	// then applies.
	EncryptInTransit *bool
	MountTargetIP    string
	// MountTargetIPMap maps zone to mount target IP.
	MountTargetIPMap map[string]string
	CrossAccount     bool
}

func parseVolumeContext(vc map[string]string) (VolumeContext, error) {
	var c VolumeContext
	for k, v := range vc {
		switch strings.ToLower(k) {
		case ctxEncryptInTransit:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("volume context %s=%q: want true or false", k, v)
			}
			c.EncryptInTransit = &b
		case ctxMountTargetIP:
			if net.ParseIP(v) == nil {
				return c, fmt.Errorf("volume context %s=%q: not an IP address", k, v)
			}
			c.MountTargetIP = v
		case ctxMountTargetIPMap:
			if err := json.Unmarshal([]byte(v), &c.MountTargetIPMap); err != nil {
				return c, fmt.Errorf("volume context %s: want a JSON object of zone to IP: %v", k, err)
			}
			for zone, ip := range c.MountTargetIPMap {
				if net.ParseIP(ip) == nil {
					return c, fmt.Errorf("volume context %s: zone %s has %q, not an IP address", k, zone, ip)
				}
			}
		case ctxCrossAccount:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("volume context %s=%q: want true or false", k, v)
			}
			c.CrossAccount = b
		case "storage.kubernetes.io/csiprovisioneridentity":
		default:
			// Pod information and ephemeral markers the kubelet may add.
			if strings.HasPrefix(k, "csi.storage.k8s.io/") {
				continue
			}
			return c, fmt.Errorf("volume context key %q is not supported (known: encryptInTransit, mounttargetip, mounttargetipmap, crossaccount)", k)
		}
	}
	return c, nil
}

// MountTargetFor returns the mount target IP to use from zone: an explicit
// IP first, then the zone's entry in the map.
func (c VolumeContext) MountTargetFor(zone string) string {
	if c.MountTargetIP != "" {
		return c.MountTargetIP
	}
	return c.MountTargetIPMap[zone]
}
