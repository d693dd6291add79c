package aws_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ec2csi/ec2csi/internal/awsfake"
	awscloud "github.com/ec2csi/ec2csi/internal/cloud/aws"
	"github.com/ec2csi/ec2csi/internal/csiserver"
)

const (
	testInstance = "i-0123456789abcdef0"
	testZone     = "us-east-1a"
)

// startFake serves a fake with one instance in testZone.
func startFake(t *testing.T, o awsfake.Options) *awsfake.Server {
	t.Helper()
	srv, err := awsfake.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if err := srv.AddInstance(testInstance, testZone, "m5.large"); err != nil {
		t.Fatal(err)
	}
	return srv
}

// fastOptions keep the production code paths with test-sized delays.
func fastOptions(m *awscloud.Metrics) awscloud.Options {
	return awscloud.Options{
		Metrics: m,
		Retry:   awscloud.RetryOptions{MaxBackoff: 20 * time.Millisecond},
		Waits: awscloud.WaitOptions{
			BatchWindow: 2 * time.Millisecond,
			PollInitial: 20 * time.Millisecond,
			PollMax:     100 * time.Millisecond,
		},
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// retryable says whether a CSI caller (a sidecar) would retry the error
// and may expect success: the codes that mean "not now".
func retryable(err error) bool {
	switch status.Code(csiserver.Status(err)) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// callWithRetries calls fn until it succeeds, fails with a code a sidecar
// would not retry, or has been retried n times.
func callWithRetries(n int, fn func() error) (retries int, err error) {
	for i := 0; ; i++ {
		err = fn()
		if err == nil || !retryable(err) || i == n {
			return i, err
		}
	}
}
