package upstream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/upstream"
)

func deployment(t *testing.T, maxConns int, share float64) *upstream.Deployment {
	t.Helper()
	d, err := upstream.New(config.Deployment{Name: "d", Provider: config.ProviderOpenAI, BaseURL: "http://127.0.0.1:9/v1",
		MaxConns: maxConns, TenantShare: share}, config.DefaultTimeouts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAcquire_TenantShareThenWholePool(t *testing.T) {
	d := deployment(t, 4, 0.5)
	if d.TenantShare() != 2 {
		t.Fatalf("share of 4 at 0.5 = %d, want 2", d.TenantShare())
	}
	var held []upstream.Slot
	take := func(tenant string) {
		t.Helper()
		s, err := d.Acquire(tenant, 0)
		if err != nil {
			t.Fatalf("%s: %v", tenant, err)
		}
		held = append(held, s)
	}
	take("a")
	take("a")
	start := time.Now()
	if _, err := d.Acquire("a", 50*time.Millisecond); !errors.Is(err, upstream.ErrShareExceeded) {
		t.Fatalf("third place for a: %v, want ErrShareExceeded", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("gave up after %v, before the wait", waited)
	}
	take("b")
	take("b")
	if _, err := d.Acquire("c", 10*time.Millisecond); !errors.Is(err, upstream.ErrSaturated) {
		t.Fatalf("c in a full pool: %v, want ErrSaturated", err)
	}
	if d.InUse("c") != 0 {
		t.Fatalf("a refused call kept %d places", d.InUse("c"))
	}
	// A waiting call gets the first place that comes free.
	got := make(chan error, 1)
	go func() {
		s, err := d.Acquire("c", 5*time.Second)
		s.Release()
		got <- err
	}()
	held[0].Release()
	if err := <-got; err != nil {
		t.Fatalf("c after a release: %v", err)
	}
	// Release is once: a second call gives nothing more back.
	held[0].Release()
	if d.InUse("a") != 1 || d.InUse("b") != 2 {
		t.Fatalf("in use: a %d b %d, want 1 and 2", d.InUse("a"), d.InUse("b"))
	}
}

func TestAcquire_FreePlace_AllocatesNothing(t *testing.T) {
	d := deployment(t, 8, 0.5)
	if n := testing.AllocsPerRun(1000, func() {
		s, err := d.Acquire("tenant-1", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
	}); n != 0 {
		t.Fatalf("%v allocations per acquire and release, want 0", n)
	}
}

// The provider's x-ratelimit-* headers never pass, even where a deployment
// lists them: they describe the gateway's provider account, not a tenant.
func TestForwardResponseHeader_ProviderRateLimitsNeverPass(t *testing.T) {
	d, err := upstream.New(config.Deployment{Name: "d", Provider: config.ProviderOpenAI, BaseURL: "http://127.0.0.1:9/v1",
		ForwardResponseHeaders: []string{"x-ratelimit-*", "X-RateLimit-Remaining-Tokens"}}, config.DefaultTimeouts, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"x-ratelimit-remaining-requests", "X-RateLimit-Remaining-Tokens", "x-ratelimit-reset-tokens"} {
		if d.ForwardResponseHeader([]byte(h)) {
			t.Errorf("%s passes", h)
		}
	}
	if !d.ForwardResponseHeader([]byte("x-request-id")) || !d.ForwardResponseHeader([]byte("Retry-After")) {
		t.Error("ordinary response headers no longer pass")
	}
}

// Pool reports the places held and the calls waiting for one, for the
// loom_upstream_connections_* gauges; both fall back when calls move on.
func TestPool_CountsPlacesInUseAndCallsWaiting(t *testing.T) {
	d := deployment(t, 1, 1)
	s, err := d.Acquire("a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if inUse, waiting := d.Pool(); inUse != 1 || waiting != 0 {
		t.Fatalf("one held: in use %d, waiting %d", inUse, waiting)
	}
	got := make(chan upstream.Slot)
	go func() {
		s2, err := d.Acquire("b", 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- s2
	}()
	deadline := time.Now().Add(5 * time.Second)
	for _, waiting := d.Pool(); waiting != 1; _, waiting = d.Pool() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting = %d, want 1 while b waits", waiting)
		}
		time.Sleep(time.Millisecond)
	}
	s.Release()
	s2 := <-got
	if inUse, waiting := d.Pool(); inUse != 1 || waiting != 0 {
		t.Fatalf("b served: in use %d, waiting %d", inUse, waiting)
	}
	s2.Release()
	if inUse, _ := d.Pool(); inUse != 0 {
		t.Fatalf("all released: in use %d", inUse)
	}
}
