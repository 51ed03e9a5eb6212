package budget

import (
	"context"
	"sync/atomic"
	"time"
)

// Fallback returns a Store that counts in primary (Redis) and, while
// primary fails, in local (Memory): budgets then hold per replica instead
// of across replicas, and traffic goes on. It is limit.Fallback's approach:
// answers from local come with an error that matches ErrDegraded and
// unwraps to primary's error, the same value for the whole outage; after a
// failure primary is left alone for a second, then one call at a time
// tries it again while the others go on counting locally; the first
// success goes back to primary. A reservation is settled in the store that
// made it (Counters.Local). What local counted during the outage is not
// carried over to primary: spend made then is missing from the shared
// count (the spans still have it).
func Fallback(primary, local Store) Store {
	return newFallback(primary, local, fallbackRetry, time.Now)
}

// fallbackRetry is how long a failed primary is left alone before one
// call tries it again.
const fallbackRetry = time.Second

type fallback struct {
	primary, local Store
	retry          time.Duration
	now            func() time.Time

	down    atomic.Pointer[degraded] // non-nil while primary is failing
	last    atomic.Pointer[degraded] // the latest outage's error
	retryAt atomic.Int64             // unix nanos after which primary is tried again
	probing atomic.Bool              // a call is trying primary
}

var _ Store = (*fallback)(nil)

func newFallback(primary, local Store, retry time.Duration, now func() time.Time) *fallback {
	return &fallback{primary: primary, local: local, retry: retry, now: now}
}

// degraded is Fallback's error while primary fails.
type degraded struct{ cause error }

func (e *degraded) Error() string        { return ErrDegraded.Error() + ": " + e.cause.Error() }
func (e *degraded) Is(target error) bool { return target == ErrDegraded }
func (e *degraded) Unwrap() error        { return e.cause }

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
// to local instead. A call whose own context ended is not primary's fault.
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

func (f *fallback) degradedErr() error {
	if d := f.down.Load(); d != nil {
		return d
	}
	if d := f.last.Load(); d != nil {
		return d
	}
	return ErrDegraded
}

// Reserve implements Store.
func (f *fallback) Reserve(ctx context.Context, cs Counters, estimate int64) (Result, error) {
	if use, probe := f.usePrimary(); use {
		res, err := f.primary.Reserve(ctx, cs, estimate)
		if !f.failed(ctx, err, probe) {
			return res, err
		}
	}
	res, err := f.local.Reserve(ctx, cs, estimate)
	if err != nil {
		return res, err
	}
	res.Local = true
	return res, f.degradedErr()
}

// Settle implements Store: in local what local reserved, else in primary
// whatever its state (a reservation held in Redis is released there or
// not at all; it lapses with its period).
func (f *fallback) Settle(ctx context.Context, cs Counters, reserved, actual int64) (Result, error) {
	if cs.Local {
		res, err := f.local.Settle(ctx, cs, reserved, actual)
		if err != nil {
			return res, err
		}
		res.Local = true
		if d := f.down.Load(); d != nil {
			return res, d
		}
		return res, nil
	}
	return f.primary.Settle(ctx, cs, reserved, actual)
}
