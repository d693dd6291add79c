// Package keylock serializes work per key: every CSI call on one volume runs
// alone, while calls on different volumes run in parallel.
package keylock

import (
	"context"
	"sync"
)

// Locks is a set of mutexes created on demand, one per key. The zero value is
// ready to use.
type Locks struct {
	mu    sync.Mutex
	locks map[string]*entry
}

type entry struct {
	ch      chan struct{} // a token in the channel means unlocked
	waiters int           // holders and waiters; the entry is dropped at zero
}

// Lock blocks until key is free or ctx is done. On success the caller must
// call the returned unlock function exactly once.
func (l *Locks) Lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[string]*entry)
	}
	e, ok := l.locks[key]
	if !ok {
		e = &entry{ch: make(chan struct{}, 1)}
		e.ch <- struct{}{}
		l.locks[key] = e
	}
	e.waiters++
	l.mu.Unlock()

	select {
	case <-e.ch:
		var once sync.Once
		return func() { once.Do(func() { e.ch <- struct{}{}; l.release(key, e) }) }, nil
	case <-ctx.Done():
		l.release(key, e)
		return nil, ctx.Err()
	}
}

func (l *Locks) release(key string, e *entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.waiters--
	if e.waiters == 0 {
		delete(l.locks, key)
	}
}

// Len reports how many keys are held or waited for; for tests and metrics.
func (l *Locks) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.locks)
}
