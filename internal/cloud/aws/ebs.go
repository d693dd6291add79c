package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

// EC2 takes at most 200 values in one filter; batches stay below.
const maxFilterValues = 200

// EBS implements the EBS driver's cloud interface (ebs.Cloud) with the EC2
// API. Look-ups of single volumes and instances are batched, so that many
// concurrent waits share DescribeVolumes calls.
type EBS struct {
	client    *ec2.Client
	waits     WaitOptions
	log       *slog.Logger
	volumes   *batcher[ec2types.Volume]
	instances *batcher[ec2types.Instance]
	devices   *deviceNames
	// ghosts remembers client tokens whose volume EBS deleted while
	// creating it, so that a retried CreateVolume repeats the reason
	// instead of EC2's bare IdempotentParameterMismatch.
	ghosts sync.Map
}

// NewEBS returns the EC2 client for EBS; cfg comes from
// config.LoadDefaultConfig (credentials, region, AWS_ENDPOINT_URL_EC2).
func NewEBS(cfg awssdk.Config, opts Options, log *slog.Logger) *EBS {
	if log == nil {
		log = slog.Default()
	}
	c := &EBS{
		client:  ec2.NewFromConfig(configure(cfg, &opts)),
		waits:   opts.Waits.withDefaults(),
		log:     log,
		devices: newDeviceNames(),
	}
	c.volumes = &batcher[ec2types.Volume]{window: c.waits.BatchWindow, max: maxFilterValues, fetch: c.fetchVolumes}
	c.instances = &batcher[ec2types.Instance]{window: c.waits.BatchWindow, max: maxFilterValues, fetch: c.fetchInstances}
	return c
}

// Ready is nil once constructed; see EFS.Ready.
func (c *EBS) Ready(context.Context) error { return nil }

func (c *EBS) fetchVolumes(ctx context.Context, ids []string) (map[string]ec2types.Volume, string, error) {
	found := make(map[string]ec2types.Volume, len(ids))
	var reqID string
	// A filter, not VolumeIds: one missing volume must not fail the
	// look-up of the others.
	in := &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: awssdk.String("volume-id"), Values: ids}}}
	for {
		out, err := c.client.DescribeVolumes(ctx, in)
		if err != nil {
			return nil, "", mapError(err)
		}
		reqID = requestID(out.ResultMetadata)
		for _, v := range out.Volumes {
			found[awssdk.ToString(v.VolumeId)] = v
		}
		if awssdk.ToString(out.NextToken) == "" {
			return found, reqID, nil
		}
		in.NextToken = out.NextToken
	}
}

// describeVolume looks a volume up through the batcher.
func (c *EBS) describeVolume(ctx context.Context, id string) (ec2types.Volume, error) {
	v, found, reqID, err := c.volumes.get(ctx, id)
	if err != nil {
		return v, fmt.Errorf("describe volume %s: %w", id, err)
	}
	if !found {
		return v, notFound("EC2", "DescribeVolumes", "volume "+id, reqID)
	}
	return v, nil
}

// CreateVolume creates a volume and waits until it is available. The
// client token makes retries return the same volume. A volume that
// disappears while being created is EBS failing to use its KMS key; the
// error says which key and which permissions, and is not retried here.
func (c *EBS) CreateVolume(ctx context.Context, in cloud.CreateVolumeInput) (*cloud.Volume, error) {
	req := &ec2.CreateVolumeInput{AvailabilityZone: awssdk.String(in.AvailabilityZone)}
	if in.ClientToken != "" {
		req.ClientToken = awssdk.String(in.ClientToken)
	}
	if in.SizeGiB > 0 {
		req.Size = awssdk.Int32(int32(in.SizeGiB))
	}
	if in.Type != "" {
		req.VolumeType = ec2types.VolumeType(in.Type)
	}
	if in.IOPS > 0 {
		req.Iops = awssdk.Int32(int32(in.IOPS))
	}
	if in.Throughput > 0 {
		req.Throughput = awssdk.Int32(int32(in.Throughput))
	}
	if in.Encrypted {
		req.Encrypted = awssdk.Bool(true)
	}
	if in.KMSKeyID != "" {
		req.KmsKeyId = awssdk.String(in.KMSKeyID)
	}
	if in.SnapshotID != "" {
		req.SnapshotId = awssdk.String(in.SnapshotID)
	}
	if in.MultiAttach {
		req.MultiAttachEnabled = awssdk.Bool(true)
	}
	if len(in.Tags) > 0 {
		req.TagSpecifications = []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: ec2Tags(in.Tags)}}
	}
	out, err := c.client.CreateVolume(ctx, req)
	if err != nil {
		err = mapError(err)
		if ghost, ok := c.ghosts.Load(in.ClientToken); ok && errors.Is(err, cloud.ErrParameterMismatch) {
			return nil, fmt.Errorf("%w; EC2 keeps the client token of that failed volume, so this volume name cannot be created again: fix the key, then recreate the PersistentVolumeClaim (%v)", ghost.(error), err)
		}
		return nil, fmt.Errorf("create volume: %w", err)
	}
	created := ec2types.Volume{
		VolumeId: out.VolumeId, Size: out.Size, VolumeType: out.VolumeType, Iops: out.Iops, Throughput: out.Throughput,
		Encrypted: out.Encrypted, KmsKeyId: out.KmsKeyId, AvailabilityZone: out.AvailabilityZone, SnapshotId: out.SnapshotId,
		MultiAttachEnabled: out.MultiAttachEnabled, State: out.State, Tags: out.Tags, CreateTime: out.CreateTime,
	}
	id := awssdk.ToString(out.VolumeId)
	if created.State == ec2types.VolumeStateAvailable {
		return volume(created), nil
	}
	createReqID := requestID(out.ResultMetadata)
	start, seen := time.Now(), false
	var last ec2types.Volume
	err = c.waits.poll(ctx, func() (bool, error) {
		v, found, _, err := c.volumes.get(ctx, id)
		switch {
		case err != nil && (errors.Is(err, cloud.ErrThrottled) || errors.Is(err, cloud.ErrUnavailable)):
			return false, nil // keep waiting; the next poll may get through
		case err != nil:
			return false, err
		case !found || v.State == ec2types.VolumeStateDeleting || v.State == ec2types.VolumeStateDeleted:
			if seen || time.Since(start) > c.waits.CreateInvisibleFor {
				return false, c.ghost(created, in, createReqID)
			}
			return false, nil // not yet visible: EC2 is eventually consistent
		}
		seen, last = true, v
		switch v.State {
		case ec2types.VolumeStateAvailable:
			return true, nil
		case ec2types.VolumeStateError:
			return false, fmt.Errorf("volume %s went into the error state while being created (CreateVolume request ID %s): %w", id, createReqID, cloud.ErrUnavailable)
		}
		return false, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("volume %s is still %s: %w", id, stateOf(last, created), err)
		}
		return nil, err
	}
	return volume(last), nil
}

func stateOf(last, first ec2types.Volume) ec2types.VolumeState {
	if last.State != "" {
		return last.State
	}
	return first.State
}

// ghost explains a volume EBS deleted while creating it and remembers its
// token.
func (c *EBS) ghost(v ec2types.Volume, in cloud.CreateVolumeInput, reqID string) error {
	id := awssdk.ToString(v.VolumeId)
	var err error
	if key := awssdk.ToString(v.KmsKeyId); key != "" || in.Encrypted || awssdk.ToBool(v.Encrypted) {
		if key == "" {
			key = in.KMSKeyID
		}
		if key == "" {
			key = "the account's default EBS key (alias/aws/ebs)"
		}
		err = fmt.Errorf("volume %s vanished while it was being created (CreateVolume request ID %s): EBS could not use KMS key %s to encrypt it; "+
			"allow the controller's IAM role kms:CreateGrant, kms:Decrypt and kms:GenerateDataKeyWithoutPlaintext on that key, "+
			"and check that the key is enabled and its key policy lets the role use it: %w", id, reqID, key, cloud.ErrUnauthorized)
	} else {
		err = fmt.Errorf("volume %s vanished while it was being created (CreateVolume request ID %s) and EC2 gave no reason: %w", id, reqID, cloud.ErrUnavailable)
	}
	if in.ClientToken != "" {
		c.ghosts.Store(in.ClientToken, err)
	}
	c.log.Error("EBS deleted a volume while creating it", "volume", id, "error", err)
	return err
}

// DeleteVolume deletes a volume; EC2 finishes the deletion in the
// background.
func (c *EBS) DeleteVolume(ctx context.Context, id string) error {
	if _, err := c.client.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: &id}); err != nil {
		return fmt.Errorf("delete volume %s: %w", id, mapError(err))
	}
	return nil
}

// DescribeVolume returns one volume.
func (c *EBS) DescribeVolume(ctx context.Context, id string) (*cloud.Volume, error) {
	v, err := c.describeVolume(ctx, id)
	if err != nil {
		return nil, err
	}
	return volume(v), nil
}

// liveVolumeStates are the states ListVolumes shows: a volume being
// deleted is gone for Kubernetes.
var liveVolumeStates = []string{"creating", "available", "in-use", "error"}

// ListVolumes returns volumes in ID order, maxResults at a time (0: all).
// EC2 lists in no particular order, so every page lists all volumes (500
// a call) and cuts its part; the token is the last ID returned, so pages
// stay consistent while volumes come and go.
func (c *EBS) ListVolumes(ctx context.Context, maxResults int, token string) (cloud.Page[*cloud.Volume], error) {
	var page cloud.Page[*cloud.Volume]
	after, err := decodePageToken("vol", token)
	if err != nil {
		return page, err
	}
	var all []ec2types.Volume
	p := ec2.NewDescribeVolumesPaginator(c.client, &ec2.DescribeVolumesInput{
		Filters:    []ec2types.Filter{{Name: awssdk.String("status"), Values: liveVolumeStates}},
		MaxResults: awssdk.Int32(500),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return page, fmt.Errorf("list volumes: %w", mapError(err))
		}
		all = append(all, out.Volumes...)
	}
	sort.Slice(all, func(i, j int) bool { return awssdk.ToString(all[i].VolumeId) < awssdk.ToString(all[j].VolumeId) })
	for _, v := range all {
		if awssdk.ToString(v.VolumeId) <= after {
			continue
		}
		if maxResults > 0 && len(page.Items) == maxResults {
			page.NextToken = encodePageToken("vol", page.Items[len(page.Items)-1].ID)
			break
		}
		page.Items = append(page.Items, volume(v))
	}
	return page, nil
}

// TagVolume adds or replaces tags on a volume.
func (c *EBS) TagVolume(ctx context.Context, volumeID string, tags map[string]string) error {
	if len(tags) == 0 {
		return nil
	}
	_, err := c.client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{volumeID}, Tags: ec2Tags(tags)})
	if err != nil {
		return fmt.Errorf("tag volume %s: %w", volumeID, mapError(err))
	}
	return nil
}

// volume converts EC2's volume.
func volume(v ec2types.Volume) *cloud.Volume {
	out := &cloud.Volume{
		ID:               awssdk.ToString(v.VolumeId),
		SizeGiB:          int64(awssdk.ToInt32(v.Size)),
		Type:             string(v.VolumeType),
		IOPS:             int64(awssdk.ToInt32(v.Iops)),
		Throughput:       int64(awssdk.ToInt32(v.Throughput)),
		Encrypted:        awssdk.ToBool(v.Encrypted),
		KMSKeyID:         awssdk.ToString(v.KmsKeyId),
		AvailabilityZone: awssdk.ToString(v.AvailabilityZone),
		SnapshotID:       awssdk.ToString(v.SnapshotId),
		MultiAttach:      awssdk.ToBool(v.MultiAttachEnabled),
		State:            string(v.State),
		Tags:             tagMap(v.Tags),
		CreateTime:       awssdk.ToTime(v.CreateTime),
	}
	for _, a := range v.Attachments {
		out.Attachments = append(out.Attachments, cloud.Attachment{
			NodeID: awssdk.ToString(a.InstanceId),
			Device: awssdk.ToString(a.Device),
			State:  string(a.State),
		})
	}
	return out
}

func ec2Tags(tags map[string]string) []ec2types.Tag {
	out := make([]ec2types.Tag, 0, len(tags))
	for _, k := range sortedKeys(tags) {
		out = append(out, ec2types.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
	}
	return out
}

func tagMap(tags []ec2types.Tag) map[string]string {
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		out[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Page tokens name their kind and the last ID returned; they are opaque to
// callers.
func encodePageToken(kind, lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + lastID))
}

func decodePageToken(kind, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		if id, ok := strings.CutPrefix(string(b), kind+":"); ok && id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("page token %q was not made by this listing: %w", token, cloud.ErrInvalidArgument)
}
