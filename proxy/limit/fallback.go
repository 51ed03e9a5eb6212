package limit

import (
	"context"
	"sync"
	"time"

	"github.com/loom-gateway/loom/proxy/outage"
)

// Fallback returns a Store that counts in primary (Redis) and, while
// primary fails, in local (Memory): limits then hold per replica instead of
// across replicas, and traffic goes on. Answers from local come with an
// error that matches ErrDegraded and unwraps to primary's error; it is the
// same value for the whole outage. After a failure primary is left alone for
// a second, then one call at a time tries it again while the others go on
// counting locally; the first success goes back to primary. Local counts
// made during the outage are not carried over; what local lent (stream
// slots) is given back to local.
func Fallback(primary, local Store) Store {
	return newFallback(primary, local, fallbackRetry, time.Now)
}

// fallbackRetry is how long a failed primary is left alone before one call
// tries it again: long enough not to queue every request behind a dead
// server's timeouts, short enough to come back quickly.
const fallbackRetry = time.Second

type fallback struct {
	primary, local Store
	// Tracker is primary's health: while it fails, calls count in local.
	*outage.Tracker

	mu   sync.Mutex
	lent map[string]int64 // slots acquired from local, by key, to release there
}

var _ Store = (*fallback)(nil)

func newFallback(primary, local Store, retry time.Duration, now func() time.Time) *fallback {
	return &fallback{primary: primary, local: local, Tracker: outage.New(ErrDegraded, retry, now), lent: make(map[string]int64)}
}

func (f *fallback) Take(ctx context.Context, key string, window int64, n, limit int64) (int64, bool, error) {
	if use, probe := f.UsePrimary(); use {
		c, ok, err := f.primary.Take(ctx, key, window, n, limit)
		if !f.Failed(ctx, err, probe) {
			return c, ok, err
		}
	}
	c, ok, err := f.local.Take(ctx, key, window, n, limit)
	if err != nil {
		return c, ok, err
	}
	return c, ok, f.Err()
}

// Add goes where Take would. An Add that undoes or settles a Take made in
// the other store is lost there; Memory keeps counts at zero or above.
func (f *fallback) Add(ctx context.Context, key string, window int64, n int64) error {
	if use, probe := f.UsePrimary(); use {
		err := f.primary.Add(ctx, key, window, n)
		if !f.Failed(ctx, err, probe) {
			return err
		}
	}
	if err := f.local.Add(ctx, key, window, n); err != nil {
		return err
	}
	return f.Err()
}

func (f *fallback) Acquire(ctx context.Context, key string, limit int64) (int64, bool, error) {
	if use, probe := f.UsePrimary(); use {
		c, ok, err := f.primary.Acquire(ctx, key, limit)
		if !f.Failed(ctx, err, probe) {
			return c, ok, err
		}
	}
	c, ok, err := f.local.Acquire(ctx, key, limit)
	if err != nil {
		return c, ok, err
	}
	if ok {
		f.mu.Lock()
		f.lent[key]++
		f.mu.Unlock()
	}
	return c, ok, f.Err()
}

// Release gives a slot back to local if local lent one for key, else to
// primary, whatever its state: slots are interchangeable within a store,
// and each store gets back as many as it gave.
func (f *fallback) Release(ctx context.Context, key string) error {
	f.mu.Lock()
	n := f.lent[key]
	if n > 1 {
		f.lent[key] = n - 1
	} else if n == 1 {
		delete(f.lent, key)
	}
	f.mu.Unlock()
	if n > 0 {
		return f.local.Release(ctx, key)
	}
	return f.primary.Release(ctx, key)
}
