package aws

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

var instanceIDRe = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// deviceNames hands out the device names volumes are attached as. EC2
// wants a name per attachment that is free on the instance; the node finds
// the volume by its ID, so the name only has to be unique. Names handed
// out stay reserved until the attachment is visible in DescribeInstances
// (the caller releases them then), so concurrent attaches to one instance
// never pick the same name.
type deviceNames struct {
	mu       sync.Mutex
	reserved map[string]map[string]string // instance → device → volume
}

func newDeviceNames() *deviceNames {
	return &deviceNames{reserved: map[string]map[string]string{}}
}

// candidates are /dev/xvdba to /dev/xvdzz: never the root device
// (/dev/xvda, /dev/sda1) or the names AMIs map instance stores to, and
// more than any instance can attach.
var candidates = func() []string {
	var out []string
	for a := 'b'; a <= 'z'; a++ {
		for b := 'a'; b <= 'z'; b++ {
			out = append(out, "/dev/xvd"+string(a)+string(b))
		}
	}
	return out
}()

// reserve picks a name not in used and not reserved on the instance.
func (d *deviceNames) reserve(instanceID, volumeID string, used map[string]bool) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.reserved[instanceID]
	if r == nil {
		r = map[string]string{}
		d.reserved[instanceID] = r
	}
	for _, name := range candidates {
		if used[name] || used[strings.Replace(name, "/dev/xvd", "/dev/sd", 1)] {
			continue
		}
		if _, taken := r[name]; taken {
			continue
		}
		r[name] = volumeID
		return name, nil
	}
	return "", fmt.Errorf("instance %s has no free device name left: %w", instanceID, cloud.ErrLimitExceeded)
}

func (d *deviceNames) release(instanceID, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.reserved[instanceID], name)
	if len(d.reserved[instanceID]) == 0 {
		delete(d.reserved, instanceID)
	}
}

// attachmentTo finds the volume's attachment to the instance.
func attachmentTo(v ec2types.Volume, instanceID string) *ec2types.VolumeAttachment {
	for i := range v.Attachments {
		if awssdk.ToString(v.Attachments[i].InstanceId) == instanceID {
			return &v.Attachments[i]
		}
	}
	return nil
}

// AttachVolume attaches a volume to an instance under a free device name
// and waits until EC2 reports it attached. Attaching a volume that is
// already attached (or attaching) to the instance waits for that
// attachment instead.
func (c *EBS) AttachVolume(ctx context.Context, volumeID, nodeID string) (string, error) {
	if !instanceIDRe.MatchString(nodeID) {
		return "", fmt.Errorf("node %s is not an EC2 instance ID (i-…): %w", nodeID, cloud.ErrNotFound)
	}
	for tries := 0; ; tries++ {
		v, err := c.describeVolume(ctx, volumeID)
		if err != nil {
			return "", err
		}
		if a := attachmentTo(v, nodeID); a != nil {
			switch a.State {
			case ec2types.VolumeAttachmentStateAttached:
				return awssdk.ToString(a.Device), nil
			case ec2types.VolumeAttachmentStateAttaching:
				return c.waitAttached(ctx, volumeID, nodeID)
			default:
				// Being detached from this very node: let that finish,
				// then attach afresh.
				if err := c.waitDetached(ctx, volumeID, nodeID); err != nil {
					return "", err
				}
				continue
			}
		}
		if len(v.Attachments) > 0 && !awssdk.ToBool(v.MultiAttachEnabled) {
			return "", fmt.Errorf("volume %s is attached to %s; it can be attached to one node at a time: %w",
				volumeID, awssdk.ToString(v.Attachments[0].InstanceId), cloud.ErrInUse)
		}
		release, retry, err := c.attach(ctx, volumeID, nodeID)
		if retry && tries < 5 {
			continue
		}
		if err != nil {
			return "", err
		}
		dev, err := c.waitAttached(ctx, volumeID, nodeID)
		release()
		return dev, err
	}
}

// attach makes one AttachVolume call under a fresh device name. The name
// stays reserved until the caller calls release, once the instance lists
// the attachment, or for a minute after a failure. retry says the caller
// should look at the volume again: the name was taken by someone else, or
// the volume got attached meanwhile (a retry of a call whose answer was
// lost).
func (c *EBS) attach(ctx context.Context, volumeID, instanceID string) (release func(), retry bool, err error) {
	noop := func() {}
	inst, err := c.describeInstance(ctx, instanceID)
	if err != nil {
		return noop, false, err
	}
	used := map[string]bool{awssdk.ToString(inst.RootDeviceName): true}
	for _, m := range inst.BlockDeviceMappings {
		used[awssdk.ToString(m.DeviceName)] = true
	}
	dev, err := c.devices.reserve(instanceID, volumeID, used)
	if err != nil {
		return noop, false, err
	}
	_, err = c.client.AttachVolume(ctx, &ec2.AttachVolumeInput{Device: &dev, InstanceId: &instanceID, VolumeId: &volumeID})
	if err == nil {
		return func() { c.devices.release(instanceID, dev) }, false, nil
	}
	time.AfterFunc(time.Minute, func() { c.devices.release(instanceID, dev) })
	code := errorCode(err)
	switch {
	case code == "VolumeInUse":
		return noop, true, mapError(err)
	case code == "InvalidParameterValue" && strings.Contains(err.Error(), "in use"):
		c.log.Info("device name taken on the instance, trying another", "instance", instanceID, "device", dev)
		return noop, true, mapError(err)
	}
	return noop, false, fmt.Errorf("attach volume %s to %s as %s: %w", volumeID, instanceID, dev, mapError(err))
}

// waitAttached waits for the volume's attachment to the instance to be
// "attached". One stuck in "attaching" for longer than AttachStuckAfter
// (counted from EC2's attach time, so across retried calls) is detached,
// and the call fails so that the caller retries from scratch.
func (c *EBS) waitAttached(ctx context.Context, volumeID, instanceID string) (string, error) {
	var dev string
	var state ec2types.VolumeAttachmentState
	firstSeen := time.Now()
	err := c.waits.poll(ctx, func() (bool, error) {
		v, err := c.describeVolume(ctx, volumeID)
		switch {
		case errors.Is(err, cloud.ErrThrottled) || errors.Is(err, cloud.ErrUnavailable):
			return false, nil
		case err != nil:
			return false, err
		}
		a := attachmentTo(v, instanceID)
		if a == nil {
			return false, fmt.Errorf("volume %s: its attachment to %s disappeared while attaching: %w", volumeID, instanceID, cloud.ErrUnavailable)
		}
		dev, state = awssdk.ToString(a.Device), a.State
		switch a.State {
		case ec2types.VolumeAttachmentStateAttached:
			return true, nil
		case ec2types.VolumeAttachmentStateAttaching:
			since := firstSeen
			if a.AttachTime != nil && a.AttachTime.Before(since) {
				since = *a.AttachTime
			}
			if stuck := time.Since(since); stuck > c.waits.AttachStuckAfter {
				return false, c.unstick(ctx, volumeID, instanceID, dev, stuck)
			}
			return false, nil
		}
		return false, fmt.Errorf("volume %s: its attachment to %s is %s while attaching: %w", volumeID, instanceID, a.State, cloud.ErrUnavailable)
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("volume %s is still %s on %s: %w", volumeID, state, instanceID, err)
		}
		return "", err
	}
	return dev, nil
}

// unstick detaches an attachment that never completed.
func (c *EBS) unstick(ctx context.Context, volumeID, instanceID, dev string, stuck time.Duration) error {
	c.log.Warn("EBS attachment stuck in attaching; detaching it so that the attach is retried",
		"volume", volumeID, "instance", instanceID, "device", dev, "for", stuck.Round(time.Millisecond))
	_, err := c.client.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: &volumeID, InstanceId: &instanceID})
	if err != nil {
		err = fmt.Errorf("; detaching it failed too: %w", mapError(err))
	} else {
		err = errors.New("; it has been detached so that the next attempt starts afresh")
	}
	return fmt.Errorf("volume %s stayed attaching to %s as %s for %s%v: %w",
		volumeID, instanceID, dev, stuck.Round(time.Millisecond), err, cloud.ErrUnavailable)
}

// DetachVolume detaches a volume from an instance (from every instance when
// nodeID is empty) and waits until it is gone. A volume not attached there
// is success.
func (c *EBS) DetachVolume(ctx context.Context, volumeID, nodeID string) error {
	nodes := []string{nodeID}
	if nodeID == "" {
		v, err := c.describeVolume(ctx, volumeID)
		if err != nil {
			return err
		}
		nodes = nodes[:0]
		for _, a := range v.Attachments {
			nodes = append(nodes, awssdk.ToString(a.InstanceId))
		}
	}
	for _, n := range nodes {
		if !instanceIDRe.MatchString(n) {
			continue // nothing can be attached to what is not an instance
		}
		_, err := c.client.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: &volumeID, InstanceId: &n})
		switch code := errorCode(err); {
		case err == nil:
		case code == "IncorrectState" || code == "InvalidAttachment.NotFound":
			continue // not attached there
		default:
			return fmt.Errorf("detach volume %s from %s: %w", volumeID, n, mapError(err))
		}
		if err := c.waitDetached(ctx, volumeID, n); err != nil {
			return err
		}
	}
	return nil
}

// waitDetached waits until the volume has no attachment to the instance.
func (c *EBS) waitDetached(ctx context.Context, volumeID, instanceID string) error {
	var state ec2types.VolumeAttachmentState
	err := c.waits.poll(ctx, func() (bool, error) {
		v, err := c.describeVolume(ctx, volumeID)
		switch {
		case errors.Is(err, cloud.ErrNotFound):
			return true, nil
		case errors.Is(err, cloud.ErrThrottled) || errors.Is(err, cloud.ErrUnavailable):
			return false, nil
		case err != nil:
			return false, err
		}
		a := attachmentTo(v, instanceID)
		if a == nil || a.State == ec2types.VolumeAttachmentStateDetached {
			return true, nil
		}
		state = a.State
		return false, nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("volume %s is still %s on %s (a volume still mounted on the node does not detach): %w", volumeID, state, instanceID, err)
	}
	return err
}
