package budget

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loom-gateway/loom/deploy/redisserver"
	"github.com/loom-gateway/loom/deploy/redisserver/redistest"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

func startRedis(t testing.TB) *redisserver.Server { return redistest.Start(t) }

func redisClient(t testing.TB, srv *redisserver.Server) *redis.Client {
	return redistest.Client(t, srv)
}

func prefix(t testing.TB) string { return redistest.Prefix(t) }

func TestRedis_Conformance(t *testing.T) {
	c := redisClient(t, startRedis(t))
	testStore(t, func(t *testing.T) Store { return NewRedis(c, prefix(t)) })
}

func TestFallback_HealthyRedis_Conformance(t *testing.T) {
	c := redisClient(t, startRedis(t))
	testStore(t, func(t *testing.T) Store { return Fallback(NewRedis(c, prefix(t)), NewMemory()) })
}

func TestRedis_CounterKeys_TenantHashTag_ExpireAnHourAfterThePeriod(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t, startRedis(t))
	r := NewRedis(c, prefix(t))
	cs := counters("acme", Counter{Subject: "t:acme", Limit: 10 * u}, Counter{Subject: "k:k1", Limit: 10 * u})
	if _, err := r.Reserve(ctx, cs, u); err != nil {
		t.Fatal(err)
	}
	key := r.CounterKey("acme", &cs.C[1])
	if want := prefix(t) + "{acme}:k:k1:day:" + time.Now().UTC().Format(time.DateOnly); key != want {
		t.Fatalf("counter key %q, want %q", key, want)
	}
	ttl, err := c.TTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	_, end := Day.Bounds(time.Now())
	if want := time.Until(time.Unix(end, 0).Add(forgetAfter)); ttl < want-5*time.Second || ttl > want+5*time.Second {
		t.Fatalf("TTL %v, want about %v (an hour past the day's end)", ttl, want)
	}
}

// Amounts past 2^53 units (9,007 currency units) stay exact in Redis.
func TestRedis_LargeAmounts_ExactToTheUnit(t *testing.T) {
	ctx := context.Background()
	r := NewRedis(redisClient(t, startRedis(t)), prefix(t))
	cs := counters("acme", Counter{Subject: "t:acme", Limit: 900_000 * u})
	if _, err := r.Reserve(ctx, cs, 500_000*u+1); err != nil {
		t.Fatal(err)
	}
	res, err := r.Settle(ctx, cs, 500_000*u+1, 400_000*u+3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Spent[0] != 400_000*u+3 || res.Reserved[0] != 0 {
		t.Fatalf("spent %d reserved %d, want %d and 0", res.Spent[0], res.Reserved[0], int64(400_000*u+3))
	}
}

func TestRedis_ScriptCacheFlushed_StillWorks(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t, startRedis(t))
	r := NewRedis(c, prefix(t))
	cs := counters("acme", Counter{Subject: "t:acme", Limit: 10 * u})
	if _, err := r.Reserve(ctx, cs, u); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Reserve(ctx, cs, u); err != nil || res.Reserved[0] != 2*u {
		t.Fatalf("after SCRIPT FLUSH: %+v, %v", res, err)
	}
}

// Two replicas, 16 goroutines each, 200 calls reserving 1 against a tenant
// budget of 25 and settling at 1: exactly 25 are admitted across both.
func TestBudgets_TwoReplicasOnOneRedis_NeverPassTheLimitTogether(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t, startRedis(t))
	replicas := []*Budgets{New(NewRedis(c, prefix(t)), nil, nil), New(NewRedis(c, prefix(t)), nil, nil)}
	s := subjects(t, []tenancy.Budget{budgetOf("day", "25", 0)}, []tenancy.Budget{budgetOf("month", "1000", 0)})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for _, b := range replicas {
		for range 16 {
			wg.Go(func() {
				for range 200 / 16 / 2 {
					r, d, err := b.Reserve(ctx, s, u)
					if err != nil {
						t.Error(err)
						return
					}
					if d.OK {
						admitted.Add(1)
						if err := b.Settle(ctx, r, u); err != nil {
							t.Error(err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	if n := admitted.Load(); n != 25 {
		t.Fatalf("two replicas admitted %d, want 25", n)
	}
}

// switchable is a Store that fails while down is set, else uses Memory.
type switchable struct {
	*Memory
	down  atomic.Bool
	calls atomic.Int64
}

var errDown = errors.New("primary down")

func (s *switchable) Reserve(ctx context.Context, cs Counters, est int64) (Result, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return Result{}, errDown
	}
	return s.Memory.Reserve(ctx, cs, est)
}

func (s *switchable) Settle(ctx context.Context, cs Counters, reserved, actual int64) (Result, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return Result{}, errDown
	}
	return s.Memory.Settle(ctx, cs, reserved, actual)
}

func TestFallback_PrimaryFails_CountsLocally_SettlesWhereReserved_ThenGoesBack(t *testing.T) {
	ctx := context.Background()
	clk := newClock(day5)
	primary, local := &switchable{Memory: NewMemory()}, NewMemory()
	b := New(newFallback(primary, local, time.Second, clk.now), clk.now, nil)
	s := subjects(t, []tenancy.Budget{budgetOf("day", "3", 0)}, nil)

	inPrimary, d, err := b.Reserve(ctx, s, u)
	if !d.OK || err != nil {
		t.Fatal(d, err)
	}
	primary.down.Store(true)
	var first error
	var local1 Reservation
	for i, want := range []bool{true, true, true, false} { // local counts from zero
		r, d, err := b.Reserve(ctx, s, u)
		if d.OK != want || !errors.Is(err, ErrDegraded) || !errors.Is(err, errDown) {
			t.Fatalf("call %d while primary is down: %+v, %v; want OK %v, ErrDegraded wrapping errDown", i, d, err, want)
		}
		if first == nil {
			first, local1 = err, r
		} else if err != first { //nolint:errorlint // the same value for the whole outage
			t.Fatalf("error changed within one outage")
		}
	}
	if n := primary.calls.Load(); n != 2 {
		t.Fatalf("primary called %d times, want 2 (then left alone)", n)
	}
	primary.down.Store(false)
	clk.advance(time.Second)
	if _, d, err = b.Reserve(ctx, s, 0); err != nil || d.Remaining != 2*u {
		t.Fatalf("primary back: %+v, %v; want primary's count, 2 left", d, err)
	}
	if err := b.Settle(ctx, local1, u/2); err != nil {
		t.Fatalf("settling a local reservation after primary came back: %v", err)
	}
	if err := b.Settle(ctx, inPrimary, u/4); err != nil {
		t.Fatal(err)
	}
	if _, d, err = b.Reserve(ctx, s, 0); err != nil || d.Remaining != 3*u-u/4 {
		t.Fatalf("after settling: %+v, %v; want 2.75 left in primary", d, err)
	}
	start, end := Day.Bounds(day5)
	lres, _ := local.Reserve(ctx, Counters{Tenant: "acme", N: 1, C: [MaxCounters]Counter{{Subject: "t:acme", Period: Day, Start: start, End: end, Limit: 3 * u}}}, 0)
	if lres.Spent[0] != u/2 || lres.Reserved[0] != 2*u {
		t.Fatalf("local holds spent %d reserved %d; want 0.50 settled there, 2 still reserved", lres.Spent[0], lres.Reserved[0])
	}
}

func TestBudgets_RedisStops_CountsLocally_ThenRecovers(t *testing.T) {
	ctx := context.Background()
	srv := startRedis(t)
	c := redisClient(t, srv)
	b := New(newFallback(NewRedis(c, prefix(t)), NewMemory(), 50*time.Millisecond, time.Now), nil, nil)
	s := subjects(t, []tenancy.Budget{budgetOf("day", "2", 0)}, nil)
	r, d, err := b.Reserve(ctx, s, u)
	if !d.OK || err != nil {
		t.Fatalf("with Redis up: %+v, %v", d, err)
	}
	if err := b.Settle(ctx, r, u); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, false} { // Memory counts from zero
		_, d, err := b.Reserve(ctx, s, u)
		if d.OK != want || !errors.Is(err, ErrDegraded) {
			t.Fatalf("call %d with Redis down: %+v, %v; want OK %v, ErrDegraded", i, d, err, want)
		}
	}
	restarted, err := redisserver.Start(ctx, redisserver.Options{Dir: srv.Dir(), Port: srv.Port()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Stop() })
	deadline := time.Now().Add(5 * time.Second)
	for { // the pool may hand out a dead connection first; the retry pause is 50ms
		if _, d, err = b.Reserve(ctx, s, 0); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || !d.OK || d.Remaining != 2*u {
		t.Fatalf("after Redis came back (empty): %+v, %v; want counted in Redis, 2 left", d, err)
	}
}
