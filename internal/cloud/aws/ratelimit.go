package aws

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RateLimit is a client-side token bucket for one API: at most Burst
// calls at once, refilled at PerSecond.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// RateLimits holds a client-side limit per API operation ("DescribeVolumes")
// and a default ("*") that gives every other operation a bucket of its
// own, as AWS throttles each API separately.
type RateLimits map[string]RateLimit

// ParseRateLimits reads the --aws-api-rate-limit syntax: comma-separated
// API=RATE or API=RATE:BURST, where API is an operation name or "*" for
// every other one, e.g. "DescribeVolumes=20,CreateVolume=5:10,*=50". The
// burst defaults to the rate (at least 1). An empty string means no limit.
func ParseRateLimits(s string) (RateLimits, error) {
	out := RateLimits{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		api, val, ok := strings.Cut(part, "=")
		api = strings.TrimSpace(api)
		if !ok || api == "" {
			return nil, fmt.Errorf("rate limit %q: want API=RATE[:BURST], e.g. DescribeVolumes=20", part)
		}
		rateStr, burstStr, hasBurst := strings.Cut(val, ":")
		rate, err := strconv.ParseFloat(strings.TrimSpace(rateStr), 64)
		if err != nil || rate <= 0 || math.IsInf(rate, 0) {
			return nil, fmt.Errorf("rate limit %q: the rate must be a positive number of calls per second", part)
		}
		burst := max(1, int(math.Ceil(rate)))
		if hasBurst {
			if burst, err = strconv.Atoi(strings.TrimSpace(burstStr)); err != nil || burst < 1 {
				return nil, fmt.Errorf("rate limit %q: the burst must be a positive whole number", part)
			}
		}
		if _, dup := out[api]; dup {
			return nil, fmt.Errorf("rate limit for %s given twice", api)
		}
		out[api] = RateLimit{PerSecond: rate, Burst: burst}
	}
	return out, nil
}

// String writes the limits back in the flag's syntax, sorted.
func (r RateLimits) String() string {
	parts := make([]string, 0, len(r))
	for api, l := range r {
		parts = append(parts, fmt.Sprintf("%s=%s:%d", api, strconv.FormatFloat(l.PerSecond, 'f', -1, 64), l.Burst))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// limiter applies RateLimits, one bucket per operation.
type limiter struct {
	limits RateLimits
	mu     sync.Mutex
	bucket map[string]*bucket
}

func newLimiter(l RateLimits) *limiter {
	return &limiter{limits: l, bucket: map[string]*bucket{}}
}

// wait blocks until op may make a call, or ctx ends. It returns how long it
// waited.
func (l *limiter) wait(ctx context.Context, op string) (time.Duration, error) {
	if l == nil || len(l.limits) == 0 {
		return 0, nil
	}
	l.mu.Lock()
	b, ok := l.bucket[op]
	if !ok {
		rl, found := l.limits[op]
		if !found {
			rl, found = l.limits["*"]
		}
		if found {
			b = &bucket{rate: rl.PerSecond, burst: float64(rl.Burst), tokens: float64(rl.Burst), last: time.Now()}
		}
		l.bucket[op] = b // nil: this operation is not limited
	}
	l.mu.Unlock()
	if b == nil {
		return 0, nil
	}
	return b.wait(ctx)
}

// bucket is a token bucket that hands out tokens in order: a caller takes
// its token at once, possibly driving the count negative, and sleeps until
// the refill has covered it. A caller whose context ends gives it back.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *bucket) wait(ctx context.Context) (time.Duration, error) {
	b.mu.Lock()
	now := time.Now()
	b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens--
	var d time.Duration
	if b.tokens < 0 {
		d = time.Duration(-b.tokens / b.rate * float64(time.Second))
	}
	b.mu.Unlock()
	if d == 0 {
		return 0, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return d, nil
	case <-ctx.Done():
		b.mu.Lock()
		b.tokens++
		b.mu.Unlock()
		return 0, fmt.Errorf("waiting for the client-side API rate limit: %w", ctx.Err())
	}
}
