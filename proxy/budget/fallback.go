package budget

import (
	"context"
	"time"

	"github.com/loom-gateway/loom/proxy/outage"
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
	// Tracker is primary's health: while it fails, calls count in local.
	*outage.Tracker
}

var _ Store = (*fallback)(nil)

func newFallback(primary, local Store, retry time.Duration, now func() time.Time) *fallback {
	return &fallback{primary: primary, local: local, Tracker: outage.New(ErrDegraded, retry, now)}
}

// Reserve implements Store.
func (f *fallback) Reserve(ctx context.Context, cs Counters, estimate int64) (Result, error) {
	if use, probe := f.UsePrimary(); use {
		res, err := f.primary.Reserve(ctx, cs, estimate)
		if !f.Failed(ctx, err, probe) {
			return res, err
		}
	}
	res, err := f.local.Reserve(ctx, cs, estimate)
	if err != nil {
		return res, err
	}
	res.Local = true
	return res, f.Err()
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
		return res, f.Down()
	}
	return f.primary.Settle(ctx, cs, reserved, actual)
}
