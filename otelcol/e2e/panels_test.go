package e2e_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/dashboards/queries"
)

// panelRows runs a panel as Grafana would (interval one minute, tenant acme
// on the Tenant dashboard) and returns its rows by column name.
func panelRows(t *testing.T, db *pgxpool.Pool, id string, from, to time.Time) []map[string]any {
	t.Helper()
	p, ok := queries.ByID(id)
	if !ok {
		t.Fatalf("no panel %s", id)
	}
	var vars map[string][]string
	if p.Dashboard == queries.Tenant {
		vars = map[string][]string{"tenant": {"acme"}}
	}
	rows, err := db.Query(context.Background(), queries.Expand(p.SQL, from, to, time.Minute, vars))
	if err != nil {
		t.Fatalf("panel %s: %v", id, err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatalf("panel %s: %v", id, err)
		}
		row := map[string]any{}
		for i, f := range rows.FieldDescriptions() {
			row[f.Name] = vals[i]
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("panel %s: %v", id, err)
	}
	return out
}

// num reads a numeric cell (bigint, double precision, numeric) as a float64.
func num(t *testing.T, id, col string, v any) float64 {
	t.Helper()
	switch x := v.(type) {
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case float64:
		return x
	case pgtype.Numeric:
		if f, err := x.Float64Value(); err == nil && f.Valid {
			return f.Float64
		}
	}
	t.Fatalf("panel %s column %s: %T %v is not a number", id, col, v, v)
	return 0
}

// sumCol adds a column over every row; perSecond columns are multiplied
// back by the minute interval, so they sum to a count.
func sumCol(t *testing.T, id string, rows []map[string]any, col string, perSecond bool) int64 {
	t.Helper()
	var s float64
	for _, r := range rows {
		v, ok := r[col]
		if !ok {
			t.Fatalf("panel %s has no column %q: %v", id, col, r)
		}
		s += num(t, id, col, v)
	}
	if perSecond {
		s *= 60
	}
	return int64(math.Round(s))
}

// checkPercentiles: every bucket has p50 <= p95 <= p99, none negative.
func checkPercentiles(t *testing.T, id string, rows []map[string]any) {
	t.Helper()
	if len(rows) == 0 {
		t.Errorf("panel %s: no rows", id)
	}
	for _, r := range rows {
		p50, p95, p99 := num(t, id, "p50", r["p50"]), num(t, id, "p95", r["p95"]), num(t, id, "p99", r["p99"])
		if p50 < 0 || p50 > p95 || p95 > p99 {
			t.Errorf("panel %s: p50 %v, p95 %v, p99 %v", id, p50, p95, p99)
		}
	}
}

// panelTotals is what the run made, as the client and the mock saw it.
type panelTotals struct {
	calls, acmeCalls         int64
	in, out, acmeIn, acmeOut int64
	// acmeSpendMicro is acme's spend in millionths: its model costs 1 per
	// million input tokens and 2 per million output tokens (dashboardPrices);
	// globex's is not priced.
	acmeSpendMicro int64
	byKind         map[kind]int64
	instance       string
}

// checkPanelValues runs every panel and checks its numbers against the run:
// counts, token sums, statuses, sequence gaps; percentiles ordered.
func checkPanelValues(t *testing.T, db *pgxpool.Pool, w panelTotals, from, to time.Time) {
	t.Helper()
	checked := map[string]bool{}
	rows := func(id string) []map[string]any { checked[id] = true; return panelRows(t, db, id, from, to) }
	expect := func(id, what string, got, want int64) {
		t.Helper()
		if got != want {
			t.Errorf("panel %s: %s %d, want %d", id, what, got, want)
		}
	}
	streams := w.byKind[streamHidden] + w.byKind[streamUsage] + w.byKind[upstream429] + w.byKind[clientAbort]

	requests := rows("overview_requests")
	expect("overview_requests", "requests", sumCol(t, "overview_requests", requests, "requests/s", true), w.calls)
	// The error rate is an average per bucket: weighted by the bucket's
	// requests it gives back the failed calls.
	rate := rows("overview_error_rate")
	var failed float64
	for i, r := range rate {
		failed += num(t, "overview_error_rate", "error rate", r["error rate"]) * num(t, "overview_requests", "requests/s", requests[i]["requests/s"]) * 60
	}
	expect("overview_error_rate", "failed calls", int64(math.Round(failed)), w.byKind[upstream500]+w.byKind[upstream429]+w.byKind[clientAbort])
	checkPercentiles(t, "overview_latency", rows("overview_latency"))
	checkPercentiles(t, "overview_overhead", rows("overview_overhead"))
	checkPercentiles(t, "overview_ttfc", rows("overview_ttfc"))
	tokens := rows("overview_tokens")
	expect("overview_tokens", "input tokens", sumCol(t, "overview_tokens", tokens, "input", true), w.in)
	expect("overview_tokens", "output tokens", sumCol(t, "overview_tokens", tokens, "output", true), w.out)
	by := rows("overview_tokens_by")
	expect("overview_tokens_by", "rows (tenant, model, provider)", int64(len(by)), 2)
	expect("overview_tokens_by", "calls", sumCol(t, "overview_tokens_by", by, "calls", false), w.calls)
	expect("overview_tokens_by", "input tokens", sumCol(t, "overview_tokens_by", by, "input_tokens", false), w.in)

	spendMicro := func(id string) int64 {
		var sum float64
		for _, r := range rows(id) {
			sum += num(t, id, "spend", r["spend"])
		}
		return int64(math.Round(sum * 1e6))
	}
	expect("overview_spend", "spend (millionths)", spendMicro("overview_spend"), w.acmeSpendMicro)
	expect("overview_spend_by", "spend (millionths)", spendMicro("overview_spend_by"), w.acmeSpendMicro)
	expect("overview_spend_by", "rows (acme's key and model only)", int64(len(rows("overview_spend_by"))), 1)
	expect("tenant_spend", "acme spend (millionths)", spendMicro("tenant_spend"), w.acmeSpendMicro)

	expect("tenant_requests", "acme requests", sumCol(t, "tenant_requests", rows("tenant_requests"), "requests/s", true), w.acmeCalls)
	tt := rows("tenant_tokens")
	expect("tenant_tokens", "acme input", sumCol(t, "tenant_tokens", tt, "input", false), w.acmeIn)
	expect("tenant_tokens", "acme output", sumCol(t, "tenant_tokens", tt, "output", false), w.acmeOut)
	// No limits are configured: an upstream's 429 is not Loom's limit.
	expect("tenant_limits_hit", "limits hit", sumCol(t, "tenant_limits_hit", rows("tenant_limits_hit"), "limits hit", false), 0)
	expect("tenant_keys_in_use", "keys", sumCol(t, "tenant_keys_in_use", rows("tenant_keys_in_use"), "keys in use", false), 1)
	keys := rows("tenant_keys")
	expect("tenant_keys", "rows", int64(len(keys)), 1)
	expect("tenant_keys", "requests", sumCol(t, "tenant_keys", keys, "requests", false), w.acmeCalls)
	expect("tenant_keys", "limited", sumCol(t, "tenant_keys", keys, "limited", false), 0)

	checkPercentiles(t, "stream_ttfc", rows("stream_ttfc"))
	chunks := sumCol(t, "stream_chunks", rows("stream_chunks"), "chunks/s", true)
	t.Logf("panel stream_chunks: %d chunks", chunks)
	if chunks < w.byKind[streamHidden]+w.byKind[streamUsage] {
		t.Errorf("panel stream_chunks: %d chunks for %d complete streams", chunks, w.byKind[streamHidden]+w.byKind[streamUsage])
	}
	expect("stream_disconnects", "disconnects", sumCol(t, "stream_disconnects", rows("stream_disconnects"), "disconnects", false), w.byKind[clientAbort])
	sources := map[string]int64{}
	for _, r := range rows("stream_usage_source") {
		sources[r["metric"].(string)] += int64(num(t, "stream_usage_source", "calls", r["calls"]))
	}
	t.Logf("panel stream_usage_source: %v", sources)
	var allSources int64
	for _, n := range sources {
		allSources += n
	}
	expect("stream_usage_source", "streamed calls", allSources, streams)
	// A client that left still gets the provider's count (Loom drains the
	// upstream for it); an upstream that refused the stream sent none.
	expect("stream_usage_source", "provider counts", sources["provider"], w.byKind[streamHidden]+w.byKind[streamUsage]+w.byKind[clientAbort])
	expect("stream_usage_source", "streams without usage", sources["none"], w.byKind[upstream429])

	// Two spans a call, and the run's start marker.
	expect("pipeline_ingested", "spans", sumCol(t, "pipeline_ingested", rows("pipeline_ingested"), "spans/s", true), 2*w.calls+1)
	checkPercentiles(t, "pipeline_ingest_lag", rows("pipeline_ingest_lag"))
	expect("pipeline_dead_letters", "rows", int64(len(rows("pipeline_dead_letters"))), 0)
	gaps := rows("pipeline_seq_gaps")
	if len(gaps) != 1 || gaps[0]["instance"] != w.instance || int64(num(t, "pipeline_seq_gaps", "numbered", gaps[0]["numbered"])) != w.calls ||
		int64(num(t, "pipeline_seq_gaps", "stored", gaps[0]["stored"])) != w.calls || int64(num(t, "pipeline_seq_gaps", "missing", gaps[0]["missing"])) != 0 {
		t.Errorf("panel pipeline_seq_gaps: %v, want one run of instance %s numbered 1 to %d, all stored", gaps, w.instance, w.calls)
	}

	recent := rows("calls_recent")
	expect("calls_recent", "rows", int64(len(recent)), w.calls)
	statuses := map[int64]int64{}
	for _, r := range recent {
		statuses[int64(num(t, "calls_recent", "status", r["status"]))]++
	}
	expect("calls_recent", "status 500", statuses[500], w.byKind[upstream500])
	expect("calls_recent", "status 429", statuses[429], w.byKind[upstream429])
	expect("calls_recent", "status 200", statuses[200], w.calls-w.byKind[upstream500]-w.byKind[upstream429])

	// One deployment per model: every call is one attempt, which failed
	// when the upstream answered 500 or refused the stream with 429.
	failedCalls := w.byKind[upstream500] + w.byKind[upstream429]
	attempts := rows("overview_attempts")
	expect("overview_attempts", "served attempts", sumCol(t, "overview_attempts", attempts, "served attempts/min", false), w.calls-failedCalls)
	expect("overview_attempts", "failed attempts", sumCol(t, "overview_attempts", attempts, "failed attempts/min", false), failedCalls)
	expect("overview_attempts", "failovers", sumCol(t, "overview_attempts", attempts, "failovers/min", false), 0)
	expect("overview_attempts", "fallbacks", sumCol(t, "overview_attempts", attempts, "fallbacks/min", false), 0)
	failures := rows("overview_attempt_failures")
	expect("overview_attempt_failures", "failures", sumCol(t, "overview_attempt_failures", failures, "failures", false), failedCalls)
	expect("overview_attempt_failures", "failed over", sumCol(t, "overview_attempt_failures", failures, "failed_over", false), 0)
	expect("overview_fallbacks", "rows", int64(len(rows("overview_fallbacks"))), 0)

	for _, p := range queries.All() {
		if !checked[p.ID] {
			t.Errorf("panel %s: its values are not checked", p.ID)
		}
	}
}
