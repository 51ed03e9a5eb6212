package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/tenant"
)

func TestMaxOutput_MaxTokensForEachChoice_ElseTheDefault_EmbeddingsNone(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	cfg := &config.Config{DefaultOutputTokens: 4096}
	for _, tt := range []struct {
		name      string
		op        call.Operation
		maxTokens *int64
		n         *int64
		want      int64
	}{
		{"max_tokens", call.OpChat, i64(50), nil, 50},
		{"max_tokens times n", call.OpChat, i64(50), i64(3), 150},
		{"the default", call.OpChat, nil, nil, 4096},
		{"the default times n", call.OpChat, nil, i64(2), 8192},
		{"embeddings", call.OpEmbeddings, i64(50), nil, 0},
	} {
		ex := &exchange{live: &live{cfg: cfg}}
		ex.req.Op = tt.op
		ex.req.Params.MaxTokens, ex.req.Params.N = tt.maxTokens, tt.n
		if got := maxOutput(ex); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// budgetedCall sets up a server whose tenant and key both have day and
// month budgets in memory, and returns one call's budget work (estimate,
// reserve, price the usage, settle), which reports whether it was reserved.
func budgetedCall(tb testing.TB) func() bool {
	tb.Helper()
	key, hash, _ := tenant.NewKey()
	big := `[{period: day, limit: "999999"}, {period: month, limit: "999999"}]`
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
deployments:
  - {name: d, provider: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-x}
prices: [{model: m, effective_from: "2020-01-01", input: "1.00", output: "2.00"}]
tenants:
  - id: t
    budgets: %s
    keys: [{id: k, sha256: %s, budgets: %s}]
    models: [{name: m, deployment: d}]
`, big, hash, big)))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(cfg, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	k, ok := s.live.Load().dir.Authenticate([]byte(key))
	if !ok {
		tb.Fatal("key not found")
	}
	rt, _ := k.Route([]byte("m"))
	var ctx fasthttp.RequestCtx
	ex := s.acquire()
	ex.req.Op = call.OpChat
	ex.rec.Start = time.Now()
	return func() bool {
		ex.rec.UsageSource, ex.rec.UpstreamStatus, ex.rec.PriceID = call.UsageNone, 0, ""
		if !s.reserveBudget(&ctx, ex, k, rt, 400) || !ex.budget.Held() {
			return false
		}
		ex.rec.Usage = call.Usage{InputTokens: 100, OutputTokens: 50, TotalTokens: 150}
		ex.rec.UsageSource, ex.rec.UpstreamStatus = call.UsageProvider, 200
		s.priceCall(&ex.rec)
		s.settleBudget(ex)
		return true
	}
}

// The budget work of one call in memory mode (estimate, reserve against a
// tenant's and a key's day and month budgets, settle with the priced
// usage) allocates nothing.
func TestReserveAndSettleBudget_InMemory_AllocateNothing(t *testing.T) {
	step := budgetedCall(t)
	n := testing.AllocsPerRun(1000, func() {
		if !step() {
			t.Fatal("not reserved")
		}
	})
	if n != 0 {
		t.Fatalf("a budgeted call's budget work allocates %v times, want 0", n)
	}
}

// BenchmarkBudgetedCall measures one call's budget work in memory mode:
// the estimate from the catalog, the reservation against a tenant's and a
// key's day and month budgets, pricing the usage and settling.
func BenchmarkBudgetedCall(b *testing.B) {
	step := budgetedCall(b)
	b.ReportAllocs()
	for b.Loop() {
		if !step() {
			b.Fatal("refused")
		}
	}
}
