package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/logtest"
	"github.com/loom-gateway/loom/proxy/price"
)

// budgetPrices prices gpt-4o-mini on the mock at 1.00 per million input
// tokens and 2.00 per million output tokens: a token is 1e6 or 2e6 amount
// units. gpt-4o has no price.
const budgetPrices = `prices: [{model: gpt-4o-mini, effective_from: "2020-01-01", input: "1.00", output: "2.00"}]`

// budgetBody asks for 5 tokens of "hello budget" (12 bytes: the mock counts
// 3 prompt tokens and answers 5 completion tokens, so a call costs
// 3×1e6 + 5×2e6 = 13e6 units, 0.000013).
func budgetBody(stream bool) string {
	return `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello budget"}],"max_tokens":5,"stream":` +
		strconv.FormatBool(stream) + `}`
}

const budgetCallCost = 13_000_000

// budgetEstimate is what a call of body reserves: its input as the TPM
// limit estimates it at the input price, and max_tokens at the output
// price.
func budgetEstimate(body string) int64 {
	return call.EstimateTokens(len(body))*1_000_000 + 5*2_000_000
}

func amount(a int64) string { return price.Amount(a).String() }

func tomorrow() string {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
}

func TestBudgets_TenantDaySpent_429InsufficientQuota_HeadersOnEveryAnswer(t *testing.T) {
	const limit = 50_000_000
	st := startStack(t, stackOptions{extra: budgetPrices, acmeBudgets: `[{period: day, limit: "0.00005"}]`})
	body := budgetBody(false)
	est := budgetEstimate(body)
	if 2*budgetCallCost+est <= limit || budgetCallCost+est > limit {
		t.Fatalf("the test's numbers no longer admit exactly two calls (estimate %d)", est)
	}
	for i := range 2 {
		status, h, b := st.do("POST", "/v1/chat/completions", st.keyA, body, nil)
		if status != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, status, b)
		}
		wantLeft := limit - int64(i)*budgetCallCost - est
		if h.Get("x-loom-budget-limit") != "0.00005" || h.Get("x-loom-budget-remaining") != amount(wantLeft) ||
			h.Get("x-loom-budget-reset") != tomorrow() {
			t.Fatalf("call %d headers: limit %q remaining %q reset %q; want 0.00005, %s, %s", i, h.Get("x-loom-budget-limit"),
				h.Get("x-loom-budget-remaining"), h.Get("x-loom-budget-reset"), amount(wantLeft), tomorrow())
		}
		st.waitRecords(i + 1) // settled before its record is sunk
	}
	status, h, b := st.do("POST", "/v1/chat/completions", st.keyA, body, nil)
	if status != http.StatusTooManyRequests {
		t.Fatalf("third call: %d %s; want 429", status, b)
	}
	var e struct {
		Error struct {
			Message, Type string
			Code          *string
		}
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Type != "insufficient_quota" || e.Error.Code == nil || *e.Error.Code != "insufficient_quota" {
		t.Fatalf("refusal body %s", b)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	for _, want := range []string{"daily budget of tenant acme", "0.00005 for " + today, "resets at " + tomorrow()} {
		if !strings.Contains(e.Error.Message, want) {
			t.Errorf("message %q lacks %q", e.Error.Message, want)
		}
	}
	if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 86400 {
		t.Errorf("Retry-After %q", h.Get("Retry-After"))
	}
	if h.Get("x-loom-budget-remaining") != amount(limit-2*budgetCallCost) {
		t.Errorf("refusal's remaining %q, want %s", h.Get("x-loom-budget-remaining"), amount(limit-2*budgetCallCost))
	}
	rec := st.lastRecord(2)
	if rec.Outcome != call.OutcomeRateLimited || rec.ErrorType != "insufficient_quota" || rec.UpstreamStatus != 0 {
		t.Errorf("refused call's record: outcome %s, error %s, upstream %d", rec.Outcome, rec.ErrorType, rec.UpstreamStatus)
	}
	if st.count() != 3 || len(st.mock.Requests()) != 2 {
		t.Errorf("%d records, %d upstream requests; want 3 and 2 (the refusal never went upstream)", st.count(), len(st.mock.Requests()))
	}
}

// A stream settles with the cost of the usage Loom read from it, a failed
// upstream call with nothing: what the next call sees left says so.
func TestBudgets_StreamSettlesItsRealCost_FailedCallSettlesNothing(t *testing.T) {
	const limit = 1_000_000_000
	st := startStack(t, stackOptions{extra: budgetPrices, acmeBudgets: `[{period: month, limit: "0.001"}]`})
	status, _, b := st.do("POST", "/v1/chat/completions", st.keyA, budgetBody(true), nil)
	if status != http.StatusOK || !bytes.Contains(b, []byte("[DONE]")) {
		t.Fatalf("stream: %d %s", status, b)
	}
	st.waitRecords(1)
	status, _, _ = st.do("POST", "/v1/chat/completions", st.keyA, budgetBody(false), map[string]string{"x-mock-status": "500"})
	if status < 500 {
		t.Fatalf("failing call: %d", status)
	}
	st.waitRecords(2)
	body := budgetBody(false)
	_, h, _ := st.do("POST", "/v1/chat/completions", st.keyA, body, nil)
	if want := amount(limit - budgetCallCost - budgetEstimate(body)); h.Get("x-loom-budget-remaining") != want {
		t.Fatalf("remaining %q, want %s (the stream's 0.000013 spent, the failure free)", h.Get("x-loom-budget-remaining"), want)
	}
}

func TestBudgets_MessagesRoute_RefusalInAnthropicsShape(t *testing.T) {
	st := startStack(t, stackOptions{extra: budgetPrices, acmeBudgets: `[{period: day, limit: "0"}]`})
	status, h, b := st.do("POST", "/v1/messages", st.keyA,
		`{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, nil)
	var e struct {
		Type  string
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal(b, &e); err != nil || status != http.StatusPaymentRequired || e.Type != "error" ||
		e.Error.Type != "billing_error" || !strings.Contains(e.Error.Message, "daily budget of tenant acme") {
		t.Fatalf("refusal on /v1/messages: %d %s; want Anthropic's 402 billing_error", status, b)
	}
	if h.Get("x-loom-budget-limit") != "0.00" || h.Get("Retry-After") == "" {
		t.Errorf("headers: limit %q, Retry-After %q", h.Get("x-loom-budget-limit"), h.Get("Retry-After"))
	}
}

func TestBudgets_UnpricedModel_NotBudgeted_LoggedOncePerModel(t *testing.T) {
	var logs logtest.Buffer
	st := startStack(t, stackOptions{extra: budgetPrices, acmeBudgets: `[{period: day, limit: "0"}]`,
		logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 3 {
		status, h, b := st.do("POST", "/v1/chat/completions", st.keyA, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, nil)
		if status != http.StatusOK || h.Get("x-loom-budget-limit") != "" {
			t.Fatalf("unpriced call: %d %s, budget header %q; want served, unbudgeted", status, b, h.Get("x-loom-budget-limit"))
		}
	}
	if n := strings.Count(logs.String(), "not budgeted"); n != 1 || !strings.Contains(logs.String(), "model=gpt-4o") {
		t.Fatalf("%d log lines about it, want 1 naming the model:\n%s", n, logs.String())
	}
}

func TestBudgets_AlertAt_OneLogLineAndTheMetricOnOps(t *testing.T) {
	var logs logtest.Buffer
	st := startStack(t, stackOptions{extra: budgetPrices, acmeBudgets: `[{period: day, limit: "0.0001", alert_at: 0.5}]`,
		logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ops := serveOps(t, st)
	for i := range 4 {
		if status, _, b := st.do("POST", "/v1/chat/completions", st.keyA, budgetBody(false), nil); status != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, status, b)
		}
		st.waitRecords(i + 1)
	}
	if n := strings.Count(logs.String(), "budget alert"); n != 1 {
		t.Fatalf("%d alert lines, want 1:\n%s", n, logs.String())
	}
	for _, want := range []string{"tenant=acme", `period="day ` + time.Now().UTC().Format(time.DateOnly) + `"`, "limit=0.0001"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("alert line lacks %s:\n%s", want, logs.String())
		}
	}
	if _, m := get(t, ops+"/metrics"); !strings.Contains(m, "\nloom_budget_alerts_total 1\n") {
		t.Errorf("/metrics lacks loom_budget_alerts_total 1:\n%s", m)
	}
}

// A client that leaves mid-stream is billed what the upstream says it
// produced: the drained usage settles the reservation.
func TestBudgets_ClientLeavesMidStream_SettledWithTheDrainedUsage(t *testing.T) {
	const limit = 1_000_000_000
	st := startStack(t, stackOptions{drain: 2 * time.Second, extra: budgetPrices, acmeBudgets: `[{period: day, limit: "0.001"}]`})
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello budget"}],"max_tokens":10,"stream":true}`
	resp := openStream(t, st, body, map[string]string{"x-mock-chunks": "10", "x-mock-chunk-delay-ms": "30"})
	if resp.Header.Get("x-loom-budget-limit") != "0.001" {
		t.Errorf("stream head: x-loom-budget-limit %q", resp.Header.Get("x-loom-budget-limit"))
	}
	_, _ = bufio.NewReader(resp.Body).ReadBytes('\n')
	resp.Body.Close()
	st.client.CloseIdleConnections()
	rec := st.lastRecord(0)
	if !rec.ClientDisconnected || !rec.DrainComplete || rec.PriceID == "" || rec.Cost != 3*1_000_000+10*2_000_000 {
		t.Fatalf("record: disconnected %v, drained %v, price %q, cost %d; want the drained usage priced at 23e6",
			rec.ClientDisconnected, rec.DrainComplete, rec.PriceID, rec.Cost)
	}
	next := budgetBody(false)
	_, h, _ := st.do("POST", "/v1/chat/completions", st.keyA, next, nil)
	if want := amount(limit - rec.Cost - budgetEstimate(next)); h.Get("x-loom-budget-remaining") != want {
		t.Fatalf("remaining %q, want %s (the abandoned stream's cost spent)", h.Get("x-loom-budget-remaining"), want)
	}
}

// A call whose max_tokens alone could cost more than what is left is
// refused with a message that says so, not that the budget is spent (seen
// under make run: max_tokens 2e9 against a fresh 10.00 budget read "the
// daily budget ... is spent"). The next call that fits is admitted.
func TestBudgets_OneCallCouldCostMoreThanIsLeft_MessageSaysSoNotSpent(t *testing.T) {
	st := startStack(t, stackOptions{extra: budgetPrices, acmeBudgets: `[{period: day, limit: "10.00"}]`})
	huge := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello budget"}],"max_tokens":2000000000}`
	status, h, b := st.do("POST", "/v1/chat/completions", st.keyA, huge, nil)
	if status != http.StatusTooManyRequests || h.Get("x-loom-budget-remaining") != "10.00" {
		t.Fatalf("huge max_tokens: %d, remaining %q: %s; want 429 with all 10.00 left", status, h.Get("x-loom-budget-remaining"), b)
	}
	est := amount(budgetEstimate(huge) - 5*2_000_000 + 2_000_000_000*2_000_000)
	for _, want := range []string{"has 10.00 left, less than this request could cost (up to " + est, "a lower max_tokens may fit"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("message %s lacks %q", b, want)
		}
	}
	if strings.Contains(string(b), "is spent") {
		t.Errorf("message %s says the budget is spent; 10.00 of it is left", b)
	}
	if status, _, b := st.do("POST", "/v1/chat/completions", st.keyA, budgetBody(false), nil); status != http.StatusOK {
		t.Fatalf("a call that fits: %d %s", status, b)
	}
}
