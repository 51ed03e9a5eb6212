package store_test

import (
	"context"
	"fmt"
	"github.com/loom-gateway/loom/proxy/logtest"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/store"
)

// watch runs Watch until the test ends and returns its calls.
func watch(t *testing.T, st *store.Store, poll time.Duration) <-chan time.Time {
	t.Helper()
	calls := make(chan time.Time, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Watch(ctx, poll, func() { calls <- time.Now() })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return calls
}

// within waits up to d for a call and reports whether one came.
func within(calls <-chan time.Time, d time.Duration) bool {
	select {
	case <-calls:
		return true
	case <-time.After(d):
		return false
	}
}

// settle drains calls until none has come for a while.
func settle(calls <-chan time.Time) {
	for within(calls, 150*time.Millisecond) {
	}
}

func TestWatch_ChangeSeenWithinASecond_AlsoAfterPostgresRestarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	var logs logtest.Buffer
	st := open(t, e.url, e.box, store.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	calls := watch(t, st, time.Hour)
	if !within(calls, 5*time.Second) {
		t.Fatal("no call once listening")
	}
	settle(calls)
	if err := st.CreateTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if !within(calls, time.Second) {
		t.Fatal("a change was not reported within 1s")
	}

	if err := e.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Notifications sent while it was away are lost: it reports once back.
	// Backoff is at most 1s, so it is back within about a second (a
	// little more for a loaded test machine).
	if !within(calls, 2*time.Second) {
		t.Fatal("no call within 2s of Postgres coming back")
	}
	settle(calls)
	begun := time.Now()
	var err error
	for range 3 { // the pool's connections died with the server
		if err = st.SetModels(ctx, "acme", nil); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if !within(calls, time.Second) {
		t.Fatalf("a change after the restart was not reported within 1s of %s", begun.Format(time.StampMilli))
	}
	for _, line := range []string{"change feed lost", "change feed back"} {
		if s := logs.String(); !strings.Contains(s, line) {
			t.Errorf("no %q in the log:\n%s", line, s)
		}
	}
}

func TestWatch_BurstOfChanges_CoalescedAndPollsWithoutChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	calls := watch(t, e.st, time.Hour)
	if !within(calls, 5*time.Second) {
		t.Fatal("no call once listening")
	}
	settle(calls)
	const n = 20
	for i := range n {
		if err := e.st.CreateTenant(ctx, store.TenantSpec{ID: fmt.Sprint("t", i)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if got := len(calls); got == 0 || got >= n {
		t.Errorf("%d changes gave %d calls; want fewer, and at least one", n, got)
	}

	polled := watch(t, e.st, 100*time.Millisecond)
	time.Sleep(650 * time.Millisecond)
	if got := len(polled); got < 4 {
		t.Errorf("%d calls in 650ms with poll 100ms and no changes; want the first and about one per poll", got)
	}
}
