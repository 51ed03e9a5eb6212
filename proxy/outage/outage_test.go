package outage

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errSentinel = errors.New("counted locally")

// A failure starts an outage: calls go local for the retry time, then one
// call probes; its success ends the outage. Every local answer of the
// outage carries the same error, which matches the sentinel and unwraps to
// the first failure.
func TestTracker_FailureThenRetryWindowThenOneProbe(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := New(errSentinel, time.Second, func() time.Time { return now })
	ctx := context.Background()
	if use, probe := tr.UsePrimary(); !use || probe {
		t.Fatalf("healthy: UsePrimary = %v, %v", use, probe)
	}
	first := errors.New("connection refused")
	if !tr.Failed(ctx, first, false) {
		t.Fatal("a failure did not send the call local")
	}
	tr.Failed(ctx, errors.New("a later failure"), false)
	err := tr.Err()
	if !errors.Is(err, errSentinel) || !errors.Is(err, first) || tr.Down() != err { //nolint:errorlint // the same value, not one that wraps it
		t.Fatalf("outage error %v (Down %v): want one value matching the sentinel and the first failure", err, tr.Down())
	}
	if use, _ := tr.UsePrimary(); use {
		t.Fatal("primary tried inside the retry window")
	}
	now = now.Add(time.Second)
	use, probe := tr.UsePrimary()
	if !use || !probe {
		t.Fatalf("after the window: UsePrimary = %v, %v; want one probe", use, probe)
	}
	if use, _ := tr.UsePrimary(); use {
		t.Fatal("a second call probed while the first did")
	}
	if tr.Failed(ctx, nil, true) {
		t.Fatal("a successful probe sent the call local")
	}
	if tr.Down() != nil {
		t.Fatal("a successful probe did not end the outage")
	}
	if !errors.Is(tr.Err(), first) {
		t.Fatalf("after the outage Err = %v, want the last outage's (a call that raced its end)", tr.Err())
	}
}

// A call whose own context ended did not find the store failing.
func TestTracker_CallersContextEnded_NotAnOutage(t *testing.T) {
	tr := New(errSentinel, time.Second, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if tr.Failed(ctx, context.Canceled, false) || tr.Down() != nil {
		t.Fatal("a cancelled caller started an outage")
	}
	if !errors.Is(tr.Err(), errSentinel) {
		t.Fatalf("Err with no outage yet = %v, want the sentinel", tr.Err())
	}
}
