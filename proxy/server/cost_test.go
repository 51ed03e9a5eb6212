package server_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/server"
)

// costPrices are the catalog of the cost tests: gpt-4o by its tenant
// name, every deployment; gpt-4o-mini by its upstream model's name on the
// mock's deployment (the tenant calls it gpt-4o-mini).
const costPrices = `
prices:
  - {model: gpt-4o, effective_from: 2020-01-01, input: "2.50", cached_input: "1.25", output: "10", reasoning: "20"}
  - {model: gpt-4o-mini-2024-07-18, deployment: mock-openai, effective_from: 2020-01-01, input: 0.15, output: 0.6}
`

// wireChatUsage is the usage of an OpenAI chat answer, as the mock sent it.
type wireChatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func mustEntry(t *testing.T, cat *price.Catalog, model, deployment string) *price.Entry {
	t.Helper()
	e, ok := cat.Lookup(model, deployment, time.Now())
	if !ok {
		t.Fatalf("no price for %s on %s", model, deployment)
	}
	return e
}

func TestUnary_PricedModel_XLoomCostIsCatalogPriceTimesUsage(t *testing.T) {
	st := startStack(t, stackOptions{extra: costPrices})
	for _, tc := range []struct {
		name, model, priceModel string
		header                  map[string]string
	}{
		{"plain", "gpt-4o", "gpt-4o", nil},
		{"cached and reasoning", "gpt-4o", "gpt-4o",
			map[string]string{mockupstream.HeaderCacheReadTokens: "64", mockupstream.HeaderReasoningTokens: "30"}},
		{"priced by its upstream model", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", nil},
	} {
		seen := st.count()
		status, h, body := st.do("POST", "/v1/chat/completions", st.keyA,
			`{"model":"`+tc.model+`","messages":[{"role":"user","content":"hello there"}]}`, tc.header)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", tc.name, status, body)
		}
		var answer struct{ Usage wireChatUsage }
		if err := json.Unmarshal(body, &answer); err != nil {
			t.Fatal(err)
		}
		u := answer.Usage
		e := mustEntry(t, st.loom.Prices(), tc.priceModel, "mock-openai")
		want := e.Cost(call.Usage{InputTokens: u.PromptTokens, CachedInputTokens: u.PromptTokensDetails.CachedTokens,
			OutputTokens: u.CompletionTokens, ReasoningTokens: u.CompletionTokensDetails.ReasoningTokens})
		if got := h.Get(server.HeaderCost); got != want.String() || h.Get(server.HeaderCostCurrency) != "USD" {
			t.Errorf("%s: %s = %q %s, want %s USD (usage %+v)", tc.name, server.HeaderCost, got, h.Get(server.HeaderCostCurrency), want, u)
		}
		rec := st.lastRecord(seen)
		if rec.PriceID != e.ID || price.Amount(rec.Cost) != want || rec.CostCurrency != "USD" {
			t.Errorf("%s: record cost %d %s %s, want %d %s", tc.name, rec.Cost, rec.CostCurrency, rec.PriceID, want, e.ID)
		}
		if tc.header != nil && (u.PromptTokensDetails.CachedTokens != 64 || u.CompletionTokensDetails.ReasoningTokens != 30) {
			t.Errorf("%s: the mock reported %+v", tc.name, u)
		}
	}
	// 2.50, 1.25, 10 and 20 per million: the cached and reasoning call
	// costs what its parts cost, exactly.
	e := mustEntry(t, st.loom.Prices(), "gpt-4o", "mock-openai")
	if got := e.Cost(call.Usage{InputTokens: 100, CachedInputTokens: 64, OutputTokens: 35, ReasoningTokens: 30}); got.String() != "0.00082" {
		t.Errorf("36 × 2.50 + 64 × 1.25 + 5 × 10 + 30 × 20 per million = %s, want 0.00082", got)
	}
}

func TestUnary_NoPriceOrNoUsage_NoCostHeader(t *testing.T) {
	st := startStack(t, stackOptions{extra: costPrices})
	seen := st.count()
	status, h, body := st.do("POST", "/v1/embeddings", st.keyA, `{"model":"text-embedding-3-small","input":"hi"}`, nil)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if v, ok := h[server.HeaderCost]; ok {
		t.Errorf("an unpriced model's answer has %s: %v", server.HeaderCost, v)
	}
	if rec := st.lastRecord(seen); rec.PriceID != "" || rec.Cost != 0 {
		t.Errorf("unpriced record has cost %d %q", rec.Cost, rec.PriceID)
	}
	seen = st.count()
	status, h, _ = st.do("POST", "/v1/chat/completions", st.keyA, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{mockupstream.HeaderStatus: "400"})
	if status != http.StatusBadRequest || h.Get(server.HeaderCost) != "" {
		t.Errorf("an upstream error: status %d, %s %q", status, server.HeaderCost, h.Get(server.HeaderCost))
	}
	if rec := st.lastRecord(seen); rec.PriceID != "" {
		t.Errorf("an upstream error without usage was priced: %q", rec.PriceID)
	}
}

// A stream's head goes out before its usage is known: its cost is on the
// span (the record) only.
func TestStream_CostOnTheRecordNotTheHeaders(t *testing.T) {
	st := startStack(t, stackOptions{extra: costPrices})
	seen := st.count()
	status, h, body := st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if h.Get(server.HeaderCost) != "" {
		t.Errorf("a stream has %s %q", server.HeaderCost, h.Get(server.HeaderCost))
	}
	rec := st.lastRecord(seen)
	want := mustEntry(t, st.loom.Prices(), "gpt-4o", "mock-openai").Cost(rec.Usage)
	if rec.PriceID == "" || price.Amount(rec.Cost) != want || want == 0 {
		t.Errorf("stream record cost %d %q, want %d", rec.Cost, rec.PriceID, want)
	}
}

// The store's prices join the file's. A store entry that clashes with the
// file's is left out (the file wins) and named, and the rest of the set is
// served: an entry in force cannot be deleted, so refusing the whole set
// would freeze the store's prices. A later entry prices calls from its
// effective date on.
func TestSetStorePrices_JoinTheFilesClashingEntryLeftOut(t *testing.T) {
	st := startStack(t, stackOptions{extra: costPrices})
	clash := price.Entry{ID: "dup", Model: "gpt-4o", EffectiveFrom: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Input: 1, Output: 1}
	other := price.Entry{ID: "embed", Model: "text-embedding-3-small", EffectiveFrom: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Input: 20_000}
	err := st.loom.SetStorePrices([]price.Entry{clash, other})
	if !errors.Is(err, price.ErrDuplicate) || !strings.Contains(err.Error(), `"dup"`) {
		t.Fatalf("a clashing store entry: %v, want ErrDuplicate naming \"dup\"", err)
	}
	if e := mustEntry(t, st.loom.Prices(), "gpt-4o", "mock-openai"); e.ID != "gpt-4o:2020-01-01T00:00:00Z" {
		t.Errorf("gpt-4o priced by %s, want the file's entry", e.ID)
	}
	mustEntry(t, st.loom.Prices(), "text-embedding-3-small", "mock-openai")

	later := price.Entry{ID: "gpt-4o-2", Model: "gpt-4o", EffectiveFrom: time.Now().Add(-time.Second), Input: 5_000_000, Output: 15_000_000}
	if err := st.loom.SetStorePrices([]price.Entry{later}); err != nil {
		t.Fatal(err)
	}
	_, h, _ := st.do("POST", "/v1/chat/completions", st.keyA, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, nil)
	rec := st.waitRecords(1)[0]
	if rec.PriceID != "gpt-4o-2" || h.Get(server.HeaderCost) != price.Amount(rec.Cost).String() {
		t.Errorf("priced by %q at %s (header %s), want gpt-4o-2", rec.PriceID, price.Amount(rec.Cost), h.Get(server.HeaderCost))
	}
}
