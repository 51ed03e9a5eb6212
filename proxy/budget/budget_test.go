package budget

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

func budgetOf(period, limit string, alertAt float64) tenancy.Budget {
	return tenancy.Budget{Period: period, Limit: limit, AlertAt: alertAt}
}

// subjects returns a tenant and a key with the given budgets (nil: none).
func subjects(t testing.TB, tenant, key []tenancy.Budget) Subjects {
	t.Helper()
	tr, err := RulesOf(tenant)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := RulesOf(key)
	if err != nil {
		t.Fatal(err)
	}
	return Subjects{
		Tenant: &Subject{ID: "t:acme", TenantID: "acme", Rules: tr},
		Key:    &Subject{ID: "k:k1", TenantID: "acme", KeyID: "k1", Rules: kr},
	}
}

func TestBudgets_NoBudgets_AdmitsAndHoldsNothing(t *testing.T) {
	b := New(NewMemory(), nil, nil)
	r, d, err := b.Reserve(context.Background(), subjects(t, nil, nil), 5*u)
	if !d.OK || d.Budgeted || err != nil || r.Held() {
		t.Fatalf("%+v, %v, held %v; want admitted, not budgeted", d, err, r.Held())
	}
}

func TestBudgets_KeyExhausted_RefusedNamingKeyPeriodAndReset(t *testing.T) {
	ctx := context.Background()
	clk := newClock(day5)
	b := New(NewMemory(), clk.now, nil)
	s := subjects(t, []tenancy.Budget{budgetOf("month", "100", 0)}, []tenancy.Budget{budgetOf("day", "2.50", 0)})
	r, d, err := b.Reserve(ctx, s, 2*u)
	if !d.OK || err != nil {
		t.Fatalf("first call: %+v, %v", d, err)
	}
	if d.Scope != ScopeKey || d.Period != Day || d.Limit != 25*u/10 || d.Remaining != u/2 {
		t.Fatalf("tightest budget = %+v; want the key's day, 0.50 of 2.50 left", d)
	}
	if err := b.Settle(ctx, r, 2*u); err != nil {
		t.Fatal(err)
	}
	_, d, err = b.Reserve(ctx, s, u)
	if d.OK || err != nil {
		t.Fatalf("second call: %+v, %v; want refused", d, err)
	}
	want := Decision{Budgeted: true, Scope: ScopeKey, Period: Day, Limit: 25 * u / 10, Remaining: u / 2,
		Start: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Reset: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	if d != want {
		t.Fatalf("refusal = %+v\nwant      %+v", d, want)
	}
	// The refusal reserved nothing on the tenant either.
	r, d, _ = b.Reserve(ctx, s, u/2)
	if !d.OK {
		t.Fatalf("a call that fits what is left: %+v", d)
	}
	if err := b.Settle(ctx, r, u/2); err != nil {
		t.Fatal(err)
	}
	_, d, _ = b.Reserve(ctx, subjects(t, []tenancy.Budget{budgetOf("month", "100", 0)}, nil), 0)
	if d.Remaining != 100*u-25*u/10 {
		t.Fatalf("tenant's month has %d left, want 97.50 (the refusal must not count)", d.Remaining)
	}
}

func TestBudgets_ActualAboveEstimate_RecordedInFull_NextCallRefused(t *testing.T) {
	ctx := context.Background()
	b := New(NewMemory(), newClock(day5).now, nil)
	s := subjects(t, []tenancy.Budget{budgetOf("day", "1", 0)}, nil)
	r, d, _ := b.Reserve(ctx, s, u/10)
	if !d.OK {
		t.Fatal(d)
	}
	if err := b.Settle(ctx, r, 3*u/2); err != nil {
		t.Fatal(err)
	}
	_, d, _ = b.Reserve(ctx, s, 0)
	if d.OK || d.Remaining != 0 || d.Scope != ScopeTenant {
		t.Fatalf("after spending 1.50 of 1: %+v; want refused, 0 remaining", d)
	}
}

func TestBudgets_PeriodRollover_NewDayStartsAfresh_LateSettleCountsInItsDay(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2026, 12, 5, 23, 59, 0, 0, time.UTC))
	b := New(NewMemory(), clk.now, nil)
	s := subjects(t, []tenancy.Budget{budgetOf("day", "10", 0), budgetOf("month", "15", 0)}, nil)
	late, d, _ := b.Reserve(ctx, s, 6*u)
	if !d.OK {
		t.Fatal(d)
	}
	if _, d, _ = b.Reserve(ctx, s, 5*u); d.OK || d.Period != Day {
		t.Fatalf("5 more on the 5th: %+v; want refused by the day", d)
	}
	clk.advance(2 * time.Minute) // the 6th
	r, d, _ := b.Reserve(ctx, s, 5*u)
	if !d.OK {
		t.Fatalf("5 on a new day: %+v; want admitted", d)
	}
	if d.Period != Month || d.Remaining != 4*u {
		t.Fatalf("tightest on the 6th = %+v; want the month with 4 left", d)
	}
	if err := b.Settle(ctx, late, 6*u); err != nil { // the 5th's call ends on the 6th
		t.Fatal(err)
	}
	if err := b.Settle(ctx, r, 5*u); err != nil {
		t.Fatal(err)
	}
	_, d, _ = b.Reserve(ctx, subjects(t, []tenancy.Budget{budgetOf("day", "10", 0)}, nil), 0)
	if d.Remaining != 5*u {
		t.Fatalf("the 6th has %d left, want 5 (the 5th's late call counts on the 5th)", d.Remaining)
	}
	clk.advance(31 * 24 * time.Hour) // January
	if _, d, _ = b.Reserve(ctx, s, 10*u); !d.OK || d.Start != time.Date(2027, 1, 6, 0, 0, 0, 0, time.UTC) {
		t.Fatalf("a new month: %+v", d)
	}
}

func TestBudgets_Alert_OneLogLineAndMetricPerBudgetAndPeriod(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	clk := newClock(day5)
	b := New(NewMemory(), clk.now, slog.New(slog.NewTextHandler(&logs, nil)))
	s := subjects(t, nil, []tenancy.Budget{budgetOf("day", "10", 0.5)})
	for range 8 {
		r, d, _ := b.Reserve(ctx, s, u)
		if !d.OK {
			t.Fatal(d)
		}
		if err := b.Settle(ctx, r, u); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Alerts(); n != 1 {
		t.Fatalf("%d alerts, want 1", n)
	}
	line := logs.String()
	for _, want := range []string{"tenant=acme", "key_id=k1", `period="day 2026-12-05"`, "spent=4.00", "limit=10.00"} {
		if !strings.Contains(line, want) {
			t.Errorf("alert line %q lacks %q", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("want one line, got %q", line)
	}
	if m := string(b.AppendMetrics(nil)); !strings.Contains(m, "\nloom_budget_alerts_total 1\n") {
		t.Errorf("metrics = %q", m)
	}
	clk.advance(24 * time.Hour)
	r, _, _ := b.Reserve(ctx, s, 6*u)
	b.Settle(ctx, r, 0)
	if n := b.Alerts(); n != 2 {
		t.Fatalf("%d alerts after the next day's crossing, want 2", n)
	}
}

// failStore fails every operation.
type failStore struct{ err error }

func (f failStore) Reserve(context.Context, Counters, int64) (Result, error) {
	return Result{}, f.err
}

func (f failStore) Settle(context.Context, Counters, int64, int64) (Result, error) {
	return Result{}, f.err
}

func TestBudgets_StoreFails_AdmitsUncountedAndSaysSo(t *testing.T) {
	boom := errors.New("boom")
	b := New(failStore{boom}, nil, nil)
	r, d, err := b.Reserve(context.Background(), subjects(t, []tenancy.Budget{budgetOf("day", "0", 0)}, nil), u)
	if !d.OK || d.Budgeted || !errors.Is(err, boom) || r.Held() {
		t.Fatalf("%+v, %v; want admitted uncounted with the store's error", d, err)
	}
}

// Fifty goroutines each make calls that reserve 1 and cost 1 against a
// tenant budget of 10: exactly ten are admitted, spend ends at 10.
func TestBudgets_ConcurrentCalls_SpendNeverPassesTheLimit(t *testing.T) {
	ctx := context.Background()
	b := New(NewMemory(), newClock(day5).now, nil)
	s := subjects(t, []tenancy.Budget{budgetOf("day", "10", 0)}, []tenancy.Budget{budgetOf("day", "1000", 0)})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			r, d, err := b.Reserve(ctx, s, u)
			if err != nil {
				t.Error(err)
			}
			if d.OK {
				admitted.Add(1)
				if err := b.Settle(ctx, r, u); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 10 {
		t.Fatalf("admitted %d, want 10", n)
	}
	if _, d, _ := b.Reserve(ctx, s, 1); d.OK || d.Remaining != 0 {
		t.Fatalf("after 10: %+v", d)
	}
}

func TestBudgets_ReserveAndSettleInMemory_AllocateNothing(t *testing.T) {
	ctx := context.Background()
	b := New(NewMemory(), nil, nil)
	s := subjects(t, []tenancy.Budget{budgetOf("day", "999999", 1), budgetOf("month", "999999", 1)},
		[]tenancy.Budget{budgetOf("day", "999999", 1), budgetOf("month", "999999", 1)})
	n := testing.AllocsPerRun(1000, func() {
		r, d, _ := b.Reserve(ctx, s, 1000)
		if !d.OK {
			t.Fatal(d)
		}
		b.Settle(ctx, r, 900)
	})
	if n != 0 {
		t.Fatalf("Reserve+Settle allocate %v times per call, want 0", n)
	}
}

// BenchmarkReserveSettle measures one call's budget work: Reserve, then
// Settle with the real cost. Budgets are high enough never to refuse.
func BenchmarkReserveSettle(b *testing.B) {
	ctx := context.Background()
	big := []tenancy.Budget{budgetOf("day", "999999", 0), budgetOf("month", "999999", 0)}
	run := func(bs *Budgets, s Subjects) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, d, _ := bs.Reserve(ctx, s, 1000)
				if !d.OK {
					b.Fatal(d)
				}
				bs.Settle(ctx, r, 900)
			}
		}
	}
	mem := New(NewMemory(), nil, nil)
	b.Run("memory/no-budgets", run(mem, subjects(b, nil, nil)))
	b.Run("memory/tenant-day", run(mem, subjects(b, big[:1], nil)))
	b.Run("memory/tenant-and-key-day-and-month", run(mem, subjects(b, big, big)))
	b.Run("memory/tenant-and-key-day-and-month-parallel", func(b *testing.B) {
		s := subjects(b, big, big)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, _, _ := mem.Reserve(ctx, s, 1000)
				mem.Settle(ctx, r, 900)
			}
		})
	})
	b.Run("redis/tenant-and-key-day-and-month", func(b *testing.B) {
		c := redisClient(b, startRedis(b))
		run(New(NewRedis(c, prefix(b)), nil, nil), subjects(b, big, big))(b)
	})
}
