package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/price"
)

// costCall is one call of the cost test: a trace id to find its span by,
// and what the mock is asked to report.
type costCall struct {
	trace             string
	stream            bool
	cached, reasoning int
	tenant            string
}

func (g *gateway) costCall(t *testing.T, c costCall) {
	t.Helper()
	body := `{"model":"` + models[c.tenant].public + `","messages":[{"role":"user","content":"what does this cost"}]`
	if c.stream {
		body += `,"stream":true`
	}
	req, err := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(body+"}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+g.keys[c.tenant])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+c.trace+"-00f067aa0ba902b7-01")
	req.Header.Set("x-mock-tag", c.trace)
	if c.cached > 0 {
		req.Header.Set(mockupstream.HeaderCacheReadTokens, fmt.Sprint(c.cached))
	}
	if c.reasoning > 0 {
		req.Header.Set(mockupstream.HeaderReasoningTokens, fmt.Sprint(c.reasoning))
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d: %s", c.trace, resp.StatusCode, b)
	}
}

// mockUsage is the usage the mock sent for the call tagged trace, in the
// GenAI conventions' counts.
func (g *gateway) mockUsage(t *testing.T, trace string) call.Usage {
	t.Helper()
	for _, r := range g.mock.Requests() {
		if r.Header["x-mock-tag"] != trace {
			continue
		}
		if r.UsageSent == nil {
			t.Fatalf("%s: the mock sent no usage", trace)
		}
		u := call.Usage{InputTokens: int64(r.UsageSent.PromptTokens), OutputTokens: int64(r.UsageSent.CompletionTokens)}
		if d := r.UsageDetails; d != nil {
			u.CachedInputTokens, u.ReasoningTokens = int64(d.CacheReadTokens), int64(d.ReasoningTokens)
		}
		return u
	}
	t.Fatalf("%s: the mock saw no such call", trace)
	return call.Usage{}
}

// storedCost is the cost columns of the CLIENT span of trace; cost is ""
// when NULL.
type storedCost struct{ cost, currency, priceID string }

func clientCost(t *testing.T, db *pgxpool.Pool, trace string) storedCost {
	t.Helper()
	var c storedCost
	var cost, currency, id *string
	err := db.QueryRow(context.Background(), `SELECT cost::text, cost_currency, price_id FROM loom.spans
WHERE trace_id = $1 AND kind = 'client'`, trace).Scan(&cost, &currency, &id)
	if err != nil {
		t.Fatalf("%s: %v", trace, err)
	}
	for _, p := range []struct {
		src *string
		dst *string
	}{{cost, &c.cost}, {currency, &c.currency}, {id, &c.priceID}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	return c
}

// Cost on each stored CLIENT span is the catalog's price × the usage the
// mock reported, exactly, for plain, cached and reasoning calls, unary and
// streamed; a model with no price has no cost (NULL, not 0); a price with
// a later effective date prices the calls after it and leaves the stored
// cost of the calls before it as it was.
func TestCost_StoredSpanCostIsCatalogPriceTimesMockUsage(t *testing.T) {
	pg := pgtest.Start(t)
	dbURL := pgtest.Database(t, pg)
	col := startCollector(t, dbURL)
	g := startGatewayOpts(t, col.grpc, gatewayOptions{prices: `prices:
  - {id: mini-2020, model: gpt-4o-mini, effective_from: 2020-01-01, input: "0.15", cached_input: "0.075", output: "0.60", reasoning: "2.40"}
`})
	db := connect(t, dbURL)
	calls := []costCall{
		{trace: fmt.Sprintf("%032x", 0xc0570001), tenant: "acme"},
		{trace: fmt.Sprintf("%032x", 0xc0570002), tenant: "acme", cached: 40},
		{trace: fmt.Sprintf("%032x", 0xc0570003), tenant: "acme", reasoning: 25},
		{trace: fmt.Sprintf("%032x", 0xc0570004), tenant: "acme", stream: true, cached: 12, reasoning: 9},
		{trace: fmt.Sprintf("%032x", 0xc0570005), tenant: "globex"}, // globex-model has no price
	}
	for _, c := range calls {
		g.costCall(t, c)
	}
	g.flush(30 * time.Second)
	waitRows(t, db, int64(len(calls)), 60*time.Second, "SELECT count(*) FROM loom.spans WHERE kind = 'client'")
	first := g.srv.Prices()
	before := map[string]storedCost{}
	for _, c := range calls {
		got := clientCost(t, db, c.trace)
		before[c.trace] = got
		if c.tenant == "globex" {
			if got != (storedCost{}) {
				t.Errorf("an unpriced call has cost %+v", got)
			}
			continue
		}
		u := g.mockUsage(t, c.trace)
		if int64(c.cached) != u.CachedInputTokens || int64(c.reasoning) != u.ReasoningTokens {
			t.Errorf("%s: the mock reported %+v, asked for cached %d reasoning %d", c.trace, u, c.cached, c.reasoning)
		}
		e, _ := first.Lookup("gpt-4o-mini", "mock", time.Now())
		checkCost(t, c.trace, got, e, u)
	}

	// A new price from now on: later calls take it, earlier rows keep theirs.
	later := price.Entry{ID: "mini-now", Model: "gpt-4o-mini", EffectiveFrom: time.Now(), Input: 300_000, Output: 1_200_000}
	if err := g.srv.SetStorePrices([]price.Entry{later}); err != nil {
		t.Fatal(err)
	}
	after := costCall{trace: fmt.Sprintf("%032x", 0xc0570006), tenant: "acme", cached: 40, reasoning: 25}
	g.costCall(t, after)
	g.flush(30 * time.Second)
	waitRows(t, db, int64(len(calls)+1), 60*time.Second, "SELECT count(*) FROM loom.spans WHERE kind = 'client'")
	e, _ := g.srv.Prices().Lookup("gpt-4o-mini", "mock", time.Now())
	if e.ID != "mini-now" {
		t.Fatalf("the new price is not in force: %s", e.ID)
	}
	checkCost(t, after.trace, clientCost(t, db, after.trace), e, g.mockUsage(t, after.trace))
	for _, c := range calls {
		if got := clientCost(t, db, c.trace); got != before[c.trace] {
			t.Errorf("%s: stored cost changed from %+v to %+v", c.trace, before[c.trace], got)
		}
	}
}

// checkCost compares a stored cost with e's price of u, exactly.
func checkCost(t *testing.T, trace string, got storedCost, e *price.Entry, u call.Usage) {
	t.Helper()
	want := e.Cost(u)
	stored, err := price.ParseAmount(got.cost)
	if err != nil || stored != want || got.currency != e.Currency || got.priceID != e.ID {
		t.Errorf("%s: stored cost %+v (%v), want %s %s by %s for %+v", trace, got, err, want, e.Currency, e.ID, u)
	}
}
