package limit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

// clock is a settable time source for Limiters.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// newClock starts at 12:00:00 plus offset, on a day in 2025.
func newClock(offset time.Duration) *clock {
	return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).Add(offset)}
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// count reads a key's count in the window of now without changing it.
func count(t *testing.T, s Store, key string, now time.Time) int64 {
	t.Helper()
	c, _, err := s.Take(context.Background(), key, now.Unix()/60, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRuleOf(t *testing.T) {
	got := RuleOf(tenancy.Limits{RequestsPerMinute: 60, TokensPerMinute: 1000, ConcurrentStreams: -1})
	if want := (Rule{RPM: 60, TPM: 1000}); got != want {
		t.Fatalf("RuleOf = %+v, want %+v", got, want)
	}
}

func TestAdmit_TwiceTheRPM_ExactlyRPMAdmittedPerWindow(t *testing.T) {
	ctx := context.Background()
	clk := newClock(0)
	l := New(NewMemory(), clk.now)
	key := &Subject{ID: "k:1", Rule: Rule{RPM: 10}}
	for minute := range 2 {
		admitted := 0
		for i := range 20 {
			clk.advance(2 * time.Second) // 20 requests across 40s of the minute
			ticket, d := l.Admit(ctx, key, nil, 0, false)
			reset := clk.now().Truncate(time.Minute).Add(time.Minute).Sub(clk.now())
			if d.LimitRequests != 10 || d.ResetRequests != reset || d.Err != nil {
				t.Fatalf("minute %d request %d: %+v; want limit 10, reset %v", minute, i, d, reset)
			}
			if d.LimitTokens != 0 || d.ResetTokens != 0 {
				t.Fatalf("token headers without a token limit: %+v", d)
			}
			if d.OK {
				admitted++
				if d.RemainingRequests != int64(10-admitted) {
					t.Fatalf("remaining %d after %d admitted", d.RemainingRequests, admitted)
				}
				l.Settle(ctx, ticket, 10)
				continue
			}
			if d.Limited != LimitedRequests || d.Scope != ScopeKey || d.RemainingRequests != 0 || d.RetryAfter != reset {
				t.Fatalf("refusal %+v; want requests, key, 0 remaining, retry after %v", d, reset)
			}
			if ticket != (Ticket{}) {
				t.Fatalf("a refusal returned a ticket: %+v", ticket)
			}
		}
		if admitted != 10 {
			t.Fatalf("minute %d: admitted %d of 20 at RPM 10", minute, admitted)
		}
		clk.advance(20 * time.Second) // into the next minute
	}
}

func TestAdmit_KeyAndTenant_BothApply_RefusalCostsNothing(t *testing.T) {
	ctx := context.Background()
	clk := newClock(30 * time.Second)
	mem := NewMemory()
	l := New(mem, clk.now)
	tenant := &Subject{ID: "t:1", Rule: Rule{RPM: 3, TPM: 1000}}
	a := &Subject{ID: "k:a", Rule: Rule{RPM: 5, TPM: 500, Streams: 2}}
	b := &Subject{ID: "k:b", Rule: Rule{RPM: 2}}

	for range 2 {
		if _, d := l.Admit(ctx, b, tenant, 10, false); !d.OK {
			t.Fatalf("b refused: %+v", d)
		}
	}
	_, d := l.Admit(ctx, b, tenant, 10, false)
	if d.OK || d.Limited != LimitedRequests || d.Scope != ScopeKey {
		t.Fatalf("b's third request: %+v; want refused by the key's requests", d)
	}
	if got := count(t, mem, "t:1:requests", clk.now()); got != 2 {
		t.Fatalf("tenant request count %d after a key refusal, want 2", got)
	}
	if got := count(t, mem, "t:1:tokens", clk.now()); got != 20 {
		t.Fatalf("tenant token count %d after a key refusal, want 20", got)
	}

	if _, d := l.Admit(ctx, a, tenant, 10, true); !d.OK {
		t.Fatalf("a refused: %+v", d)
	}
	_, d = l.Admit(ctx, a, tenant, 10, true)
	if d.OK || d.Limited != LimitedRequests || d.Scope != ScopeTenant {
		t.Fatalf("a's second request: %+v; want refused by the tenant's requests", d)
	}
	// The key's request, token reservation and stream slot were given back.
	if got := count(t, mem, "k:a:requests", clk.now()); got != 1 {
		t.Errorf("key request count %d after a tenant refusal, want 1", got)
	}
	if got := count(t, mem, "k:a:tokens", clk.now()); got != 10 {
		t.Errorf("key token count %d after a tenant refusal, want 10", got)
	}
	if n, _, _ := mem.Acquire(ctx, "k:a:streams", 10); n != 2 {
		t.Errorf("key holds %d stream slots after one admitted and one refused, want 1", n-1)
	}
	// Headers: the key had 3 requests left before giving one back, the tenant 0.
	if d.LimitRequests != 3 || d.RemainingRequests != 0 || d.LimitTokens != 500 || d.RemainingTokens != 490 {
		t.Errorf("refusal headers %+v; want requests 3/0 (tenant), tokens 500/490 (key)", d)
	}
}

func TestAdmit_TokensRefusedByTenant_UndoesEverythingOfTheKey(t *testing.T) {
	ctx := context.Background()
	clk := newClock(0)
	mem := NewMemory()
	l := New(mem, clk.now)
	tenant := &Subject{ID: "t:1", Rule: Rule{TPM: 50}}
	key := &Subject{ID: "k:1", Rule: Rule{RPM: 10, TPM: 1000, Streams: 1}}
	ticket, d := l.Admit(ctx, key, tenant, 100, true)
	if d.OK || d.Limited != LimitedTokens || d.Scope != ScopeTenant || d.RetryAfter != time.Minute {
		t.Fatalf("%+v; want refused by the tenant's tokens, retry after 1m", d)
	}
	if d.LimitTokens != 50 || d.RemainingTokens != 50 || d.LimitRequests != 10 || d.RemainingRequests != 10 {
		t.Errorf("headers %+v; want tokens 50/50, requests 10/10", d)
	}
	l.Settle(ctx, ticket, 100) // settling a refusal's zero ticket does nothing
	for _, k := range []string{"k:1:requests", "k:1:tokens", "t:1:tokens"} {
		if got := count(t, mem, k, clk.now()); got != 0 {
			t.Errorf("%s = %d after the refusal, want 0", k, got)
		}
	}
	if _, ok, _ := mem.Acquire(ctx, "k:1:streams", 1); !ok {
		t.Error("the key's stream slot was not given back")
	}
}

func TestAdmitThenSettle_TokensReplaceTheReservation(t *testing.T) {
	ctx := context.Background()
	clk := newClock(10 * time.Second)
	mem := NewMemory()
	l := New(mem, clk.now)
	key := &Subject{ID: "k:1", Rule: Rule{TPM: 1000}}
	tenant := &Subject{ID: "t:1", Rule: Rule{TPM: 5000}}

	ticket, d := l.Admit(ctx, key, tenant, 300, false)
	if !d.OK || d.LimitTokens != 1000 || d.RemainingTokens != 700 || d.ResetTokens != 50*time.Second {
		t.Fatalf("%+v; want admitted with tokens 1000/700, reset 50s", d)
	}
	l.Settle(ctx, ticket, 120)
	for _, k := range []string{"k:1:tokens", "t:1:tokens"} {
		if got := count(t, mem, k, clk.now()); got != 120 {
			t.Errorf("%s = %d after settling 120, want 120", k, got)
		}
	}

	ticket, _ = l.Admit(ctx, key, tenant, 300, false)
	l.Settle(ctx, ticket, -1) // usage unknown: the estimate stays
	if got := count(t, mem, "k:1:tokens", clk.now()); got != 420 {
		t.Errorf("after an unknown usage the count is %d, want 420", got)
	}

	// A call that ends in the next minute charges what it used beyond its
	// reservation to the minute it ends in; the admission minute keeps the
	// reservation.
	ticket, _ = l.Admit(ctx, key, tenant, 300, false)
	before := clk.now()
	clk.advance(time.Minute)
	l.Settle(ctx, ticket, 500)
	if got := count(t, mem, "k:1:tokens", before); got != 720 {
		t.Errorf("admission minute's count %d, want 720", got)
	}
	if got := count(t, mem, "k:1:tokens", clk.now()); got != 200 {
		t.Errorf("settling minute's count %d, want the 200 over the reservation", got)
	}
}

func TestAdmit_EstimateBelowOne_ReservesOne(t *testing.T) {
	ctx := context.Background()
	clk := newClock(0)
	l := New(NewMemory(), clk.now)
	key := &Subject{ID: "k:1", Rule: Rule{TPM: 2}}
	for i, want := range []bool{true, true, false} {
		if _, d := l.Admit(ctx, key, nil, 0, false); d.OK != want {
			t.Fatalf("request %d: OK %v, want %v (%+v)", i, d.OK, want, d)
		}
	}
}

func TestAdmit_ConcurrentStreams_BeyondTheLimitRefused_SettleReleases(t *testing.T) {
	ctx := context.Background()
	clk := newClock(0)
	l := New(NewMemory(), clk.now)
	key := &Subject{ID: "k:1", Rule: Rule{Streams: 2}}
	t1, d1 := l.Admit(ctx, key, nil, 10, true)
	_, d2 := l.Admit(ctx, key, nil, 10, true)
	_, d3 := l.Admit(ctx, key, nil, 10, true)
	if !d1.OK || !d2.OK {
		t.Fatalf("first two streams refused: %+v, %+v", d1, d2)
	}
	if d3.OK || d3.Limited != LimitedStreams || d3.Scope != ScopeKey || d3.RetryAfter != time.Second {
		t.Fatalf("third stream: %+v; want refused by streams, retry after 1s", d3)
	}
	if _, d := l.Admit(ctx, key, nil, 10, false); !d.OK {
		t.Fatalf("a non-streaming request was refused by the stream limit: %+v", d)
	}
	l.Settle(ctx, t1, 10)
	if _, d := l.Admit(ctx, key, nil, 10, true); !d.OK {
		t.Fatalf("a stream after Settle released a slot: %+v", d)
	}
}

func TestSettle_CancelledContext_StillReleases(t *testing.T) {
	clk := newClock(0)
	l := New(NewMemory(), clk.now)
	key := &Subject{ID: "k:1", Rule: Rule{Streams: 1}}
	ticket, _ := l.Admit(context.Background(), key, nil, 10, true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client went away
	var seen context.Context
	l.store = &fakeStore{ReleaseFunc: func(ctx context.Context, key string) error {
		seen = ctx
		return NewMemory().Release(ctx, key)
	}}
	l.Settle(ctx, ticket, -1)
	if seen == nil || seen.Err() != nil {
		t.Fatalf("Release got context %v (err %v); want one not cancelled", seen, seen.Err())
	}
}

func TestAdmit_HeadersAreTheMostConstraining(t *testing.T) {
	ctx := context.Background()
	clk := newClock(15 * time.Second)
	l := New(NewMemory(), clk.now)
	tenant := &Subject{ID: "t:1", Rule: Rule{RPM: 10, TPM: 100_000}}
	other := &Subject{ID: "k:other"}
	for range 8 {
		l.Admit(ctx, other, tenant, 1, false)
	}
	key := &Subject{ID: "k:1", Rule: Rule{RPM: 100, TPM: 1000}}
	_, d := l.Admit(ctx, key, tenant, 300, false)
	want := Decision{
		OK:            true,
		LimitRequests: 10, RemainingRequests: 1, ResetRequests: 45 * time.Second, // the tenant's
		LimitTokens: 1000, RemainingTokens: 700, ResetTokens: 45 * time.Second, // the key's
	}
	if d != want {
		t.Fatalf("decision %+v\nwant     %+v", d, want)
	}
}

func TestAdmit_NoLimits_AdmitsWithoutTicketOrHeaders(t *testing.T) {
	l := New(failingStore(errors.New("must not be called")), nil)
	key := &Subject{ID: "k:1", Rule: Rule{Streams: 3}} // applies to streams only
	for _, s := range []*Subject{nil, {ID: "k:0"}, key} {
		ticket, d := l.Admit(context.Background(), s, nil, 100, false)
		if d != (Decision{OK: true}) || ticket != (Ticket{}) {
			t.Fatalf("subject %+v: %+v, %+v; want a bare OK", s, d, ticket)
		}
		l.Settle(context.Background(), ticket, 5)
	}
}

func TestAdmit_StoreFails_AdmitsAndReportsTheError(t *testing.T) {
	ctx := context.Background()
	down := errors.New("connection refused")
	l := New(failingStore(down), nil)
	key := &Subject{ID: "k:1", Rule: Rule{RPM: 1, TPM: 1, Streams: 1}}
	for range 3 {
		ticket, d := l.Admit(ctx, key, key, 100, true)
		if !d.OK || !errors.Is(d.Err, down) || d.LimitRequests != 0 || d.LimitTokens != 0 {
			t.Fatalf("%+v; want admitted, Err = the store's, no headers", d)
		}
		l.Settle(ctx, ticket, 10) // nothing was counted: nothing to settle
		if ticket.held != 0 {
			t.Fatalf("ticket holds %b for uncounted checks", ticket.held)
		}
	}
}

func TestAdmit_Concurrent_Memory_CountsExactly(t *testing.T) {
	ctx := context.Background()
	clk := newClock(0)
	mem := NewMemory()
	l := New(mem, clk.now)
	tenant := &Subject{ID: "t:1", Rule: Rule{RPM: 500, Streams: 4}}
	keys := []*Subject{
		{ID: "k:a", Rule: Rule{RPM: 300, TPM: 1 << 40}},
		{ID: "k:b", Rule: Rule{RPM: 300, Streams: 2}},
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			key := keys[g%2]
			for range 100 {
				ticket, d := l.Admit(ctx, key, tenant, 7, true)
				if d.OK {
					admitted.Add(1)
					l.Settle(ctx, ticket, 3)
				}
			}
		})
	}
	wg.Wait()
	if got := count(t, mem, "t:1:requests", clk.now()); got != admitted.Load() || got > 500 {
		t.Fatalf("tenant counted %d requests, %d admitted; want equal and at most 500", got, admitted.Load())
	}
	for _, k := range []string{"k:b:streams", "t:1:streams"} {
		if n, _, _ := mem.Acquire(ctx, k, 100); n != 1 {
			t.Errorf("%s holds %d slots after every call settled, want 0", k, n-1)
		}
	}
}

func TestAdmit_Memory_AllocatesNothing(t *testing.T) {
	ctx := context.Background()
	l := New(NewMemory(), nil)
	rule := Rule{RPM: 1 << 40, TPM: 1 << 40, Streams: 1 << 40}
	key, tenant := &Subject{ID: "k:1", Rule: rule}, &Subject{ID: "t:1", Rule: rule}
	for _, stream := range []bool{false, true} {
		allocs := testing.AllocsPerRun(1000, func() {
			ticket, d := l.Admit(ctx, key, tenant, 500, stream)
			if !d.OK {
				t.Fatalf("refused: %+v", d)
			}
			l.Settle(ctx, ticket, 250)
		})
		if allocs != 0 {
			t.Errorf("stream %v: %v allocations per Admit and Settle, want 0", stream, allocs)
		}
	}
}
