package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	efstypes "github.com/aws/aws-sdk-go-v2/service/efs/types"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

// TagClientToken carries the caller's client token on an access point
// whose token had to be hashed to fit EFS's 64 characters (see wireToken);
// it is set only when the caller tags its access points.
const TagClientToken = "ec2csi.io/client-token"

// accessPointPageSize is how many access points one DescribeAccessPoints
// call lists: EFS's maximum, so that a file system with 10,000 access
// points is listed in 10 calls.
const accessPointPageSize = 1000

// EFS implements the EFS driver's cloud interface (efs.Cloud) with the
// EFS API.
type EFS struct {
	client *efs.Client
}

// NewEFS returns the EFS API client; cfg comes from config.LoadDefaultConfig
// (credentials, region, AWS_ENDPOINT_URL_EFS).
func NewEFS(cfg awssdk.Config, opts Options) *EFS {
	return &EFS{client: efs.NewFromConfig(configure(cfg, &opts))}
}

// DescribeFileSystem returns one file system.
func (e *EFS) DescribeFileSystem(ctx context.Context, id string) (*cloud.FileSystem, error) {
	out, err := e.client.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{FileSystemId: &id})
	if err != nil {
		return nil, fmt.Errorf("describe file system %s: %w", id, mapError(err))
	}
	for _, fs := range out.FileSystems {
		if awssdk.ToString(fs.FileSystemId) == id {
			f := &cloud.FileSystem{
				ID:               id,
				Name:             awssdk.ToString(fs.Name),
				AvailabilityZone: awssdk.ToString(fs.AvailabilityZoneName),
				CreationTime:     awssdk.ToTime(fs.CreationTime),
				LifeCycleState:   string(fs.LifeCycleState),
			}
			if fs.SizeInBytes != nil {
				f.SizeBytes = fs.SizeInBytes.Value
			}
			return f, nil
		}
	}
	return nil, notFound("EFS", "DescribeFileSystems", "file system "+id, requestID(out.ResultMetadata))
}

// DescribeMountTargets returns every mount target of a file system.
func (e *EFS) DescribeMountTargets(ctx context.Context, fileSystemID string) ([]cloud.MountTarget, error) {
	var out []cloud.MountTarget
	p := efs.NewDescribeMountTargetsPaginator(e.client, &efs.DescribeMountTargetsInput{FileSystemId: &fileSystemID})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe mount targets of %s: %w", fileSystemID, mapError(err))
		}
		for _, mt := range page.MountTargets {
			out = append(out, cloud.MountTarget{
				ID:               awssdk.ToString(mt.MountTargetId),
				FileSystemID:     awssdk.ToString(mt.FileSystemId),
				AvailabilityZone: awssdk.ToString(mt.AvailabilityZoneName),
				IPAddress:        awssdk.ToString(mt.IpAddress),
			})
		}
	}
	return out, nil
}

// CreateAccessPoint creates an access point. EFS scopes client tokens to
// the account and region, not to the file system, so the token sent folds
// the file system in: the same volume name on two file systems makes two
// access points instead of failing. A token reused with other parameters
// is cloud.ErrParameterMismatch (EFS's AccessPointAlreadyExists).
func (e *EFS) CreateAccessPoint(ctx context.Context, in cloud.CreateAccessPointInput) (*cloud.AccessPoint, error) {
	if in.FileSystemID == "" || in.ClientToken == "" {
		return nil, fmt.Errorf("create access point: file system and client token are required: %w", cloud.ErrInvalidArgument)
	}
	token, hashed := wireToken(in.FileSystemID, in.ClientToken)
	req := &efs.CreateAccessPointInput{
		ClientToken:  &token,
		FileSystemId: &in.FileSystemID,
	}
	if in.PosixUser != nil {
		req.PosixUser = &efstypes.PosixUser{Uid: &in.PosixUser.UID, Gid: &in.PosixUser.GID}
	}
	if in.RootDirectory != "" || in.CreationInfo != nil {
		req.RootDirectory = &efstypes.RootDirectory{}
		if in.RootDirectory != "" {
			req.RootDirectory.Path = awssdk.String(in.RootDirectory)
		}
		if ci := in.CreationInfo; ci != nil {
			req.RootDirectory.CreationInfo = &efstypes.CreationInfo{OwnerUid: &ci.OwnerUID, OwnerGid: &ci.OwnerGID, Permissions: awssdk.String(ci.Permissions)}
		}
	}
	tags := in.Tags
	if hashed && len(tags) > 0 {
		tags = make(map[string]string, len(in.Tags)+1)
		for k, v := range in.Tags {
			tags[k] = v
		}
		tags[TagClientToken] = in.ClientToken
	}
	for _, k := range sortedKeys(tags) {
		req.Tags = append(req.Tags, efstypes.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
	}
	out, err := e.client.CreateAccessPoint(ctx, req)
	if err != nil {
		return nil, mapError(err) // the caller names the file system and volume
	}
	ap := &cloud.AccessPoint{
		ID:            awssdk.ToString(out.AccessPointId),
		FileSystemID:  awssdk.ToString(out.FileSystemId),
		ClientToken:   in.ClientToken,
		RootDirectory: in.RootDirectory,
		PosixUser:     in.PosixUser,
		CreationInfo:  in.CreationInfo,
		Tags:          in.Tags,
	}
	if out.RootDirectory != nil && out.RootDirectory.Path != nil {
		ap.RootDirectory = *out.RootDirectory.Path
	}
	return ap, nil
}

// DescribeAccessPoint returns one access point.
func (e *EFS) DescribeAccessPoint(ctx context.Context, id string) (*cloud.AccessPoint, error) {
	out, err := e.client.DescribeAccessPoints(ctx, &efs.DescribeAccessPointsInput{AccessPointId: &id})
	if err != nil {
		return nil, fmt.Errorf("describe access point %s: %w", id, mapError(err))
	}
	for _, ap := range out.AccessPoints {
		if awssdk.ToString(ap.AccessPointId) == id {
			return accessPoint(ap), nil
		}
	}
	return nil, notFound("EFS", "DescribeAccessPoints", "access point "+id, requestID(out.ResultMetadata))
}

// ListAccessPoints calls fn with each page of a file system's access
// points, 1,000 a page. Access points being deleted are left out: they
// are going away, and their client tokens with them.
func (e *EFS) ListAccessPoints(ctx context.Context, fileSystemID string, fn func([]*cloud.AccessPoint) error) error {
	p := efs.NewDescribeAccessPointsPaginator(e.client, &efs.DescribeAccessPointsInput{
		FileSystemId: &fileSystemID,
		MaxResults:   awssdk.Int32(accessPointPageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list access points of %s: %w", fileSystemID, mapError(err))
		}
		aps := make([]*cloud.AccessPoint, 0, len(page.AccessPoints))
		for _, ap := range page.AccessPoints {
			switch ap.LifeCycleState {
			case efstypes.LifeCycleStateDeleting, efstypes.LifeCycleStateDeleted:
				continue
			}
			aps = append(aps, accessPoint(ap))
		}
		if err := fn(aps); err != nil {
			return err
		}
	}
	return nil
}

// DeleteAccessPoint deletes an access point; the data below its root
// directory stays.
func (e *EFS) DeleteAccessPoint(ctx context.Context, id string) error {
	if _, err := e.client.DeleteAccessPoint(ctx, &efs.DeleteAccessPointInput{AccessPointId: &id}); err != nil {
		return fmt.Errorf("delete access point %s: %w", id, mapError(err))
	}
	return nil
}

// Ready reports nothing but construction: a health probe that called AWS
// every few seconds would cost API quota and fail with AWS, not with us.
func (e *EFS) Ready(context.Context) error { return nil }

func accessPoint(ap efstypes.AccessPointDescription) *cloud.AccessPoint {
	out := &cloud.AccessPoint{
		ID:           awssdk.ToString(ap.AccessPointId),
		FileSystemID: awssdk.ToString(ap.FileSystemId),
		Tags:         map[string]string{},
	}
	for _, t := range ap.Tags {
		out.Tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
	}
	out.ClientToken = callerToken(out.FileSystemID, awssdk.ToString(ap.ClientToken), out.Tags)
	delete(out.Tags, TagClientToken)
	if pu := ap.PosixUser; pu != nil {
		out.PosixUser = &cloud.PosixUser{UID: awssdk.ToInt64(pu.Uid), GID: awssdk.ToInt64(pu.Gid)}
	}
	if rd := ap.RootDirectory; rd != nil {
		out.RootDirectory = awssdk.ToString(rd.Path)
		if ci := rd.CreationInfo; ci != nil {
			out.CreationInfo = &cloud.CreationInfo{OwnerUID: awssdk.ToInt64(ci.OwnerUid), OwnerGID: awssdk.ToInt64(ci.OwnerGid), Permissions: awssdk.ToString(ci.Permissions)}
		}
	}
	return out
}

// wireToken is the client token sent to EFS for a caller's token on a
// file system: the file system's hex digits, a dot, and the caller's
// token. EFS tokens are unique per account and region, so without the
// file system the same volume name could not be provisioned on two file
// systems. When that does not fit in 64 characters the caller's part is a
// hash instead (hashed is true) and, so that callerToken can give the
// caller's token back, the caller's token goes into a tag.
func wireToken(fsID, token string) (wire string, hashed bool) {
	prefix := strings.TrimPrefix(fsID, "fs-") + "."
	if len(prefix)+len(token) <= 64 && !strings.HasPrefix(token, "~") {
		return prefix + token, false
	}
	sum := sha256.Sum256([]byte(fsID + "\x00" + token))
	return prefix + "~" + hex.EncodeToString(sum[:])[:64-len(prefix)-1], true
}

// callerToken is wireToken's inverse: the token the caller gave for an
// access point EFS lists with token wire. Access points this package did
// not make (the upstream driver's, made with the plain volume name) keep
// their token as it is.
func callerToken(fsID, wire string, tags map[string]string) string {
	rest, ok := strings.CutPrefix(wire, strings.TrimPrefix(fsID, "fs-")+".")
	if !ok {
		return wire
	}
	if !strings.HasPrefix(rest, "~") {
		return rest
	}
	if t, ok := tags[TagClientToken]; ok {
		if w, _ := wireToken(fsID, t); w == wire {
			return t
		}
	}
	return wire
}
