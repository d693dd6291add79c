package aws

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// batcher coalesces look-ups of single resources by ID into one describe
// call: the first request opens a batch, requests for any ID that arrive
// within the window join it, and one call answers them all. Many
// concurrent waiters (100 attaches polling for "attached") thus cost a
// handful of DescribeVolumes calls instead of one each.
type batcher[T any] struct {
	window time.Duration
	// max bounds the IDs of one call (EC2 takes 200 values per filter).
	max int
	// fetch describes ids; IDs missing from the result do not exist. It
	// returns the request ID of the call that answered.
	fetch func(ctx context.Context, ids []string) (map[string]T, string, error)

	mu   sync.Mutex
	open *batch[T]
}

type batch[T any] struct {
	ids  map[string]struct{}
	done chan struct{}
	// Set before done is closed.
	found     map[string]T
	requestID string
	err       error
}

// batchTimeout bounds one batched call. It does not come from any one
// caller's context: the call serves callers whose deadlines differ, and
// one caller giving up must not fail the others.
const batchTimeout = 30 * time.Second

// get returns id's resource, found=false when the describe call did not
// return it, with that call's request ID.
func (b *batcher[T]) get(ctx context.Context, id string) (v T, found bool, reqID string, err error) {
	b.mu.Lock()
	bt := b.open
	if bt == nil || len(bt.ids) >= b.max {
		bt = &batch[T]{ids: map[string]struct{}{}, done: make(chan struct{})}
		b.open = bt
		go b.run(bt)
	}
	bt.ids[id] = struct{}{}
	b.mu.Unlock()

	select {
	case <-bt.done:
	case <-ctx.Done():
		var zero T
		return zero, false, "", ctx.Err()
	}
	if bt.err != nil {
		var zero T
		return zero, false, "", bt.err
	}
	v, found = bt.found[id]
	return v, found, bt.requestID, nil
}

func (b *batcher[T]) run(bt *batch[T]) {
	time.Sleep(b.window)
	b.mu.Lock()
	if b.open == bt {
		b.open = nil
	}
	ids := make([]string, 0, len(bt.ids))
	for id := range bt.ids {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	sort.Strings(ids)
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	bt.found, bt.requestID, bt.err = b.fetch(ctx, ids)
	if bt.err != nil && len(ids) > 1 {
		bt.err = fmt.Errorf("batched with %d others: %w", len(ids)-1, bt.err)
	}
	close(bt.done)
}
