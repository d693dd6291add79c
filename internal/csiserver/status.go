package csiserver

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

// codeOf maps the sentinel errors of package cloud to gRPC codes. It is the
// one place where a backend error becomes a code, so every driver and every
// backend answers the same way.
var codeOf = []struct {
	err  error
	code codes.Code
}{
	{cloud.ErrNotFound, codes.NotFound},
	{cloud.ErrAlreadyExists, codes.AlreadyExists},
	{cloud.ErrParameterMismatch, codes.AlreadyExists},
	{cloud.ErrInvalidArgument, codes.InvalidArgument},
	{cloud.ErrOutOfRange, codes.OutOfRange},
	{cloud.ErrLimitExceeded, codes.ResourceExhausted},
	{cloud.ErrInsufficientCapacity, codes.ResourceExhausted},
	{cloud.ErrThrottled, codes.Unavailable},
	{cloud.ErrUnauthorized, codes.PermissionDenied},
	{cloud.ErrInUse, codes.FailedPrecondition},
	{cloud.ErrUnavailable, codes.Unavailable},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// Status turns any error into a gRPC status error. Errors that already
// carry a status keep it; wrapped sentinels get their mapped code; anything
// else is Internal. The message is always the full wrapped text, so the
// context a backend added reaches the user.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return s.Err()
	}
	for _, m := range codeOf {
		if errors.Is(err, m.err) {
			return status.Error(m.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}
