package aws

import (
	"context"
	"errors"
	"fmt"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

// change is one ModifyVolume request and how to tell whether a volume or
// a modification already gives what it asks.
type change struct {
	req *ec2.ModifyVolumeInput
	// has reports whether the volume already is as asked.
	has func(v ec2types.Volume) bool
	// aims reports whether a modification in progress goes where asked.
	aims func(m ec2types.VolumeModification) bool
}

// ResizeVolume grows a volume and waits until EC2 applies the new size
// (the modification is optimizing or completed; the node can grow the
// file system from then on). It returns the volume's new size.
func (c *EBS) ResizeVolume(ctx context.Context, volumeID string, sizeGiB int64) (int64, error) {
	size := int32(sizeGiB)
	ch := change{
		req:  &ec2.ModifyVolumeInput{VolumeId: &volumeID, Size: &size},
		has:  func(v ec2types.Volume) bool { return awssdk.ToInt32(v.Size) >= size },
		aims: func(m ec2types.VolumeModification) bool { return awssdk.ToInt32(m.TargetSize) >= size },
	}
	got, err := c.modify(ctx, volumeID, ch)
	if err != nil {
		return 0, fmt.Errorf("resize volume %s to %d GiB: %w", volumeID, sizeGiB, err)
	}
	return max(got, sizeGiB), nil
}

// ModifyVolume changes a volume's type, IOPS or throughput and waits until
// EC2 applies them.
func (c *EBS) ModifyVolume(ctx context.Context, volumeID string, in cloud.ModifyVolumeInput) error {
	req := &ec2.ModifyVolumeInput{VolumeId: &volumeID}
	if in.Type != "" {
		req.VolumeType = ec2types.VolumeType(in.Type)
	}
	if in.IOPS > 0 {
		req.Iops = awssdk.Int32(int32(in.IOPS))
	}
	if in.Throughput > 0 {
		req.Throughput = awssdk.Int32(int32(in.Throughput))
	}
	ch := change{
		req: req,
		has: func(v ec2types.Volume) bool {
			return (in.Type == "" || string(v.VolumeType) == in.Type) &&
				(in.IOPS == 0 || int64(awssdk.ToInt32(v.Iops)) == in.IOPS) &&
				(in.Throughput == 0 || int64(awssdk.ToInt32(v.Throughput)) == in.Throughput)
		},
		aims: func(m ec2types.VolumeModification) bool {
			return (in.Type == "" || string(m.TargetVolumeType) == in.Type) &&
				(in.IOPS == 0 || int64(awssdk.ToInt32(m.TargetIops)) == in.IOPS) &&
				(in.Throughput == 0 || int64(awssdk.ToInt32(m.TargetThroughput)) == in.Throughput)
		},
	}
	if _, err := c.modify(ctx, volumeID, ch); err != nil {
		return fmt.Errorf("modify volume %s: %w", volumeID, err)
	}
	return nil
}

// modify applies a change unless the volume or a modification in progress
// already gives it, and waits until it is applied. It returns the
// volume's size afterwards. EC2 allows one modification at a time, so a
// different one still in progress is ErrInUse: the caller retries later.
func (c *EBS) modify(ctx context.Context, volumeID string, ch change) (int64, error) {
	for tries := 0; ; tries++ {
		m, err := c.lastModification(ctx, volumeID)
		if err != nil {
			return 0, err
		}
		if m != nil && inProgress(m.ModificationState) && ch.aims(*m) {
			return c.waitModified(ctx, volumeID)
		}
		v, err := c.describeVolume(ctx, volumeID)
		if err != nil {
			return 0, err
		}
		if ch.has(v) {
			return int64(awssdk.ToInt32(v.Size)), nil
		}
		if m != nil && inProgress(m.ModificationState) {
			return 0, fmt.Errorf("another modification of volume %s is %s (to %d GiB, %s); EC2 allows one at a time, retry when it completes: %w",
				volumeID, m.ModificationState, awssdk.ToInt32(m.TargetSize), m.TargetVolumeType, cloud.ErrInUse)
		}
		_, err = c.client.ModifyVolume(ctx, ch.req)
		if errorCode(err) == "IncorrectModificationState" && tries < 2 {
			continue // one started meanwhile, perhaps our own whose answer was lost
		}
		if err != nil {
			return 0, mapError(err)
		}
		return c.waitModified(ctx, volumeID)
	}
}

func inProgress(s ec2types.VolumeModificationState) bool {
	return s == ec2types.VolumeModificationStateModifying || s == ec2types.VolumeModificationStateOptimizing
}

// lastModification returns the volume's latest modification, nil when it
// never had one.
func (c *EBS) lastModification(ctx context.Context, volumeID string) (*ec2types.VolumeModification, error) {
	out, err := c.client.DescribeVolumesModifications(ctx, &ec2.DescribeVolumesModificationsInput{VolumeIds: []string{volumeID}})
	if errorCode(err) == "InvalidVolumeModification.NotFound" {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(err)
	}
	var last *ec2types.VolumeModification
	for i := range out.VolumesModifications {
		m := &out.VolumesModifications[i]
		if awssdk.ToString(m.VolumeId) == volumeID && (last == nil || awssdk.ToTime(m.StartTime).After(awssdk.ToTime(last.StartTime))) {
			last = m
		}
	}
	return last, nil
}

// waitModified waits until the volume's modification is optimizing or
// completed: from then on the volume has its new size and performance.
func (c *EBS) waitModified(ctx context.Context, volumeID string) (int64, error) {
	var state ec2types.VolumeModificationState
	var size int64
	err := c.waits.poll(ctx, func() (bool, error) {
		m, err := c.lastModification(ctx, volumeID)
		switch {
		case errors.Is(err, cloud.ErrThrottled) || errors.Is(err, cloud.ErrUnavailable):
			return false, nil
		case err != nil:
			return false, err
		case m == nil:
			return false, fmt.Errorf("volume %s has no modification in progress: %w", volumeID, cloud.ErrUnavailable)
		}
		state, size = m.ModificationState, int64(awssdk.ToInt32(m.TargetSize))
		switch m.ModificationState {
		case ec2types.VolumeModificationStateOptimizing, ec2types.VolumeModificationStateCompleted:
			return true, nil
		case ec2types.VolumeModificationStateFailed:
			return false, fmt.Errorf("EC2 failed to modify volume %s: %s: %w", volumeID, awssdk.ToString(m.StatusMessage), cloud.ErrUnavailable)
		}
		return false, nil
	})
	if err != nil && ctx.Err() != nil {
		return 0, fmt.Errorf("the modification of volume %s is still %s: %w", volumeID, state, err)
	}
	return size, err
}
