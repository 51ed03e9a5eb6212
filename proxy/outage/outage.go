// Package outage tracks the health of a shared store (Redis) for the
// fallbacks that count locally while it fails: proxy/limit's rate limits
// and proxy/budget's budgets. After a failure the store is left alone for a
// while (Retry), then one call at a time tries it again while the others
// go on locally; the first success ends the outage. While it lasts, local
// answers carry one error value, which matches the package's sentinel
// (limit.ErrDegraded, budget.ErrDegraded) and unwraps to the store's first
// error.
package outage

import (
	"context"
	"sync/atomic"
	"time"
)

// Error is the error of an outage: it matches its sentinel with errors.Is
// and unwraps to the failure that began it.
type Error struct{ sentinel, cause error }

func (e *Error) Error() string        { return e.sentinel.Error() + ": " + e.cause.Error() }
func (e *Error) Is(target error) bool { return target == e.sentinel }
func (e *Error) Unwrap() error        { return e.cause }

// Tracker is one shared store's state. The zero value is not usable: see
// New.
type Tracker struct {
	sentinel error
	retry    time.Duration
	now      func() time.Time

	down    atomic.Pointer[Error] // non-nil while the store is failing
	last    atomic.Pointer[Error] // the latest outage's error
	retryAt atomic.Int64          // unix nanos after which the store is tried again
	probing atomic.Bool           // a call is trying the store
}

// New returns a Tracker whose errors match sentinel and which leaves a
// failed store alone for retry, reading the time from now.
func New(sentinel error, retry time.Duration, now func() time.Time) *Tracker {
	return &Tracker{sentinel: sentinel, retry: retry, now: now}
}

// UsePrimary says whether this call goes to the shared store, and whether
// it is the one call probing it during an outage (it must then report its
// result to Failed).
func (t *Tracker) UsePrimary() (use, probe bool) {
	if t.down.Load() == nil {
		return true, false
	}
	if t.now().UnixNano() < t.retryAt.Load() {
		return false, false
	}
	if t.probing.CompareAndSwap(false, true) {
		return true, true
	}
	return false, false
}

// Failed records the store's answer err and reports whether the call
// should be counted locally instead. A call whose own context ended is not
// the store's fault.
func (t *Tracker) Failed(ctx context.Context, err error, probe bool) bool {
	if probe {
		defer t.probing.Store(false)
	}
	if err == nil {
		if t.down.Load() != nil {
			t.down.Store(nil)
		}
		return false
	}
	if ctx.Err() != nil {
		return false
	}
	t.retryAt.Store(t.now().Add(t.retry).UnixNano())
	if t.down.Load() == nil {
		d := &Error{sentinel: t.sentinel, cause: err}
		if t.down.CompareAndSwap(nil, d) {
			t.last.Store(d)
		}
	}
	return true
}

// Err is the error that goes with a local answer: the current outage's,
// else the latest one's (a call that raced its end), else the sentinel.
func (t *Tracker) Err() error {
	if d := t.down.Load(); d != nil {
		return d
	}
	if d := t.last.Load(); d != nil {
		return d
	}
	return t.sentinel
}

// Down is the current outage's error, nil when the store is healthy.
func (t *Tracker) Down() error {
	if d := t.down.Load(); d != nil {
		return d
	}
	return nil
}
