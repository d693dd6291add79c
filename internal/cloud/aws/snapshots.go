package aws

import (
	"context"
	"fmt"
	"sort"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ec2csi/ec2csi/internal/cloud"
	"github.com/ec2csi/ec2csi/internal/ebs"
)

// CreateSnapshot snapshots a volume. EC2's CreateSnapshot has no client
// token, so it is retried only after throttling, when EC2 did nothing: a
// retry after a lost answer could make a second snapshot, while failing
// lets the driver find the first by its name tag.
func (c *EBS) CreateSnapshot(ctx context.Context, in cloud.CreateSnapshotInput) (*cloud.Snapshot, error) {
	req := &ec2.CreateSnapshotInput{VolumeId: &in.VolumeID}
	if len(in.Tags) > 0 {
		req.TagSpecifications = []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: ec2Tags(in.Tags)}}
	}
	out, err := c.client.CreateSnapshot(ctx, req, func(o *ec2.Options) {
		if r, ok := o.Retryer.(awssdk.RetryerV2); ok {
			o.Retryer = throttleOnly{r}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot volume %s: %w", in.VolumeID, mapError(err))
	}
	return snapshot(ec2types.Snapshot{
		SnapshotId: out.SnapshotId, VolumeId: out.VolumeId, VolumeSize: out.VolumeSize,
		State: out.State, StartTime: out.StartTime, Tags: out.Tags,
	}), nil
}

// DeleteSnapshot deletes a snapshot.
func (c *EBS) DeleteSnapshot(ctx context.Context, id string) error {
	if _, err := c.client.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: &id}); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, mapError(err))
	}
	return nil
}

// DescribeSnapshot returns one snapshot.
func (c *EBS) DescribeSnapshot(ctx context.Context, id string) (*cloud.Snapshot, error) {
	out, err := c.client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil {
		return nil, fmt.Errorf("describe snapshot %s: %w", id, mapError(err))
	}
	for _, s := range out.Snapshots {
		if awssdk.ToString(s.SnapshotId) == id {
			return snapshot(s), nil
		}
	}
	return nil, notFound("EC2", "DescribeSnapshots", "snapshot "+id, requestID(out.ResultMetadata))
}

// ListSnapshots returns the account's snapshots that pass f, in ID order,
// maxResults at a time (0: all). Like ListVolumes, each page lists every
// match (1,000 a call) and cuts its part, so the token is the last ID
// returned. An unknown snapshot ID in f gives an empty list.
func (c *EBS) ListSnapshots(ctx context.Context, f ebs.SnapshotFilter, maxResults int, token string) (cloud.Page[*cloud.Snapshot], error) {
	var page cloud.Page[*cloud.Snapshot]
	after, err := decodePageToken("snap", token)
	if err != nil {
		return page, err
	}
	var filters []ec2types.Filter
	if f.SnapshotID != "" {
		filters = append(filters, ec2types.Filter{Name: awssdk.String("snapshot-id"), Values: []string{f.SnapshotID}})
	}
	if f.VolumeID != "" {
		filters = append(filters, ec2types.Filter{Name: awssdk.String("volume-id"), Values: []string{f.VolumeID}})
	}
	for _, k := range sortedKeys(f.Tags) {
		filters = append(filters, ec2types.Filter{Name: awssdk.String("tag:" + k), Values: []string{f.Tags[k]}})
	}
	var all []ec2types.Snapshot
	p := ec2.NewDescribeSnapshotsPaginator(c.client, &ec2.DescribeSnapshotsInput{
		OwnerIds:   []string{"self"},
		Filters:    filters,
		MaxResults: awssdk.Int32(1000),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return page, fmt.Errorf("list snapshots: %w", mapError(err))
		}
		all = append(all, out.Snapshots...)
	}
	sort.Slice(all, func(i, j int) bool { return awssdk.ToString(all[i].SnapshotId) < awssdk.ToString(all[j].SnapshotId) })
	for _, s := range all {
		if awssdk.ToString(s.SnapshotId) <= after {
			continue
		}
		if maxResults > 0 && len(page.Items) == maxResults {
			page.NextToken = encodePageToken("snap", page.Items[len(page.Items)-1].ID)
			break
		}
		page.Items = append(page.Items, snapshot(s))
	}
	return page, nil
}

func snapshot(s ec2types.Snapshot) *cloud.Snapshot {
	return &cloud.Snapshot{
		ID:         awssdk.ToString(s.SnapshotId),
		VolumeID:   awssdk.ToString(s.VolumeId),
		SizeGiB:    int64(awssdk.ToInt32(s.VolumeSize)),
		State:      string(s.State),
		StartTime:  awssdk.ToTime(s.StartTime),
		Tags:       tagMap(s.Tags),
		ReadyToUse: s.State == ec2types.SnapshotStateCompleted,
	}
}
