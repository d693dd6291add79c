package awsfake

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Faults describes the misbehaviour injected into requests. Rates are
// probabilities in [0, 1] drawn per request from the fake's seeded
// generator.
type Faults struct {
	// ThrottleRate answers requests with ThrottlingException (EFS, HTTP
	// 429) or RequestLimitExceeded (EC2, HTTP 503) before doing anything.
	ThrottleRate float64
	// InternalErrorRate answers requests with InternalServerError (EFS)
	// or InternalError (EC2), HTTP 500, before doing anything.
	InternalErrorRate float64
	// LostResponseRate does the work of a successful request and then
	// loses the answer, so the caller cannot know it succeeded and retries.
	LostResponseRate float64
	// LostResponse chooses how an answer is lost. Default LoseConnection.
	LostResponse LostResponseMode
	// Latency is added before every request is handled.
	Latency Delay
	// Visibility hides a newly created resource from Describe* calls for
	// this long, as EC2's and EFS's eventual consistency does: asked for
	// by ID it is NotFound, listed it is missing.
	Visibility time.Duration
	// Operations, if set, limits the rate-based faults and the latency to
	// these operations (names like "CreateVolume"). Rate limits and
	// FailNext are unaffected.
	Operations []string
	// RateLimits holds a token bucket per operation, as AWS throttles each
	// API separately. Keys are operation names, or prefixes ending in "*"
	// ("Describe*"); each matching operation gets its own bucket. Requests
	// finding their bucket empty are throttled.
	RateLimits map[string]RateLimit
}

// LostResponseMode says how the fake loses an answer.
type LostResponseMode int

const (
	// LoseConnection closes the connection without writing a response,
	// which the SDK sees as a connection error.
	LoseConnection LostResponseMode = iota
	// LoseAsInternalError answers with an HTTP 500 InternalError although
	// the work was done.
	LoseAsInternalError
)

// String names the mode, for test names and logs.
func (m LostResponseMode) String() string {
	switch m {
	case LoseConnection:
		return "LoseConnection"
	case LoseAsInternalError:
		return "LoseAsInternalError"
	}
	return fmt.Sprintf("LostResponseMode(%d)", int(m))
}

// RateLimit is a token bucket: it holds at most Burst tokens, refills at
// PerSecond tokens a second, and each request takes one.
type RateLimit struct {
	Burst     int
	PerSecond float64
}

// EC2DescribeRateLimit is the bucket EC2's documentation gives as its
// example for a non-mutating (Describe*) action: 100 tokens, refilled at
// 20 a second. Other actions have other, account-specific values.
var EC2DescribeRateLimit = RateLimit{Burst: 100, PerSecond: 20}

func (f Faults) validate() error {
	for name, r := range map[string]float64{
		"ThrottleRate":      f.ThrottleRate,
		"InternalErrorRate": f.InternalErrorRate,
		"LostResponseRate":  f.LostResponseRate,
	} {
		if r < 0 || r > 1 || math.IsNaN(r) {
			return fmt.Errorf("faults: %s %v outside [0, 1]", name, r)
		}
	}
	if err := f.Latency.validate("latency"); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	if f.Visibility < 0 {
		return fmt.Errorf("faults: negative Visibility")
	}
	for k, rl := range f.RateLimits {
		if rl.Burst < 0 || rl.PerSecond < 0 {
			return fmt.Errorf("faults: rate limit %q: negative values", k)
		}
	}
	return nil
}

func (f Faults) appliesTo(op string) bool {
	if len(f.Operations) == 0 {
		return true
	}
	for _, o := range f.Operations {
		if o == op {
			return true
		}
	}
	return false
}

// rateLimitFor finds the bucket settings for op: an exact key wins over
// the longest matching prefix.
func (f Faults) rateLimitFor(op string) (RateLimit, bool) {
	if rl, ok := f.RateLimits[op]; ok {
		return rl, true
	}
	best, found, bestLen := RateLimit{}, false, -1
	for k, rl := range f.RateLimits {
		prefix, ok := strings.CutSuffix(k, "*")
		if ok && strings.HasPrefix(op, prefix) && len(prefix) > bestLen {
			best, found, bestLen = rl, true, len(prefix)
		}
	}
	return best, found
}

// faultKind is what the injector decided for one request.
type faultKind int

const (
	faultNone faultKind = iota
	faultThrottle
	faultInternal
	faultInjected
)

// decision is the injector's verdict for one request, taken before the
// request is handled.
type decision struct {
	kind    faultKind
	latency time.Duration
	// loseResponse asks the handler to drop the answer after the work.
	loseResponse bool
	lostMode     LostResponseMode
	// code and message are set for faultInjected.
	code, message string
}

// injectedError is one entry queued by FailNext.
type injectedError struct {
	code, message string
	remaining     int
}

// injector holds the run-time fault settings and their random source. It
// has its own lock so that fault decisions never wait for the state lock.
type injector struct {
	mu      sync.Mutex
	faults  Faults
	rng     *rand.Rand
	buckets map[string]*bucket
	queued  map[string][]*injectedError
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newInjector(f Faults, seed uint64) *injector {
	return &injector{
		faults:  f,
		rng:     rand.New(rand.NewPCG(seed, 0x6661756c7473)), // "faults"
		buckets: map[string]*bucket{},
		queued:  map[string][]*injectedError{},
	}
}

func (in *injector) set(f Faults) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = f
	// New limits start from full buckets, as a fresh AWS account would.
	in.buckets = map[string]*bucket{}
}

func (in *injector) get() Faults {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.faults
}

func (in *injector) failNext(op, code, message string, n int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.queued[op] = append(in.queued[op], &injectedError{code: code, message: message, remaining: n})
}

func (in *injector) visibility() time.Duration {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.faults.Visibility
}

// decide draws the faults for one request of op at time now.
func (in *injector) decide(op string, now time.Time) decision {
	in.mu.Lock()
	defer in.mu.Unlock()
	var d decision
	f := in.faults
	if f.appliesTo(op) {
		d.latency = drawDelay(in.rng, f.Latency)
	}
	if q := in.queued[op]; len(q) > 0 {
		e := q[0]
		e.remaining--
		if e.remaining <= 0 {
			in.queued[op] = q[1:]
		}
		d.kind, d.code, d.message = faultInjected, e.code, e.message
		return d
	}
	if rl, ok := f.rateLimitFor(op); ok && !in.take(op, rl, now) {
		d.kind = faultThrottle
		return d
	}
	if !f.appliesTo(op) {
		return d
	}
	if f.ThrottleRate > 0 && in.rng.Float64() < f.ThrottleRate {
		d.kind = faultThrottle
		return d
	}
	if f.InternalErrorRate > 0 && in.rng.Float64() < f.InternalErrorRate {
		d.kind = faultInternal
		return d
	}
	if f.LostResponseRate > 0 && in.rng.Float64() < f.LostResponseRate {
		d.loseResponse, d.lostMode = true, f.LostResponse
	}
	return d
}

// take removes a token from op's bucket, refilling it for the time since
// it was last used.
func (in *injector) take(op string, rl RateLimit, now time.Time) bool {
	b, ok := in.buckets[op]
	if !ok {
		b = &bucket{tokens: float64(rl.Burst), last: now}
		in.buckets[op] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(float64(rl.Burst), b.tokens+el*rl.PerSecond)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// drawDelay picks a duration uniformly in [d.Min, d.Max].
func drawDelay(rng *rand.Rand, d Delay) time.Duration {
	if d.Max <= d.Min {
		return d.Min
	}
	return d.Min + time.Duration(rng.Int64N(int64(d.Max-d.Min)+1))
}
