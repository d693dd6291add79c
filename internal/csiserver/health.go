package csiserver

import (
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/encoding/protowire"
)

// NodeVolumeConditionCapability is the node capability VOLUME_CONDITION.
// CSI 1.13 replaced it with GET_VOLUME_HEALTH and dropped the name, but the
// kubelets in use today were built against earlier specs and look for it
// (value 4) before reading a volume's condition from NodeGetVolumeStats.
const NodeVolumeConditionCapability = csi.NodeServiceCapability_RPC_Type(4)

// volumeConditionField is NodeGetVolumeStatsResponse field 2, VolumeCondition
// {bool abnormal = 1; string message = 2;}, reserved since CSI 1.13.
const volumeConditionField = 2

// SetVolumeCondition adds the legacy VolumeCondition to a stats response.
// The generated type no longer has the field, so it is written as an
// unknown field, which protobuf serializes as is: older kubelets decode it,
// newer ones skip it.
func SetVolumeCondition(resp *csi.NodeGetVolumeStatsResponse, health []*csi.VolumeHealth_VolumeHealthEntry) {
	var inner []byte
	if len(health) > 0 {
		inner = protowire.AppendTag(inner, 1, protowire.VarintType)
		inner = protowire.AppendVarint(inner, 1)
	}
	inner = protowire.AppendTag(inner, 2, protowire.BytesType)
	inner = protowire.AppendString(inner, HealthMessage(health))
	var field []byte
	field = protowire.AppendTag(field, volumeConditionField, protowire.BytesType)
	field = protowire.AppendBytes(field, inner)
	resp.ProtoReflect().SetUnknown(field)
}

// VolumeCondition decodes the legacy VolumeCondition of a stats response; ok
// is false when it carries none. Tests and tools use it.
func VolumeCondition(resp *csi.NodeGetVolumeStatsResponse) (abnormal bool, message string, ok bool) {
	b := resp.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, "", false
		}
		b = b[n:]
		if num != volumeConditionField || typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false, "", false
			}
			b = b[n:]
			continue
		}
		inner, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false, "", false
		}
		b = b[n:]
		ok = true
		for len(inner) > 0 {
			num, typ, n := protowire.ConsumeTag(inner)
			if n < 0 {
				return false, "", false
			}
			inner = inner[n:]
			switch {
			case num == 1 && typ == protowire.VarintType:
				v, n := protowire.ConsumeVarint(inner)
				if n < 0 {
					return false, "", false
				}
				abnormal, inner = v != 0, inner[n:]
			case num == 2 && typ == protowire.BytesType:
				s, n := protowire.ConsumeString(inner)
				if n < 0 {
					return false, "", false
				}
				message, inner = s, inner[n:]
			default:
				n := protowire.ConsumeFieldValue(num, typ, inner)
				if n < 0 {
					return false, "", false
				}
				inner = inner[n:]
			}
		}
	}
	return abnormal, message, ok
}

// Unhealthy builds one health entry.
func Unhealthy(t csi.VolumeHealthErrorType, reason, message string) *csi.VolumeHealth_VolumeHealthEntry {
	return &csi.VolumeHealth_VolumeHealthEntry{Status: t, Reason: reason, Message: message}
}

// HealthMessage summarizes health entries in one line.
func HealthMessage(health []*csi.VolumeHealth_VolumeHealthEntry) string {
	if len(health) == 0 {
		return "healthy"
	}
	msgs := make([]string, 0, len(health))
	for _, h := range health {
		msgs = append(msgs, h.GetReason()+": "+h.GetMessage())
	}
	return strings.Join(msgs, "; ")
}
