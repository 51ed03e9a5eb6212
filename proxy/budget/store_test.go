package budget

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/price"
)

// u is one currency unit in amount units.
const u = 1_000_000_000_000

// clock is a settable time source.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// day5 is 2026-12-05, 12:00 UTC.
var day5 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// counters builds the Counters of one tenant, all in today's day (Redis
// drops a counter whose period ended long ago).
func counters(tenant string, cs ...Counter) Counters {
	return countersAt(time.Now(), tenant, cs...)
}

// countersAt builds the Counters of one tenant in the day that holds at.
func countersAt(at time.Time, tenant string, cs ...Counter) Counters {
	start, end := Day.Bounds(at)
	out := Counters{Tenant: tenant, N: len(cs)}
	for i, c := range cs {
		if c.Period == 0 {
			c.Period = Day
		}
		if c.Start == 0 {
			c.Start, c.End = start, end
		}
		out.C[i] = c
	}
	return out
}

// testStore is the conformance suite every Store passes. newStore returns
// an empty store for one subtest.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	reserve := func(t *testing.T, s Store, cs Counters, est int64, wantRefused int) Result {
		t.Helper()
		res, err := s.Reserve(ctx, cs, est)
		if err != nil {
			t.Fatalf("Reserve(%d): %v", est, err)
		}
		if res.Refused != wantRefused {
			t.Fatalf("Reserve(%d) refused by %d, want %d (%+v)", est, res.Refused, wantRefused, res)
		}
		return res
	}
	settle := func(t *testing.T, s Store, cs Counters, reserved, actual int64) Result {
		t.Helper()
		res, err := s.Settle(ctx, cs, reserved, actual)
		if err != nil {
			t.Fatalf("Settle(%d, %d): %v", reserved, actual, err)
		}
		return res
	}

	t.Run("Reserve_UpToTheLimit_ThenRefusesAndChangesNothing", func(t *testing.T) {
		s := newStore(t)
		cs := counters("t1", Counter{Subject: "t:t1", Limit: 10 * u})
		reserve(t, s, cs, 4*u, -1)
		res := reserve(t, s, cs, 6*u, -1)
		if res.Reserved[0] != 10*u || res.Spent[0] != 0 {
			t.Fatalf("after two reservations: %+v; want 10 reserved", res)
		}
		res = reserve(t, s, cs, 1, 0)
		if res.Reserved[0] != 10*u {
			t.Fatalf("a refusal changed the count: %+v", res)
		}
		reserve(t, s, cs, 0, -1)
	})
	t.Run("Reserve_TenantAndKey_AtomicallyBothOrNeither", func(t *testing.T) {
		s := newStore(t)
		both := counters("t1", Counter{Subject: "t:t1", Limit: 100 * u}, Counter{Subject: "k:a", Limit: 3 * u})
		reserve(t, s, both, 2*u, -1)
		reserve(t, s, both, 2*u, 1) // the key refuses: the tenant must not keep the 2
		tenantOnly := counters("t1", Counter{Subject: "t:t1", Limit: 100 * u})
		if res := reserve(t, s, tenantOnly, 0, -1); res.Reserved[0] != 2*u {
			t.Fatalf("tenant reserved %d after the key refused, want %d", res.Reserved[0], 2*u)
		}
	})
	t.Run("Settle_ReleasesTheReservation_RecordsTheActualEvenPastTheLimit", func(t *testing.T) {
		s := newStore(t)
		cs := counters("t1", Counter{Subject: "t:t1", Limit: 10 * u})
		reserve(t, s, cs, 3*u, -1)
		reserve(t, s, cs, 3*u, -1)
		res := settle(t, s, cs, 3*u, 1*u)
		if res.Spent[0] != u || res.Reserved[0] != 3*u {
			t.Fatalf("after one settle: %+v; want spent 1, reserved 3", res)
		}
		res = settle(t, s, cs, 3*u, 12*u)
		if res.Spent[0] != 13*u || res.Reserved[0] != 0 {
			t.Fatalf("a call that cost more than its estimate: %+v; want spent 13 recorded, reserved 0", res)
		}
		reserve(t, s, cs, 0, 0) // overspent: even nothing is refused
	})
	t.Run("Settle_ReservedNeverBelowZero", func(t *testing.T) {
		s := newStore(t)
		cs := counters("t1", Counter{Subject: "t:t1", Limit: 10 * u})
		reserve(t, s, cs, u, -1)
		if res := settle(t, s, cs, 5*u, 0); res.Reserved[0] != 0 {
			t.Fatalf("reserved %d, want 0", res.Reserved[0])
		}
		reserve(t, s, cs, 10*u, -1)
	})
	t.Run("PeriodsSubjectsAndTenantsAreSeparate", func(t *testing.T) {
		s := newStore(t)
		reserve(t, s, counters("t1", Counter{Subject: "t:t1", Limit: 5 * u}), 5*u, -1)
		reserve(t, s, counters("t2", Counter{Subject: "t:t2", Limit: 5 * u}), 5*u, -1)
		reserve(t, s, counters("t1", Counter{Subject: "k:a", Limit: 5 * u}), 5*u, -1)
		ms, me := Month.Bounds(time.Now())
		reserve(t, s, counters("t1", Counter{Subject: "t:t1", Period: Month, Start: ms, End: me, Limit: 5 * u}), 5*u, -1)
		next := time.Now().Add(24 * time.Hour)
		start, end := Day.Bounds(next)
		reserve(t, s, counters("t1", Counter{Subject: "t:t1", Start: start, End: end, Limit: 5 * u}), 5*u, -1)
		reserve(t, s, counters("t1", Counter{Subject: "t:t1", Limit: 5 * u}), 1, 0)
	})
	t.Run("Alert_FirstCrossingOnly_ByReserveOrSettle", func(t *testing.T) {
		s := newStore(t)
		cs := counters("t1", Counter{Subject: "t:t1", Limit: 10 * u, AlertAt: 8 * u})
		if res := reserve(t, s, cs, 7*u, -1); res.Alerted[0] {
			t.Fatal("alerted below the threshold")
		}
		if res := settle(t, s, cs, 7*u, 8*u); !res.Alerted[0] {
			t.Fatalf("settling to 8 of 10 did not alert: %+v", res)
		}
		if res := reserve(t, s, cs, u, -1); res.Alerted[0] {
			t.Fatal("alerted twice in one period")
		}
		cs2 := counters("t1", Counter{Subject: "k:b", Limit: 10 * u, AlertAt: 8 * u})
		if res := reserve(t, s, cs2, 9*u, -1); !res.Alerted[0] {
			t.Fatalf("a reservation crossing the threshold did not alert: %+v", res)
		}
	})
	t.Run("Settle_ForgottenCounter_LeftAlone", func(t *testing.T) {
		s := newStore(t)
		cs := counters("t1", Counter{Subject: "t:never", Limit: 10 * u})
		if res := settle(t, s, cs, u, u); res.Spent[0] != 0 {
			t.Fatalf("settling a counter never reserved made it: %+v", res)
		}
	})
	// 40 goroutines race for a budget that fits 10 reservations; each then
	// settles at its estimate. Exactly 10 are admitted.
	t.Run("Reserve_Concurrent_NeverPassesTheLimit", func(t *testing.T) {
		s := newStore(t)
		cs := counters("t1", Counter{Subject: "t:t1", Limit: 10 * u}, Counter{Subject: "k:a", Limit: 100 * u})
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				res, err := s.Reserve(ctx, cs, u)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Refused < 0 {
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		if n := admitted.Load(); n != 10 {
			t.Fatalf("admitted %d of 40, want 10", n)
		}
	})
}

func TestMemory_Conformance(t *testing.T) {
	testStore(t, func(*testing.T) Store { return NewMemory() })
}

func TestMemory_ForgetsCountersAnHourAfterTheirPeriod(t *testing.T) {
	ctx := context.Background()
	clk := newClock(day5)
	m := newMemory(clk.now)
	if _, err := m.Reserve(ctx, countersAt(day5, "t1", Counter{Subject: "t:t1", Limit: 10 * u}), u); err != nil {
		t.Fatal(err)
	}
	clk.advance(12*time.Hour + forgetAfter - time.Minute) // the period ended 59 minutes ago
	if _, err := m.Reserve(ctx, countersAt(day5, "t2", Counter{Subject: "t:t2", Limit: 10 * u}), u); err != nil {
		t.Fatal(err)
	}
	if n := m.len(); n != 2 {
		t.Fatalf("%d counters kept within the hour, want 2", n)
	}
	clk.advance(2 * forgetAfter)
	for i := range memShards { // every shard sweeps on its next use
		m.shards[i].mu.Lock()
		m.shards[i].swept = 0
		m.shards[i].mu.Unlock()
	}
	start, end := Day.Bounds(clk.now())
	for _, tn := range []string{"t1", "t2"} {
		if _, err := m.Reserve(ctx, countersAt(clk.now(), tn, Counter{Subject: "t:" + tn, Start: start, End: end, Limit: 10 * u}), 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.len(); n != 2 {
		t.Fatalf("%d counters kept, want the 2 of today (yesterday's forgotten)", n)
	}
}

func TestParseAmountAndAppendAmount_RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		out  string
	}{
		{"25.00", 25 * u, "25.00"},
		{"25", 25 * u, "25.00"},
		{"0.1", u / 10, "0.10"},
		{"0.0005", 500_000_000, "0.0005"},
		{"0.000000000001", 1, "0.000000000001"},
		{"999999.999999999999", 999999*u + u - 1, "999999.999999999999"},
	} {
		a, err := RuleOf(budgetOf("day", tc.in, 0))
		if err != nil || a.Limit != price.Amount(tc.want) {
			t.Errorf("limit %q = %d, %v; want %d", tc.in, a.Limit, err, tc.want)
			continue
		}
		if got := a.Limit.String(); got != tc.out {
			t.Errorf("%d as a decimal = %q, want %q", a.Limit, got, tc.out)
		}
	}
	for _, bad := range []string{"", ".", "1.", "-1", "1e3", "1,5", "1000000", "0.0000000000001", "２"} {
		if _, err := RuleOf(budgetOf("day", bad, 0)); err == nil {
			t.Errorf("limit %q accepted", bad)
		}
	}
}

func TestPeriodBounds_DayAndMonthInUTC(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 59, 0, time.FixedZone("X", -5*3600)) // 2027-01-01 04:59:59 UTC
	s, e := Day.Bounds(at)
	if Key(s) != "2027-01-01" || e-s != 86400 {
		t.Errorf("day of %v = %s +%ds", at, Key(s), e-s)
	}
	s, e = Month.Bounds(at)
	if Key(s) != "2027-01-01" || Key(e) != "2027-02-01" {
		t.Errorf("month of %v = %s..%s", at, Key(s), Key(e))
	}
	s, e = Month.Bounds(time.Date(2028, 2, 10, 0, 0, 0, 0, time.UTC))
	if Key(s) != "2028-02-01" || e-s != 29*86400 {
		t.Errorf("February 2028 = %s +%d days", Key(s), (e-s)/86400)
	}
}
