package limit

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
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
	retry          time.Duration
	now            func() time.Time

	down    atomic.Pointer[degraded] // non-nil while primary is failing
	last    atomic.Pointer[degraded] // the latest outage's error
	retryAt atomic.Int64             // unix nanos after which primary is tried again
	probing atomic.Bool              // a call is trying primary

	mu   sync.Mutex
	lent map[string]int64 // slots acquired from local, by key, to release there
}

var _ Store = (*fallback)(nil)

func newFallback(primary, local Store, retry time.Duration, now func() time.Time) *fallback {
	return &fallback{primary: primary, local: local, retry: retry, now: now, lent: make(map[string]int64)}
}

// degraded is Fallback's error while primary fails.
type degraded struct{ cause error }

func (e *degraded) Error() string        { return ErrDegraded.Error() + ": " + e.cause.Error() }
func (e *degraded) Is(target error) bool { return target == ErrDegraded }
func (e *degraded) Unwrap() error        { return e.cause }

// usePrimary says whether this call goes to primary, and whether it is the
// one call probing a failed primary.
func (f *fallback) usePrimary() (use, probe bool) {
	if f.down.Load() == nil {
		return true, false
	}
	if f.now().UnixNano() < f.retryAt.Load() {
		return false, false
	}
	if f.probing.CompareAndSwap(false, true) {
		return true, true
	}
	return false, false
}

// failed records primary's result and reports whether the call should go
// to local instead. A call whose own context ended is not primary's fault:
// its error is returned as it is.
func (f *fallback) failed(ctx context.Context, err error, probe bool) bool {
	if probe {
		defer f.probing.Store(false)
	}
	if err == nil {
		if f.down.Load() != nil {
			f.down.Store(nil)
		}
		return false
	}
	if ctx.Err() != nil {
		return false
	}
	f.retryAt.Store(f.now().Add(f.retry).UnixNano())
	if f.down.Load() == nil {
		d := &degraded{cause: err}
		if f.down.CompareAndSwap(nil, d) {
			f.last.Store(d)
		}
	}
	return true
}

// degradedErr is the error that goes with a local answer.
func (f *fallback) degradedErr() error {
	if d := f.down.Load(); d != nil {
		return d
	}
	if d := f.last.Load(); d != nil {
		return d // primary came back meanwhile; this answer was still local
	}
	return ErrDegraded
}

func (f *fallback) Take(ctx context.Context, key string, window int64, n, limit int64) (int64, bool, error) {
	if use, probe := f.usePrimary(); use {
		c, ok, err := f.primary.Take(ctx, key, window, n, limit)
		if !f.failed(ctx, err, probe) {
			return c, ok, err
		}
	}
	c, ok, err := f.local.Take(ctx, key, window, n, limit)
	if err != nil {
		return c, ok, err
	}
	return c, ok, f.degradedErr()
}

// Add goes where Take would. An Add that undoes or settles a Take made in
// the other store is lost there; Memory keeps counts at zero or above.
func (f *fallback) Add(ctx context.Context, key string, window int64, n int64) error {
	if use, probe := f.usePrimary(); use {
		err := f.primary.Add(ctx, key, window, n)
		if !f.failed(ctx, err, probe) {
			return err
		}
	}
	if err := f.local.Add(ctx, key, window, n); err != nil {
		return err
	}
	return f.degradedErr()
}

func (f *fallback) Acquire(ctx context.Context, key string, limit int64) (int64, bool, error) {
	if use, probe := f.usePrimary(); use {
		c, ok, err := f.primary.Acquire(ctx, key, limit)
		if !f.failed(ctx, err, probe) {
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
	return c, ok, f.degradedErr()
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
