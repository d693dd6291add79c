package awsfake

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fake is the fake EFS and EC2 service. It is an http.Handler; use Start or
// Serve to put it on a socket. All methods are safe for concurrent use.
type Fake struct {
	opts Options
	inj  *injector

	mu         sync.Mutex
	delays     Delays
	delayRNG   *rand.Rand
	idRNG      *rand.Rand
	events     eventQueue
	eventSeq   uint64
	timer      *time.Timer
	timerAt    time.Time
	timerArmed bool
	closed     bool

	volumes      map[string]*volume
	snapshots    map[string]*snapshot
	instances    map[string]*instance
	volumeTokens map[string]*clientToken
	fileSystems  map[string]*fileSystem
	mountTargets map[string]*mountTarget
	accessPoints map[string]*accessPoint
	apTokens     map[string]string
	subnets      map[string]*subnet

	statsMu sync.Mutex
	stats   map[string]*OpStats
}

// OpStats counts the requests one operation received and how they ended.
type OpStats struct {
	// Calls is every request received, retries included.
	Calls int
	// Throttled were refused by ThrottleRate or a rate limit.
	Throttled int
	// InternalErrors were failed by InternalErrorRate.
	InternalErrors int
	// Injected were failed by FailNext.
	Injected int
	// LostResponses did their work and lost the answer.
	LostResponses int
	// APIErrors were refused by the operation itself (not found, wrong
	// state, bad parameter...).
	APIErrors int
}

// New builds a Fake, seeding the resources named in opts.
func New(opts Options) (*Fake, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("awsfake: %w", err)
	}
	f := &Fake{
		opts:         o,
		inj:          newInjector(o.Faults, o.Seed),
		delays:       *o.Delays,
		delayRNG:     rand.New(rand.NewPCG(o.Seed, 0x64656c617973)), // "delays"
		idRNG:        rand.New(rand.NewPCG(o.Seed, 0x696473)),       // "ids"
		volumes:      map[string]*volume{},
		snapshots:    map[string]*snapshot{},
		instances:    map[string]*instance{},
		volumeTokens: map[string]*clientToken{},
		fileSystems:  map[string]*fileSystem{},
		mountTargets: map[string]*mountTarget{},
		accessPoints: map[string]*accessPoint{},
		apTokens:     map[string]string{},
		subnets:      map[string]*subnet{},
		stats:        map[string]*OpStats{},
	}
	for _, z := range o.Zones {
		if _, err := f.AddSubnet(SubnetSpec{Zone: z}); err != nil {
			return nil, err
		}
	}
	for _, s := range o.Subnets {
		if _, err := f.AddSubnet(s); err != nil {
			return nil, err
		}
	}
	for _, s := range o.Instances {
		if _, err := f.AddInstanceSpec(s); err != nil {
			return nil, err
		}
	}
	for _, s := range o.FileSystems {
		if _, err := f.AddFileSystem(s); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Close stops the transition timer. Resources stay readable.
func (f *Fake) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.timer != nil {
		f.timer.Stop()
	}
}

// Region is the region the fake reports.
func (f *Fake) Region() string { return f.opts.Region }

// Zones are the fake's availability zones.
func (f *Fake) Zones() []string { return slices.Clone(f.opts.Zones) }

// SetFaults replaces the injected faults; rate-limit buckets start full.
func (f *Fake) SetFaults(faults Faults) error {
	if err := faults.validate(); err != nil {
		return fmt.Errorf("awsfake: %w", err)
	}
	f.inj.set(faults)
	return nil
}

// Faults returns the faults in force.
func (f *Fake) Faults() Faults { return f.inj.get() }

// SetDelays replaces the transition delays for transitions started from
// now on.
func (f *Fake) SetDelays(d Delays) error {
	if err := d.validate(); err != nil {
		return fmt.Errorf("awsfake: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delays = d
	return nil
}

// FailNext makes the next n requests of op fail with the given AWS error
// code (for instance "UnauthorizedOperation", "InsufficientVolumeCapacity"
// or "AccessPointLimitExceeded"), with the HTTP status AWS uses for it.
// An empty message gets a generic one.
func (f *Fake) FailNext(op, code, message string, n int) {
	if n <= 0 {
		return
	}
	if message == "" {
		message = "Injected failure: " + code
	}
	f.inj.failNext(op, code, message, n)
}

// Calls is the number of requests op has received, retries included.
func (f *Fake) Calls(op string) int {
	return f.Stats(op).Calls
}

// Stats returns the counters of op.
func (f *Fake) Stats(op string) OpStats {
	f.statsMu.Lock()
	defer f.statsMu.Unlock()
	if s, ok := f.stats[op]; ok {
		return *s
	}
	return OpStats{}
}

// AllStats returns the counters of every operation called so far.
func (f *Fake) AllStats() map[string]OpStats {
	f.statsMu.Lock()
	defer f.statsMu.Unlock()
	out := make(map[string]OpStats, len(f.stats))
	for k, v := range f.stats {
		out[k] = *v
	}
	return out
}

// ResetStats zeroes every counter.
func (f *Fake) ResetStats() {
	f.statsMu.Lock()
	defer f.statsMu.Unlock()
	f.stats = map[string]*OpStats{}
}

func (f *Fake) count(op string, fn func(*OpStats)) {
	f.statsMu.Lock()
	defer f.statsMu.Unlock()
	s, ok := f.stats[op]
	if !ok {
		s = &OpStats{}
		f.stats[op] = s
	}
	fn(s)
}

// apiError is an error answer in the terms of the service that gives it.
type apiError struct {
	status  int
	code    string
	message string
	// fields are extra members of an EFS error body, such as the
	// AccessPointId of AccessPointAlreadyExists.
	fields map[string]string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// protocol is one of the two wire protocols the fake speaks.
type protocol interface {
	// writeError answers with e.
	writeError(w http.ResponseWriter, requestID string, e *apiError)
	// throttle and internal build the service's own codes for injected
	// faults.
	throttle() *apiError
	internal() *apiError
	// injected builds the error FailNext asked for.
	injected(code, message string) *apiError
}

// request is one parsed request on its way through the fault pipeline.
type request struct {
	op    string
	proto protocol
	// handle does the work under f.mu and writes nothing; respond then
	// writes the answer it prepared.
	handle func(now time.Time, requestID string) (respond func(http.ResponseWriter), err error)
}

// ServeHTTP answers one EFS or EC2 request.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req *request
	var perr *apiError
	if strings.HasPrefix(r.URL.Path, efsPathPrefix) {
		req, perr = f.parseEFS(r)
	} else {
		req, perr = f.parseEC2(r)
	}
	if perr != nil {
		var p protocol = ec2Protocol{}
		if strings.HasPrefix(r.URL.Path, efsPathPrefix) {
			p = efsProtocol{}
		}
		p.writeError(w, f.requestID(), perr)
		f.logf("%s %s: %s", r.Method, r.URL.Path, perr.code)
		return
	}
	f.count(req.op, func(s *OpStats) { s.Calls++ })
	now := time.Now()
	d := f.inj.decide(req.op, now)
	if d.latency > 0 {
		if waitCtx(r.Context(), d.latency) != nil {
			return
		}
		now = time.Now()
	}
	switch d.kind {
	case faultThrottle:
		f.count(req.op, func(s *OpStats) { s.Throttled++ })
		req.proto.writeError(w, f.requestID(), req.proto.throttle())
		f.logf("%s: throttled", req.op)
		return
	case faultInternal:
		f.count(req.op, func(s *OpStats) { s.InternalErrors++ })
		req.proto.writeError(w, f.requestID(), req.proto.internal())
		f.logf("%s: internal error injected", req.op)
		return
	case faultInjected:
		f.count(req.op, func(s *OpStats) { s.Injected++ })
		req.proto.writeError(w, f.requestID(), req.proto.injected(d.code, d.message))
		f.logf("%s: %s injected", req.op, d.code)
		return
	}

	f.mu.Lock()
	f.advanceLocked(now)
	reqID := f.requestIDLocked()
	respond, err := req.handle(now, reqID)
	f.armLocked(now)
	f.mu.Unlock()

	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = req.proto.internal()
			ae.message = err.Error()
		}
		f.count(req.op, func(s *OpStats) { s.APIErrors++ })
		req.proto.writeError(w, reqID, ae)
		f.logf("%s %s: %s: %s", req.op, reqID, ae.code, ae.message)
		return
	}
	if d.loseResponse {
		f.count(req.op, func(s *OpStats) { s.LostResponses++ })
		f.logf("%s %s: done, answer lost", req.op, reqID)
		if d.lostMode == LoseConnection {
			if conn, _, herr := http.NewResponseController(w).Hijack(); herr == nil {
				_ = conn.Close()
				return
			}
		}
		req.proto.writeError(w, reqID, req.proto.internal())
		return
	}
	respond(w)
	f.logf("%s %s: ok", req.op, reqID)
}

func (f *Fake) requestID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requestIDLocked()
}

func (f *Fake) logf(format string, args ...any) {
	if f.opts.Logf != nil {
		f.opts.Logf(format, args...)
	}
}

// waitCtx sleeps for d unless ctx ends first.
func waitCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
