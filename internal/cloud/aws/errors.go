package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

// errorCodes maps the AWS error codes the EFS and EC2 APIs return for the
// operations this package calls to the sentinels of package cloud. It is
// the only place an AWS error code is interpreted; csiserver then turns
// the sentinels into gRPC codes.
var errorCodes = map[string]error{
	// EFS.
	"FileSystemNotFound":                  cloud.ErrNotFound,
	"AccessPointNotFound":                 cloud.ErrNotFound,
	"MountTargetNotFound":                 cloud.ErrNotFound,
	"AccessPointAlreadyExists":            cloud.ErrParameterMismatch, // a client token reused with other parameters
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
	"InsufficientThroughputCapacity":      cloud.ErrInsufficientCapacity,
	"InternalServerError":                 cloud.ErrUnavailable,
	"DependencyTimeout":                   cloud.ErrUnavailable,

	// EC2.
	"InvalidVolume.NotFound":             cloud.ErrNotFound,
	"InvalidSnapshot.NotFound":           cloud.ErrNotFound,
	"InvalidInstanceID.NotFound":         cloud.ErrNotFound,
	"InvalidAttachment.NotFound":         cloud.ErrNotFound,
	"InvalidVolumeModification.NotFound": cloud.ErrNotFound,
	// A malformed ID names nothing that can exist: callers asking about a
	// node called "sanity-node" get NotFound, as the CSI spec wants.
	"InvalidVolumeID.Malformed":   cloud.ErrNotFound,
	"InvalidSnapshotID.Malformed": cloud.ErrNotFound,
	"InvalidInstanceID.Malformed": cloud.ErrNotFound,
	"InvalidID":                   cloud.ErrNotFound,
	"IdempotentParameterMismatch": cloud.ErrParameterMismatch,
	"VolumeLimitExceeded":         cloud.ErrLimitExceeded,
	"AttachmentLimitExceeded":     cloud.ErrLimitExceeded,
	"SnapshotLimitExceeded":       cloud.ErrLimitExceeded,
	"MaxIOPSLimitExceeded":        cloud.ErrLimitExceeded,
	"ResourceLimitExceeded":       cloud.ErrLimitExceeded,
	"InsufficientVolumeCapacity":  cloud.ErrInsufficientCapacity,
	"InvalidParameterValue":       cloud.ErrInvalidArgument,
	"InvalidParameterCombination": cloud.ErrInvalidArgument,
	"InvalidParameterDependency":  cloud.ErrInvalidArgument,
	"InvalidParameter":            cloud.ErrInvalidArgument,
	"MissingParameter":            cloud.ErrInvalidArgument,
	"UnknownVolumeType":           cloud.ErrInvalidArgument,
	"TagLimitExceeded":            cloud.ErrInvalidArgument,
	"InvalidZone.NotFound":        cloud.ErrInvalidArgument,
	"VolumeInUse":                 cloud.ErrInUse,
	"IncorrectState":              cloud.ErrInUse,
	"IncorrectInstanceState":      cloud.ErrInUse,
	"IncorrectModificationState":  cloud.ErrInUse,
	"InvalidSnapshot.InUse":       cloud.ErrInUse,
	// Same answer as the local backend gives for a volume and a node in
	// different zones.
	"InvalidVolume.ZoneMismatch": cloud.ErrInUse,
	"RequestLimitExceeded":       cloud.ErrThrottled,
	"Throttling":                 cloud.ErrThrottled,
	"UnauthorizedOperation":      cloud.ErrUnauthorized,
	"AuthFailure":                cloud.ErrUnauthorized,
	"OptInRequired":              cloud.ErrUnauthorized,
	"Blocked":                    cloud.ErrUnauthorized,
	"InternalError":              cloud.ErrUnavailable,
	"InternalFailure":            cloud.ErrUnavailable,
	"ServiceUnavailable":         cloud.ErrUnavailable,
	"Unavailable":                cloud.ErrUnavailable,

	// Both (STS and the SDK's signing).
	"UnrecognizedClientException": cloud.ErrUnauthorized,
	"InvalidClientTokenId":        cloud.ErrUnauthorized,
	"InvalidSignatureException":   cloud.ErrUnauthorized,
	"SignatureDoesNotMatch":       cloud.ErrUnauthorized,
	"ExpiredToken":                cloud.ErrUnauthorized,
	"ExpiredTokenException":       cloud.ErrUnauthorized,
}

// sentinelForStatus classifies an error code this package does not know
// by the HTTP status it came with, so that a new AWS code still reaches the
// caller with a sensible gRPC code. Statuses that say nothing are nil:
// those errors stay Internal, with their whole message.
func sentinelForStatus(status int) error {
	switch {
	case status == 401 || status == 403:
		return cloud.ErrUnauthorized
	case status == 404:
		return cloud.ErrNotFound
	case status == 429:
		return cloud.ErrThrottled
	case status >= 500:
		return cloud.ErrUnavailable
	}
	return nil
}

// APIError is an AWS API failure in this package's terms: which service and
// operation failed, AWS's code, message and request ID, and the sentinel it
// maps to. errors.Is finds the sentinel, errors.As the SDK's error.
type APIError struct {
	Service, Operation string
	Code, Message      string
	RequestID          string
	// Sentinel is one of package cloud's errors, or nil for codes that map
	// to none.
	Sentinel error
	Err      error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", e.Service, e.Operation)
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request ID %s)", e.RequestID)
	}
	if e.Sentinel != nil {
		fmt.Fprintf(&b, ": %v", e.Sentinel)
	}
	return b.String()
}

// Unwrap exposes both the sentinel and the SDK's error.
func (e *APIError) Unwrap() []error {
	if e.Sentinel == nil {
		return []error{e.Err}
	}
	return []error{e.Sentinel, e.Err}
}

// mapError turns an error from an SDK call into an *APIError that wraps
// the right sentinel. Context errors stay what they are (csiserver maps
// them to DeadlineExceeded and Canceled); nil stays nil.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	e := &APIError{Service: "AWS", Operation: "call", Err: err}
	var opErr *smithy.OperationError
	if errors.As(err, &opErr) {
		e.Service, e.Operation = opErr.ServiceID, opErr.OperationName
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		e.RequestID = respErr.ServiceRequestID()
	}
	var apiErr smithy.APIError
	switch {
	case errors.As(err, &apiErr):
		e.Code, e.Message = apiErr.ErrorCode(), apiErr.ErrorMessage()
		if s, ok := errorCodes[e.Code]; ok {
			e.Sentinel = s
		} else {
			var httpErr *smithyhttp.ResponseError
			if errors.As(err, &httpErr) {
				e.Sentinel = sentinelForStatus(httpErr.HTTPStatusCode())
			}
		}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%s %s: %w", e.Service, e.Operation, err)
	case isQuotaExceeded(err):
		e.Message, e.Sentinel = "the SDK's retry quota is used up", cloud.ErrThrottled
	case isConnectionError(err):
		e.Message, e.Sentinel = unwrapAll(err).Error(), cloud.ErrUnavailable
	default:
		e.Message = err.Error()
	}
	return e
}

func isQuotaExceeded(err error) bool {
	var q ratelimit.QuotaExceededError
	return errors.As(err, &q)
}

// isConnectionError reports whether the request could not be sent or its
// answer not read: AWS may or may not have done the work.
func isConnectionError(err error) bool {
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		return true
	}
	var conn interface{ ConnectionError() bool }
	return errors.As(err, &conn) && conn.ConnectionError()
}

// unwrapAll finds the innermost error, to keep messages short.
func unwrapAll(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// errorCode returns the AWS error code inside err, "" for none.
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}
