package aws

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ec2csi/ec2csi/internal/cloud"
)

// Metrics count the AWS API calls of the backend: every attempt, retries
// included, by API and outcome, the throttled ones, their latency and the
// time spent waiting for the client-side rate limit. It is a
// prometheus.Collector, so it can be registered after it is made.
type Metrics struct {
	calls     *prometheus.CounterVec
	throttled *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	waited    *prometheus.HistogramVec
}

// NewMetrics makes the metrics and registers them with reg unless reg is
// nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ec2csi_aws_api_calls_total",
			Help: "AWS API requests by API and result code (OK or the AWS error code); every attempt counts, retries included.",
		}, []string{"api", "code"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ec2csi_aws_api_throttled_total",
			Help: "AWS API requests refused with a throttling error, by API.",
		}, []string{"api"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ec2csi_aws_api_duration_seconds",
			Help:    "Latency of one AWS API request (one attempt), by API.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 13),
		}, []string{"api"}),
		waited: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ec2csi_aws_api_rate_limit_wait_seconds",
			Help:    "Time an AWS API request waited for the client-side rate limit (--aws-api-rate-limit), by API; only requests that waited.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"api"}),
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.calls.Describe(ch)
	m.throttled.Describe(ch)
	m.duration.Describe(ch)
	m.waited.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.calls.Collect(ch)
	m.throttled.Collect(ch)
	m.duration.Collect(ch)
	m.waited.Collect(ch)
}

// Calls returns the count of api's requests that ended with code, for
// tests and benchmarks.
func (m *Metrics) Calls(api, code string) float64 {
	return counterValue(m.calls.WithLabelValues(api, code))
}

// Throttled returns the count of api's throttled requests.
func (m *Metrics) Throttled(api string) float64 {
	return counterValue(m.throttled.WithLabelValues(api))
}

func counterValue(c prometheus.Counter) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var d dto.Metric
	if err := (<-ch).Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

// throttleCodes are the error codes that mean "slow down": the SDK's list
// and EFS's TooManyRequests.
var throttleCodes = func() map[string]struct{} {
	m := maps.Clone(retry.DefaultThrottleErrorCodes)
	m["TooManyRequests"] = struct{}{}
	return m
}()

func isThrottle(err error) bool {
	_, ok := throttleCodes[errorCode(err)]
	return ok
}

// resultCode labels one attempt's outcome.
func resultCode(err error) string {
	switch {
	case err == nil:
		return "OK"
	case errorCode(err) != "":
		return errorCode(err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "Canceled"
	case isConnectionError(err):
		return "ConnectionError"
	}
	return "Error"
}

// instrument is a middleware that runs once per attempt (it sits after the
// SDK's retry middleware): it waits for the API's client-side rate limit,
// so that retries are limited too, and records the attempt's outcome.
type instrument struct {
	metrics *Metrics
	limiter *limiter
}

func (*instrument) ID() string { return "ec2csi/Instrument" }

func (i *instrument) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	op := awsmiddleware.GetOperationName(ctx)
	waited, err := i.limiter.wait(ctx, op)
	if err != nil {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, err
	}
	if waited > 0 {
		i.metrics.waited.WithLabelValues(op).Observe(waited.Seconds())
	}
	start := time.Now()
	out, md, err := next.HandleFinalize(ctx, in)
	i.metrics.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	i.metrics.calls.WithLabelValues(op, resultCode(err)).Inc()
	if err != nil && isThrottle(err) {
		i.metrics.throttled.WithLabelValues(op).Inc()
	}
	return out, md, err
}

// RetryOptions tune the SDK's retries.
type RetryOptions struct {
	// MaxAttempts per call, the first included. Default 10.
	MaxAttempts int
	// MaxBackoff caps the delay between attempts. Default 5 s.
	MaxBackoff time.Duration
	// Standard uses the SDK's standard retry mode instead of the adaptive
	// one, which also slows the client down when it is throttled.
	Standard bool
}

func (o RetryOptions) withDefaults() RetryOptions {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 10
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	return o
}

// retryers gives every API operation a retryer of its own, so that the
// adaptive mode's sending rate, which drops when an API is throttled, drops
// for that API only: AWS throttles each API separately, and a throttled
// CreateVolume must not slow DescribeVolumes.
type retryers struct {
	opts RetryOptions
	mu   sync.Mutex
	byOp map[string]awssdk.RetryerV2
}

func newRetryers(o RetryOptions) *retryers {
	return &retryers{opts: o.withDefaults(), byOp: map[string]awssdk.RetryerV2{}}
}

func (r *retryers) standardOptions(o *retry.StandardOptions) {
	o.MaxAttempts = r.opts.MaxAttempts
	o.MaxBackoff = r.opts.MaxBackoff
	// The retry quota would turn a burst of throttling into failed
	// volumes; the client-side rate limit and the adaptive mode are what
	// keep the load down instead.
	o.RateLimiter = ratelimit.None
	o.Throttles = append(o.Throttles, retry.ThrottleErrorCode{Codes: throttleCodes})
}

func (r *retryers) newRetryer() awssdk.RetryerV2 {
	if r.opts.Standard {
		return retry.NewStandard(r.standardOptions)
	}
	return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
		o.Throttles = append(o.Throttles, retry.ThrottleErrorCode{Codes: throttleCodes})
		o.StandardOptions = append(o.StandardOptions, r.standardOptions)
	})
}

func (r *retryers) forOp(op string) awssdk.RetryerV2 {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, ok := r.byOp[op]
	if !ok {
		rt = r.newRetryer()
		r.byOp[op] = rt
	}
	return rt
}

// dispatch is the client's retryer: the calls that keep per-API state go
// to the operation's own retryer; the stateless ones to any.
type dispatch struct {
	r    *retryers
	base awssdk.RetryerV2
}

func (d dispatch) IsErrorRetryable(err error) bool { return d.base.IsErrorRetryable(err) }
func (d dispatch) MaxAttempts() int                { return d.base.MaxAttempts() }
func (d dispatch) RetryDelay(attempt int, err error) (time.Duration, error) {
	return d.base.RetryDelay(attempt, err)
}
func (d dispatch) GetRetryToken(ctx context.Context, err error) (func(error) error, error) {
	return d.r.forOp(awsmiddleware.GetOperationName(ctx)).GetRetryToken(ctx, err)
}

// GetInitialToken is part of the SDK's older Retryer interface.
func (d dispatch) GetInitialToken() func(error) error { return d.base.GetInitialToken() }
func (d dispatch) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	return d.r.forOp(awsmiddleware.GetOperationName(ctx)).GetAttemptToken(ctx)
}

// throttleOnly retries only requests AWS refused for throttling, which it
// did not process. Calls that are not idempotent (CreateSnapshot) use it:
// after a lost answer a retry could make a second resource, while failing
// lets the caller look for the first one.
type throttleOnly struct{ awssdk.RetryerV2 }

func (throttleOnly) IsErrorRetryable(err error) bool { return isThrottle(err) }

// Options configure the AWS backend's clients.
type Options struct {
	// Metrics receive the API metrics; nil makes unregistered ones.
	Metrics *Metrics
	// RateLimits are client-side limits per API.
	RateLimits RateLimits
	Retry      RetryOptions
	// Waits tune polling for EBS state changes.
	Waits WaitOptions
}

// configure returns a copy of cfg with this package's retryer and
// instrumentation.
func configure(cfg awssdk.Config, o *Options) awssdk.Config {
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	r := newRetryers(o.Retry)
	cfg.Retryer = func() awssdk.Retryer { return dispatch{r: r, base: r.newRetryer()} }
	cfg.RetryMaxAttempts = 0
	cfg.RetryMode = ""
	mw := &instrument{metrics: o.Metrics, limiter: newLimiter(o.RateLimits)}
	cfg.APIOptions = append(append([]func(*middleware.Stack) error(nil), cfg.APIOptions...), func(s *middleware.Stack) error {
		return s.Finalize.Insert(mw, "Retry", middleware.After)
	})
	return cfg
}

// requestID finds the request ID of a successful call's answer.
func requestID(md middleware.Metadata) string {
	id, _ := awsmiddleware.GetRequestIDMetadata(md)
	return id
}

// notFound is the error for a resource a successful describe call did not
// return, with that call's request ID.
func notFound(service, op, what, reqID string) error {
	return &APIError{Service: service, Operation: op, Message: what + " does not exist", RequestID: reqID, Sentinel: cloud.ErrNotFound, Err: errors.New(what + " not returned")}
}
