package limit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loom-gateway/loom/deploy/redisserver"
	"github.com/loom-gateway/loom/deploy/redisserver/redistest"
)

func redisClient(t testing.TB, srv *redisserver.Server) *redis.Client {
	return redistest.Client(t, srv)
}

func prefix(t testing.TB) string { return redistest.Prefix(t) }

// newTestRedis returns a Redis store with a short slot lease, closed when
// the test ends.
func newTestRedis(t testing.TB, c redis.UniversalClient, lease time.Duration) *Redis {
	r := newRedis(c, prefix(t), lease)
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func TestRedis_Conformance(t *testing.T) {
	c := redisClient(t, redistest.Start(t))
	testStore(t, func(t *testing.T) Store { return newTestRedis(t, c, slotLease) })
}

func TestFallback_HealthyRedis_Conformance(t *testing.T) {
	c := redisClient(t, redistest.Start(t))
	testStore(t, func(t *testing.T) Store { return Fallback(newTestRedis(t, c, slotLease), NewMemory()) })
}

func TestRedis_WindowKeys_ExpireAfterTwoMinutes(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t, redistest.Start(t))
	r := newTestRedis(t, c, slotLease)
	if _, _, err := r.Take(ctx, "taken", 7, 1, 5); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ctx, "added", 7, 3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Take(ctx, "taken", 7, 1, 5); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"taken", "added"} {
		ttl, err := c.TTL(ctx, r.windowKey(key, 7)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= windowTTL-5*time.Second || ttl > windowTTL {
			t.Errorf("TTL of %s = %v, want about %v", r.windowKey(key, 7), ttl, windowTTL)
		}
	}
	if got, _ := c.Get(ctx, r.windowKey("taken", 7)).Result(); got != "2" {
		t.Errorf("window key holds %q, want 2", got)
	}
}

func TestRedis_ScriptCacheFlushed_StillWorks(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t, redistest.Start(t))
	r := newTestRedis(t, c, slotLease)
	if _, _, err := r.Take(ctx, "a", 1, 1, 5); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n, ok, err := r.Take(ctx, "a", 1, 1, 5); n != 2 || !ok || err != nil {
		t.Fatalf("Take after SCRIPT FLUSH = %d, %v, %v; want 2, true, nil", n, ok, err)
	}
}

func TestRedis_CrashedReplica_SlotsLapseWithTheLease(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t, redistest.Start(t))
	const lease = 300 * time.Millisecond
	crashed, other := newTestRedis(t, c, lease), newTestRedis(t, c, lease)
	for range 2 {
		if _, ok, err := crashed.Acquire(ctx, "s", 2); !ok || err != nil {
			t.Fatalf("Acquire refused: %v", err)
		}
	}
	crashed.stopRenewing() // dies holding both slots, without Release
	if n, ok, err := other.Acquire(ctx, "s", 2); ok || err != nil || n != 2 {
		t.Fatalf("Acquire while the crashed replica's leases run = %d, %v, %v; want 2, false, nil", n, ok, err)
	}
	time.Sleep(lease + 100*time.Millisecond)
	if n, ok, err := other.Acquire(ctx, "s", 2); !ok || err != nil || n != 1 {
		t.Fatalf("Acquire after the leases lapsed = %d, %v, %v; want 1, true, nil", n, ok, err)
	}
}

func TestRedis_LiveReplica_RenewsSlotsPastTheLease(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t, redistest.Start(t))
	const lease = 600 * time.Millisecond // renewed every 200ms
	holder, other := newTestRedis(t, c, lease), newTestRedis(t, c, lease)
	if _, ok, err := holder.Acquire(ctx, "s", 1); !ok || err != nil {
		t.Fatalf("Acquire refused: %v", err)
	}
	time.Sleep(3 * lease)
	if _, ok, err := other.Acquire(ctx, "s", 1); ok || err != nil {
		t.Fatalf("another replica took a slot still held and renewed (err %v)", err)
	}
	ttl, err := c.PTTL(ctx, holder.prefix+"s").Result()
	if err != nil || ttl <= 0 || ttl > lease {
		t.Errorf("slot set PTTL = %v, %v; want within the lease %v", ttl, err, lease)
	}
	if err := holder.Release(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := other.Acquire(ctx, "s", 1); !ok || err != nil {
		t.Fatalf("Acquire after Release refused: %v", err)
	}
}

func TestRedis_Close_GivesBackHeldSlots(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t, redistest.Start(t))
	a, b := newTestRedis(t, c, slotLease), newTestRedis(t, c, slotLease)
	for range 3 {
		if _, ok, err := a.Acquire(ctx, "s", 3); !ok || err != nil {
			t.Fatalf("Acquire refused: %v", err)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, ok, err := b.Acquire(ctx, "s", 3); n != 1 || !ok || err != nil {
		t.Fatalf("Acquire after Close = %d, %v, %v; want 1, true, nil", n, ok, err)
	}
}

func TestLimiter_TwoReplicasOnOneRedis_NeverPassTheLimitTogether(t *testing.T) {
	ctx := context.Background()
	c := redisClient(t, redistest.Start(t))
	clk := newClock(20 * time.Second)
	replicas := []*Limiter{
		New(newTestRedis(t, c, slotLease), clk.now),
		New(newTestRedis(t, c, slotLease), clk.now),
	}
	const rpm, streams, attempts, goroutines = 50, 3, 300, 8
	key := &Subject{ID: "k:1", Rule: Rule{RPM: rpm, TPM: 1 << 40}}
	tenant := &Subject{ID: "t:1", Rule: Rule{RPM: 1000, Streams: streams}}
	for minute := range 2 {
		var admitted, maxStreams, open atomic.Int64
		var wg sync.WaitGroup
		for _, l := range replicas {
			for range goroutines {
				wg.Go(func() {
					for range attempts / goroutines {
						ticket, d := l.Admit(ctx, key, tenant, 5, true)
						if d.Err != nil {
							t.Error(d.Err)
							return
						}
						if !d.OK {
							continue
						}
						admitted.Add(1)
						n := open.Add(1)
						for m := maxStreams.Load(); n > m && !maxStreams.CompareAndSwap(m, n); m = maxStreams.Load() {
						}
						open.Add(-1)
						l.Settle(ctx, ticket, 5)
					}
				})
			}
		}
		wg.Wait()
		if got := admitted.Load(); got != rpm {
			t.Fatalf("minute %d: two replicas admitted %d of %d attempts at RPM %d", minute, got, 2*attempts/goroutines*goroutines, rpm)
		}
		if m := maxStreams.Load(); m > streams {
			t.Fatalf("minute %d: %d streams open at once, limit %d", minute, m, streams)
		}
		if n, _ := c.ZCard(ctx, prefix(t)+"t:1:streams").Result(); n != 0 {
			t.Fatalf("minute %d: %d slots still held after every call settled", minute, n)
		}
		clk.advance(time.Minute)
	}
}
