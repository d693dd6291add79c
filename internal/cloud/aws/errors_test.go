package aws_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ec2csi/ec2csi/internal/awsfake"
	"github.com/ec2csi/ec2csi/internal/cloud"
	awscloud "github.com/ec2csi/ec2csi/internal/cloud/aws"
)

// TestErrorMapping sends every AWS error code the backend maps through the
// real SDK (the fake answers with it, in its service's wire format and
// HTTP status) and checks the sentinel it becomes, and that the message
// names the operation and carries AWS's request ID.
func TestErrorMapping(t *testing.T) {
	srv := startFake(t, awsfake.Options{Seed: 3})
	o := fastOptions(nil)
	o.Retry.MaxAttempts = 1 // see each code once, retryable or not
	o.Retry.Standard = true // no adaptive slow-down after the throttling codes
	e := awscloud.NewEFS(srv.AWSConfig(), o)
	b := awscloud.NewEBS(srv.AWSConfig(), o, nil)
	ctx := testCtx(t, time.Minute)

	efsCodes := map[string]error{
		"FileSystemNotFound":                  cloud.ErrNotFound,
		"AccessPointNotFound":                 cloud.ErrNotFound,
		"MountTargetNotFound":                 cloud.ErrNotFound,
		"AccessPointAlreadyExists":            cloud.ErrParameterMismatch,
		"FileSystemAlreadyExists":             cloud.ErrAlreadyExists,
		"AccessPointLimitExceeded":            cloud.ErrLimitExceeded,
		"FileSystemLimitExceeded":             cloud.ErrLimitExceeded,
		"NetworkInterfaceLimitExceeded":       cloud.ErrLimitExceeded,
		"BadRequest":                          cloud.ErrInvalidArgument,
		"ValidationException":                 cloud.ErrInvalidArgument,
		"IncorrectFileSystemLifeCycleState":   cloud.ErrInUse,
		"IncorrectMountTargetState":           cloud.ErrInUse,
		"FileSystemInUse":                     cloud.ErrInUse,
		"ThrottlingException":                 cloud.ErrThrottled,
		"TooManyRequests":                     cloud.ErrThrottled,
		"AccessDeniedException":               cloud.ErrUnauthorized,
		"MissingAuthenticationTokenException": cloud.ErrUnauthorized,
		"UnrecognizedClientException":         cloud.ErrUnauthorized,
		"InsufficientThroughputCapacity":      cloud.ErrInsufficientCapacity,
		"InternalServerError":                 cloud.ErrUnavailable,
		"DependencyTimeout":                   cloud.ErrUnavailable,
	}
	for code, want := range efsCodes {
		t.Run("EFS/"+code, func(t *testing.T) {
			srv.FailNext("DescribeAccessPoints", code, "", 1)
			_, err := e.DescribeAccessPoint(ctx, "fsap-0123456789abcdef0")
			checkMapped(t, err, code, "EFS DescribeAccessPoints", want)
		})
	}

	ec2Codes := map[string]error{
		"InvalidVolume.NotFound":             cloud.ErrNotFound,
		"InvalidSnapshot.NotFound":           cloud.ErrNotFound,
		"InvalidInstanceID.NotFound":         cloud.ErrNotFound,
		"InvalidAttachment.NotFound":         cloud.ErrNotFound,
		"InvalidVolumeModification.NotFound": cloud.ErrNotFound,
		"InvalidVolumeID.Malformed":          cloud.ErrNotFound,
		"InvalidSnapshotID.Malformed":        cloud.ErrNotFound,
		"InvalidInstanceID.Malformed":        cloud.ErrNotFound,
		"InvalidID":                          cloud.ErrNotFound,
		"IdempotentParameterMismatch":        cloud.ErrParameterMismatch,
		"VolumeLimitExceeded":                cloud.ErrLimitExceeded,
		"AttachmentLimitExceeded":            cloud.ErrLimitExceeded,
		"SnapshotLimitExceeded":              cloud.ErrLimitExceeded,
		"MaxIOPSLimitExceeded":               cloud.ErrLimitExceeded,
		"ResourceLimitExceeded":              cloud.ErrLimitExceeded,
		"InsufficientVolumeCapacity":         cloud.ErrInsufficientCapacity,
		"InvalidParameterValue":              cloud.ErrInvalidArgument,
		"InvalidParameterCombination":        cloud.ErrInvalidArgument,
		"InvalidParameterDependency":         cloud.ErrInvalidArgument,
		"InvalidParameter":                   cloud.ErrInvalidArgument,
		"MissingParameter":                   cloud.ErrInvalidArgument,
		"UnknownVolumeType":                  cloud.ErrInvalidArgument,
		"TagLimitExceeded":                   cloud.ErrInvalidArgument,
		"InvalidZone.NotFound":               cloud.ErrInvalidArgument,
		"VolumeInUse":                        cloud.ErrInUse,
		"IncorrectState":                     cloud.ErrInUse,
		"IncorrectInstanceState":             cloud.ErrInUse,
		"IncorrectModificationState":         cloud.ErrInUse,
		"InvalidSnapshot.InUse":              cloud.ErrInUse,
		"InvalidVolume.ZoneMismatch":         cloud.ErrInUse,
		"RequestLimitExceeded":               cloud.ErrThrottled,
		"Throttling":                         cloud.ErrThrottled,
		"UnauthorizedOperation":              cloud.ErrUnauthorized,
		"AuthFailure":                        cloud.ErrUnauthorized,
		"OptInRequired":                      cloud.ErrUnauthorized,
		"Blocked":                            cloud.ErrUnauthorized,
		"InvalidClientTokenId":               cloud.ErrUnauthorized,
		"SignatureDoesNotMatch":              cloud.ErrUnauthorized,
		"ExpiredToken":                       cloud.ErrUnauthorized,
		"InternalError":                      cloud.ErrUnavailable,
		"InternalFailure":                    cloud.ErrUnavailable,
		"ServiceUnavailable":                 cloud.ErrUnavailable,
		"Unavailable":                        cloud.ErrUnavailable,
	}
	for code, want := range ec2Codes {
		t.Run("EC2/"+code, func(t *testing.T) {
			srv.FailNext("DeleteVolume", code, "", 1)
			err := b.DeleteVolume(ctx, "vol-0123456789abcdef0")
			checkMapped(t, err, code, "EC2 DeleteVolume", want)
		})
	}

	// A code this package does not know keeps its message and maps to no
	// sentinel when its HTTP status says nothing (400), so it reaches the
	// user as Internal with AWS's words.
	t.Run("unknown", func(t *testing.T) {
		srv.FailNext("DeleteVolume", "SomethingNew", "a new failure", 1)
		err := b.DeleteVolume(ctx, "vol-0123456789abcdef0")
		checkMapped(t, err, "SomethingNew", "EC2 DeleteVolume", nil)
		if !strings.Contains(err.Error(), "a new failure") {
			t.Errorf("message lost: %v", err)
		}
	})
}

var sentinels = []error{cloud.ErrNotFound, cloud.ErrAlreadyExists, cloud.ErrParameterMismatch, cloud.ErrInvalidArgument,
	cloud.ErrOutOfRange, cloud.ErrLimitExceeded, cloud.ErrInsufficientCapacity, cloud.ErrThrottled, cloud.ErrUnauthorized,
	cloud.ErrInUse, cloud.ErrUnavailable}

func checkMapped(t *testing.T, err error, code, op string, want error) {
	t.Helper()
	var ae *awscloud.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an *APIError", err)
	}
	if ae.Code != code {
		t.Errorf("code %q, want %q", ae.Code, code)
	}
	for _, s := range sentinels {
		if is := errors.Is(err, s); is != (s == want) {
			t.Errorf("errors.Is(%v) = %v, want %v; error: %v", s, is, s == want, err)
		}
	}
	if ae.RequestID == "" || !strings.Contains(err.Error(), "request ID "+ae.RequestID) {
		t.Errorf("no AWS request ID in %q", err)
	}
	if !strings.Contains(err.Error(), op) {
		t.Errorf("message %q does not name %s", err, op)
	}
}
