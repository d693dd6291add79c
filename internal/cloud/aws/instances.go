package aws

import (
	"context"
	"fmt"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

func (c *EBS) fetchInstances(ctx context.Context, ids []string) (map[string]ec2types.Instance, string, error) {
	found := make(map[string]ec2types.Instance, len(ids))
	var reqID string
	in := &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: awssdk.String("instance-id"), Values: ids}}}
	for {
		out, err := c.client.DescribeInstances(ctx, in)
		if err != nil {
			return nil, "", mapError(err)
		}
		reqID = requestID(out.ResultMetadata)
		for _, r := range out.Reservations {
			for _, inst := range r.Instances {
				found[awssdk.ToString(inst.InstanceId)] = inst
			}
		}
		if awssdk.ToString(out.NextToken) == "" {
			return found, reqID, nil
		}
		in.NextToken = out.NextToken
	}
}

// describeInstance looks an instance up through the batcher.
func (c *EBS) describeInstance(ctx context.Context, id string) (ec2types.Instance, error) {
	if !instanceIDRe.MatchString(id) {
		return ec2types.Instance{}, fmt.Errorf("node %s is not an EC2 instance ID (i-…): %w", id, cloud.ErrNotFound)
	}
	inst, found, reqID, err := c.instances.get(ctx, id)
	if err != nil {
		return inst, fmt.Errorf("describe instance %s: %w", id, err)
	}
	if !found {
		return inst, notFound("EC2", "DescribeInstances", "instance "+id, reqID)
	}
	return inst, nil
}

// DescribeInstance returns an instance's zone, type and attachment limit.
// A terminated instance does not exist for this purpose.
func (c *EBS) DescribeInstance(ctx context.Context, nodeID string) (*cloud.Instance, error) {
	inst, err := c.describeInstance(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	if s := inst.State; s != nil && (s.Name == ec2types.InstanceStateNameTerminated || s.Name == ec2types.InstanceStateNameShuttingDown) {
		return nil, fmt.Errorf("instance %s is %s: %w", nodeID, s.Name, cloud.ErrNotFound)
	}
	out := &cloud.Instance{ID: nodeID, Type: string(inst.InstanceType)}
	if inst.Placement != nil {
		out.AvailabilityZone = awssdk.ToString(inst.Placement.AvailabilityZone)
	}
	out.AttachLimit = AttachLimit(out.Type, len(inst.NetworkInterfaces), 1)
	return out, nil
}
