package limit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/redisserver"
	"github.com/loom-gateway/loom/deploy/redisserver/redistest"
)

// switchable is a Store that fails while down is set, else uses Memory.
type switchable struct {
	*Memory
	down  atomic.Bool
	calls atomic.Int64
}

var errDown = errors.New("primary down")

func newSwitchable() *switchable {
	return &switchable{Memory: NewMemory()}
}

func (s *switchable) err() error {
	s.calls.Add(1)
	if s.down.Load() {
		return errDown
	}
	return nil
}

func (s *switchable) Take(ctx context.Context, key string, window, n, limit int64) (int64, bool, error) {
	if err := s.err(); err != nil {
		return 0, false, err
	}
	return s.Memory.Take(ctx, key, window, n, limit)
}

func (s *switchable) Add(ctx context.Context, key string, window, n int64) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Memory.Add(ctx, key, window, n)
}

func (s *switchable) Acquire(ctx context.Context, key string, limit int64) (int64, bool, error) {
	if err := s.err(); err != nil {
		return 0, false, err
	}
	return s.Memory.Acquire(ctx, key, limit)
}

func (s *switchable) Release(ctx context.Context, key string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Memory.Release(ctx, key)
}

func TestFallback_PrimaryFails_CountsLocally_ThenGoesBack(t *testing.T) {
	ctx := context.Background()
	clk := newClock(0)
	primary, local := newSwitchable(), NewMemory()
	f := newFallback(primary, local, time.Second, clk.now)

	if _, _, err := f.Take(ctx, "a", 1, 1, 3); err != nil {
		t.Fatal(err)
	}
	primary.down.Store(true)
	var first error
	for i, want := range []bool{true, true, true, false} {
		_, ok, err := f.Take(ctx, "a", 1, 1, 3)
		if ok != want || !errors.Is(err, ErrDegraded) || !errors.Is(err, errDown) {
			t.Fatalf("Take %d while primary is down = %v, %v; want %v, ErrDegraded wrapping errDown", i, ok, err, want)
		}
		if first == nil {
			first = err
		} else if err != first { //nolint:errorlint // the same error value, not merely one that wraps it
			t.Fatalf("error changed within one outage: %p then %p", first, err)
		}
	}
	if n := primary.calls.Load(); n != 2 {
		t.Fatalf("primary called %d times; want 2 (one before the outage, then left alone)", n)
	}

	clk.advance(time.Second) // time to try again, and primary is still down
	_, _, err := f.Take(ctx, "a", 1, 1, 3)
	if err != first { //nolint:errorlint // the same error value, not merely one that wraps it
		t.Fatalf("a failed retry returned %v; want the outage's error %v", err, first)
	}
	if n := primary.calls.Load(); n != 3 {
		t.Fatalf("primary called %d times; want one retry", n)
	}

	primary.down.Store(false)
	clk.advance(time.Second)
	c, ok, err := f.Take(ctx, "a", 1, 1, 3)
	if c != 2 || !ok || err != nil {
		t.Fatalf("Take after primary came back = %d, %v, %v; want 2 (primary's count), true, nil", c, ok, err)
	}
	if _, _, err := f.Take(ctx, "a", 1, 0, 3); err != nil {
		t.Fatalf("primary is back but: %v", err)
	}
}

func TestFallback_OneCallProbesAtATime(t *testing.T) {
	ctx := context.Background()
	clk := newClock(0)
	probing := make(chan struct{})
	unblock := make(chan struct{})
	var calls atomic.Int64
	primary := failingStore(errDown)
	primary.TakeFunc = func(context.Context, string, int64, int64, int64) (int64, bool, error) {
		if calls.Add(1) == 2 { // the probe: hang like a dead server
			close(probing)
			<-unblock
		}
		return 0, false, errDown
	}
	f := newFallback(primary, NewMemory(), time.Second, clk.now)
	f.Take(ctx, "a", 1, 1, 10) // primary fails: down
	clk.advance(time.Second)
	var wg sync.WaitGroup
	wg.Go(func() { f.Take(ctx, "a", 1, 1, 10) })
	<-probing
	for range 5 {
		if _, ok, err := f.Take(ctx, "a", 1, 1, 10); !ok || !errors.Is(err, ErrDegraded) {
			t.Fatalf("a call during the probe: %v, %v; want a local answer", ok, err)
		}
	}
	close(unblock)
	wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Fatalf("primary called %d times; want 2 (the failure, one probe)", n)
	}
}

func TestFallback_CallersContextEnded_NotAnOutage(t *testing.T) {
	primary := failingStore(context.Canceled)
	f := newFallback(primary, NewMemory(), time.Second, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.Take(ctx, "a", 1, 1, 10); !errors.Is(err, context.Canceled) || errors.Is(err, ErrDegraded) {
		t.Fatalf("err = %v; want the caller's cancellation, not a local answer", err)
	}
	if f.Down() != nil {
		t.Fatal("a cancelled caller marked primary down")
	}
}

func TestFallback_SlotsGoBackToTheStoreThatLentThem(t *testing.T) {
	ctx := context.Background()
	clk := newClock(0)
	primary, local := newSwitchable(), NewMemory()
	f := newFallback(primary, local, time.Second, clk.now)
	if _, ok, _ := f.Acquire(ctx, "s", 5); !ok { // from primary
		t.Fatal("refused")
	}
	primary.down.Store(true)
	if _, ok, err := f.Acquire(ctx, "s", 5); !ok || !errors.Is(err, ErrDegraded) { // from local
		t.Fatalf("%v, %v", ok, err)
	}
	primary.down.Store(false)
	clk.advance(time.Second)
	for range 2 {
		if err := f.Release(ctx, "s"); err != nil {
			t.Fatal(err)
		}
	}
	if n, _, _ := local.Acquire(ctx, "s", 5); n != 1 {
		t.Errorf("local holds %d slots after both releases, want 0", n-1)
	}
	if n, _, _ := primary.Memory.Acquire(ctx, "s", 5); n != 1 {
		t.Errorf("primary holds %d slots after both releases, want 0", n-1)
	}
}

func TestLimiter_RedisStops_FailsOpenCountingLocally_ThenRecovers(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := redisClient(t, srv)
	clk := newClock(0)
	l := New(newFallback(newTestRedis(t, c, slotLease), NewMemory(), 50*time.Millisecond, time.Now), clk.now)
	key := &Subject{ID: "k:1", Rule: Rule{RPM: 3}}

	if _, d := l.Admit(ctx, key, nil, 1, false); !d.OK || d.Err != nil || d.RemainingRequests != 2 {
		t.Fatalf("with Redis up: %+v", d)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, true, false} { // Memory counts from zero
		_, d := l.Admit(ctx, key, nil, 1, false)
		if d.OK != want || !errors.Is(d.Err, ErrDegraded) {
			t.Fatalf("request %d with Redis down: %+v; want OK %v, Err ErrDegraded", i, d, want)
		}
	}

	restarted, err := redisserver.Start(ctx, redisserver.Options{Dir: srv.Dir(), Port: srv.Port()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Stop() })
	time.Sleep(100 * time.Millisecond) // past the retry pause
	var d Decision
	for range 20 { // the pool may hand out a dead connection first
		if _, d = l.Admit(ctx, key, nil, 1, false); d.Err == nil {
			break
		}
		time.Sleep(60 * time.Millisecond)
	}
	if !d.OK || d.Err != nil || d.RemainingRequests != 2 {
		t.Fatalf("after Redis came back (empty): %+v; want admitted by Redis, 2 remaining", d)
	}
}

func TestLimiter_RedisNeverUp_FailOpenWithoutFallback(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := redisClient(t, srv)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	l := New(newTestRedis(t, c, slotLease), nil)
	key := &Subject{ID: "k:1", Rule: Rule{RPM: 1, Streams: 1}}
	for range 3 {
		ticket, d := l.Admit(ctx, key, nil, 1, true)
		if !d.OK || d.Err == nil || errors.Is(d.Err, ErrDegraded) {
			t.Fatalf("%+v; want admitted with the store's error", d)
		}
		l.Settle(ctx, ticket, 1)
	}
}
