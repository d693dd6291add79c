package awsfake

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

var deviceNameRE = regexp.MustCompile(`^/dev/(sd|xvd|hd)[a-z]{1,2}$`)

type attachmentResponse struct {
	ec2Header
	xmlAttachment
}

func (f *Fake) instanceLocked(id string) (*instance, *apiError) {
	if id == "" {
		return nil, ec2Err("MissingParameter", "The request must contain the parameter InstanceId")
	}
	inst, ok := f.instances[id]
	if !ok {
		if !strings.HasPrefix(id, "i-") {
			return nil, ec2Err("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
		return nil, ec2Err("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	return inst, nil
}

// instanceAttachmentsLocked lists what is attached to an instance, by
// device name.
func (f *Fake) instanceAttachmentsLocked(instanceID string) map[string]*volume {
	out := map[string]*volume{}
	for _, v := range f.volumes {
		for _, a := range v.attachments {
			if a.instanceID == instanceID {
				out[a.device] = v
			}
		}
	}
	return out
}

func (f *Fake) ec2AttachVolume(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	v, aerr := f.volumeLocked(q.Get("VolumeId"))
	if aerr != nil {
		return nil, aerr
	}
	inst, aerr := f.instanceLocked(q.Get("InstanceId"))
	if aerr != nil {
		return nil, aerr
	}
	device := q.Get("Device")
	if device == "" {
		return nil, ec2Err("MissingParameter", "The request must contain the parameter device")
	}
	if !deviceNameRE.MatchString(device) {
		return nil, ec2Err("InvalidParameterValue", "Value (%s) for parameter device is invalid. %s is not a valid EBS device name.", device, device)
	}
	if v.zone != inst.zone {
		return nil, ec2Err("InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s'", v.id, inst.id)
	}
	switch {
	case v.state == "in-use" && !v.multiAttach:
		return nil, ec2Err("VolumeInUse", "%s is already attached to an instance", v.id)
	case v.state == "in-use":
		for _, a := range v.attachments {
			if a.instanceID == inst.id {
				return nil, ec2Err("VolumeInUse", "%s is already attached to instance %s", v.id, inst.id)
			}
		}
	case v.state != "available":
		return nil, ec2Err("IncorrectState", "%s is not 'available'.", v.id)
	}
	attached := f.instanceAttachmentsLocked(inst.id)
	if _, used := attached[device]; used {
		return nil, ec2Err("InvalidParameterValue", "Invalid value '%s' for unixDevice. Attachment point %s is already in use", device, device)
	}
	if len(attached) >= f.opts.AttachmentLimit {
		return nil, ec2Err("AttachmentLimitExceeded", "Instance %s has reached its maximum of %d volume attachments.", inst.id, f.opts.AttachmentLimit)
	}
	a := &attachment{instanceID: inst.id, device: device, state: "attaching", attachTime: now}
	v.attachments = append(v.attachments, a)
	v.state = "in-use"
	f.afterLocked(now, VolumeAttach, func(time.Time) {
		if a.state != "attaching" {
			return
		}
		if err := f.deviceAttachLocked(v); err != nil {
			// A device that cannot be set up leaves the attachment stuck
			// in attaching, which is what a caller sees on AWS when the
			// instance never acknowledges the volume.
			f.logf("attach %s: %v", v.id, err)
			return
		}
		a.state = "attached"
	})
	return ec2XML("AttachVolume", reqID, &attachmentResponse{xmlAttachment: attachmentXML(v, a)}), nil
}

func (f *Fake) ec2DetachVolume(q ec2Form, now time.Time, reqID string) (func(http.ResponseWriter), error) {
	v, aerr := f.volumeLocked(q.Get("VolumeId"))
	if aerr != nil {
		return nil, aerr
	}
	if len(v.attachments) == 0 {
		return nil, ec2Err("IncorrectState", "Volume '%s' is in the '%s' state.", v.id, v.state)
	}
	instID, device := q.Get("InstanceId"), q.Get("Device")
	var a *attachment
	for _, c := range v.attachments {
		if (instID == "" || c.instanceID == instID) && (device == "" || c.device == device) {
			a = c
			break
		}
	}
	switch {
	case a == nil:
		return nil, ec2Err("InvalidAttachment.NotFound", "Volume '%s' can not be detached from '%s' because it is not attached", v.id, instID)
	case instID == "" && len(v.attachments) > 1:
		return nil, ec2Err("InvalidParameterCombination", "Volume '%s' is attached to several instances; specify InstanceId.", v.id)
	}
	if a.state == "detaching" {
		return ec2XML("DetachVolume", reqID, &attachmentResponse{xmlAttachment: attachmentXML(v, a)}), nil
	}
	wasAttached := a.state == "attached"
	a.state = "detaching"
	var finish func(at time.Time)
	finish = func(at time.Time) {
		if wasAttached && !anyAttached(v) {
			if err := f.deviceDetachLocked(v); err != nil {
				// The device is still in use (mounted): like an EBS volume
				// the instance has not let go of, it stays detaching until
				// it is released.
				f.logf("detach %s: %v; still detaching", v.id, err)
				f.afterLocked(at, VolumeDetach, finish)
				return
			}
		}
		v.attachments = slices.DeleteFunc(v.attachments, func(c *attachment) bool { return c == a })
		if len(v.attachments) == 0 && v.state == "in-use" {
			v.state = "available"
		}
	}
	f.afterLocked(now, VolumeDetach, finish)
	return ec2XML("DetachVolume", reqID, &attachmentResponse{xmlAttachment: attachmentXML(v, a)}), nil
}

func anyAttached(v *volume) bool {
	for _, a := range v.attachments {
		if a.state == "attached" {
			return true
		}
	}
	return false
}
