package postgresexporter

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/loom-gateway/loom/proxy/spanattr"
)

// The exporter keeps the hourly usage rollup: a call it stored in an hour
// that has ended shows up in loom.usage_hourly, and its mark goes, with
// no one else running a refresh.
func TestExporter_KeepsTheUsageRollup(t *testing.T) {
	t.Parallel()
	x := startTuned(t, nil, func(e *pgExporter) { e.rollupEvery = 50 * time.Millisecond })
	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)

	td, spans := newTraces()
	s := addSpan(spans, 1, hour.Add(10*time.Minute))
	s.SetName("POST /v1/chat/completions")
	s.SetKind(ptrace.SpanKindServer)
	s.Attributes().PutStr(spanattr.TenantID, "acme")
	s.Attributes().PutStr(spanattr.APIKeyID, "key-1")
	s.Attributes().PutStr(spanattr.GenAIRequestModel, "gpt-4o")
	c := addSpan(spans, 2, hour.Add(10*time.Minute+time.Millisecond))
	c.SetTraceID(traceID(1))
	c.SetParentSpanID(spanID(1))
	c.SetName("chat gpt-4o")
	c.SetKind(ptrace.SpanKindClient)
	a := c.Attributes()
	a.PutStr(spanattr.TenantID, "acme")
	a.PutStr(spanattr.APIKeyID, "key-1")
	a.PutInt(spanattr.GenAIUsageInputTokens, 100)
	a.PutInt(spanattr.GenAIUsageOutputTokens, 20)
	a.PutDouble(spanattr.Cost, 0.0125)
	a.PutStr(spanattr.CostCurrency, "USD")
	if err := x.push(t.Context(), td); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for count(t, x.db, `SELECT count(*) FROM loom.usage_hourly WHERE hour = $1`, hour) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stored call's hour was never rolled up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for dim, value := range map[string]string{"key": "key-1", "model": "gpt-4o"} {
		compare(t, "the rollup row by "+dim, row(t, x.db, `SELECT tenant_id, dim_value, currency, calls, unpriced,
  input_tokens, output_tokens, cost::text FROM loom.usage_hourly WHERE hour = $1 AND dim = $2`, hour, dim), map[string]any{
			"tenant_id": "acme", "dim_value": value, "currency": "USD", "calls": int64(1),
			"unpriced": int64(0), "input_tokens": int64(100), "output_tokens": int64(20), "cost": "0.0125",
		})
	}
	if n := count(t, x.db, `SELECT count(*) FROM loom.usage_dirty WHERE hour = $1`, hour); n != 0 {
		t.Errorf("%d marks left on the rolled-up hour", n)
	}
	if got := x.counter(t, "loom_exporter_usage_hours_rolled_up"); got < 1 {
		t.Errorf("loom_exporter_usage_hours_rolled_up = %d", got)
	}
}
