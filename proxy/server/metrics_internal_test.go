package server

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// metricsServer is a gateway with one tenant "t" and one model "m", and an
// exchange holding a finished, priced, streamed chat call of theirs.
func metricsServer(tb testing.TB) (*Server, *exchange) {
	tb.Helper()
	_, hash, _ := tenant.NewKey()
	cfg, err := config.Parse([]byte(`
deployments:
  - {name: d, provider: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-x}
tenants:
  - id: t
    keys: [{id: k, sha256: ` + hash + `}]
    models: [{name: m, deployment: d}]
`))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(cfg, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	ex := s.acquire()
	r := &ex.rec
	start := time.Now()
	r.Operation, r.TenantID, r.KeyID, r.Model, r.Deployment, r.Provider = call.OpChat, "t", "k", "m", "d", "openai"
	r.Stream, r.Status, r.UpstreamStatus = true, 200, 200
	r.Start, r.UpstreamStart, r.FirstChunk, r.End = start, start.Add(time.Millisecond), start.Add(80*time.Millisecond), start.Add(900*time.Millisecond)
	r.Overhead = 150 * time.Microsecond
	r.Usage = call.Usage{InputTokens: 120, OutputTokens: 40, TotalTokens: 160, CachedInputTokens: 64, HasCached: true}
	r.UsageSource = call.UsageProvider
	r.Cost, r.CostCurrency, r.PriceID = 1_234_567, "USD", "p"
	r.TraceID = [16]byte{0xab, 1}
	return s, ex
}

// Counting a call, once its label set has been seen, allocates nothing:
// one read-locked lookup and adds. Its exemplar (at most one a second per
// label set) is the only thing that allocates, and the budget counts it.
func TestCallMetrics_Observe_AllocatesNothing(t *testing.T) {
	s, ex := metricsServer(t)
	ex.rec.ErrorType = "upstream_reset" // the error counter too
	s.metrics.observe(ex)               // the label set's first call makes its series
	n := testing.AllocsPerRun(1000, func() { s.metrics.observe(ex) })
	if n != 0 {
		t.Fatalf("observe: %v allocations per call, want 0", n)
	}
}

// A benchmark of the per-call metrics work (make bench-style numbers:
// go test -run '^$' -bench CallMetrics -benchmem ./proxy/server).
func BenchmarkCallMetrics_Observe(b *testing.B) {
	for _, bc := range []struct {
		name string
		err  string
	}{{"ok", ""}, {"error", "upstream_reset"}} {
		b.Run(bc.name, func(b *testing.B) {
			s, ex := metricsServer(b)
			ex.rec.ErrorType = bc.err
			b.ReportAllocs()
			for b.Loop() {
				s.metrics.observe(ex)
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		s, ex := metricsServer(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			mine := s.acquire() // each goroutine its own record
			mine.rec = ex.rec
			for pb.Next() {
				s.metrics.observe(mine)
			}
		})
	})
}

// error.type can come from an upstream's error body: past maxErrorTypes
// distinct ones, new ones count as "other", and are not kept either.
func TestCallMetrics_ErrorTypes_BoundedThenOther(t *testing.T) {
	s, ex := metricsServer(t)
	for i := range 3 * maxErrorTypes {
		ex.rec.ErrorType = "hostile_" + strconv.Itoa(i)
		s.metrics.observe(ex)
	}
	if n := len(s.metrics.errTypes); n != maxErrorTypes {
		t.Fatalf("%d error types kept, want %d", n, maxErrorTypes)
	}
	fams, err := s.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range fams {
		if mf.GetName() != "loom_request_errors_total" {
			continue
		}
		if n := len(mf.GetMetric()); n != maxErrorTypes+1 {
			t.Fatalf("%d error series, want %d and other", n, maxErrorTypes)
		}
		return
	}
	t.Fatal("no loom_request_errors_total")
}

// A priced call adds its cost in currency units (Record.Cost is in
// pico-units) to its currency's series, a currency change included.
func TestCallMetrics_Cost_InCurrencyUnitsPerCurrency(t *testing.T) {
	s, ex := metricsServer(t) // 1_234_567 pico-USD a call
	for range 3 {
		s.metrics.observe(ex)
	}
	ex.rec.CostCurrency = "EUR"
	s.metrics.observe(ex)
	fams, err := s.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range fams {
		if mf.GetName() != "loom_cost_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "currency" {
					got[lp.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if math.Abs(got["USD"]-3*1.234567e-6) > 1e-15 || math.Abs(got["EUR"]-1.234567e-6) > 1e-15 || len(got) != 2 {
		t.Fatalf("loom_cost_total by currency = %v", got)
	}
}
