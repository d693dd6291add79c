package aws

import (
	"context"
	"time"
)

// WaitOptions tune how the EBS side waits for EC2 state changes.
type WaitOptions struct {
	// BatchWindow is how long a batched describe call waits for more
	// requests to join it. Default 5 ms.
	BatchWindow time.Duration
	// PollInitial is the first wait between polls, and the grid every
	// poll is aligned to (see sleepAligned). Default 500 ms.
	PollInitial time.Duration
	// PollMax caps the wait between polls. Default 8 s.
	PollMax time.Duration
	// AttachStuckAfter is how long an attachment may stay "attaching"
	// before it is detached and the attach fails, so that it is retried
	// from scratch. Default 3 minutes.
	AttachStuckAfter time.Duration
	// CreateInvisibleFor is how long a new volume may be missing from
	// DescribeVolumes (EC2's eventual consistency) before it is taken for
	// a volume EBS deleted while creating it. A volume seen once and then
	// missing counts at once. Default 10 s, below the external-provisioner's
	// usual timeout, so that the answer comes within one call.
	CreateInvisibleFor time.Duration
}

func (w WaitOptions) withDefaults() WaitOptions {
	if w.BatchWindow == 0 {
		w.BatchWindow = 5 * time.Millisecond
	}
	if w.PollInitial == 0 {
		w.PollInitial = 500 * time.Millisecond
	}
	if w.PollMax == 0 {
		w.PollMax = 8 * time.Second
	}
	if w.AttachStuckAfter == 0 {
		w.AttachStuckAfter = 3 * time.Minute
	}
	if w.CreateInvisibleFor == 0 {
		w.CreateInvisibleFor = 10 * time.Second
	}
	return w
}

// poll sleeps, calls check, and repeats with growing sleeps until check
// reports done or fails, or ctx ends.
func (w WaitOptions) poll(ctx context.Context, check func() (done bool, err error)) error {
	delay := w.PollInitial
	for {
		if err := sleepAligned(ctx, delay, w.PollInitial); err != nil {
			return err
		}
		if done, err := check(); err != nil || done {
			return err
		}
		delay = min(delay*3/2, w.PollMax)
	}
}

// sleepAligned sleeps at least d, and then until the next multiple of grid
// on the wall clock. Waiters that start at different moments thus wake at
// the same instants, where the batcher serves them with one call.
func sleepAligned(ctx context.Context, d, grid time.Duration) error {
	now := time.Now()
	wake := now.Add(d)
	if grid > 0 {
		wake = wake.Truncate(grid).Add(grid)
	}
	t := time.NewTimer(wake.Sub(now))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
