package awsfake

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/smithy-go"
)

// quick makes transitions short so tests that wait for states stay fast,
// while still exercising the waiting.
var quick = &Delays{Default: Delay{Min: 1 * time.Millisecond, Max: 10 * time.Millisecond}}

type env struct {
	srv *Server
	efs *efs.Client
	ec2 *ec2.Client
	cfg aws.Config
}

// start serves a fake for one test and builds real SDK clients for it.
func start(t *testing.T, opts Options) *env {
	t.Helper()
	if opts.Delays == nil {
		opts.Delays = quick
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	cfg := s.AWSConfig()
	return &env{srv: s, cfg: cfg, efs: efs.NewFromConfig(cfg), ec2: ec2.NewFromConfig(cfg)}
}

// noRetry makes one attempt only, to see the raw error.
func noRetryEC2(o *ec2.Options) { o.RetryMaxAttempts = 1 }
func noRetryEFS(o *efs.Options) { o.RetryMaxAttempts = 1 }

// apiErr pulls the code, HTTP status and request ID out of an SDK error.
func apiErr(t *testing.T, err error) (code string, status int, requestID string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an API error, got success")
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want a smithy.APIError, got %T: %v", err, err)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want an awshttp.ResponseError in %v", err)
	}
	return ae.ErrorCode(), re.HTTPStatusCode(), re.ServiceRequestID()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
