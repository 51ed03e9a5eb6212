package postgresexporter

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/loom-gateway/loom/proxy/spanattr"
)

// callTraces is one call as the proxy records it: a CLIENT span with every
// attribute that has a column, in its conventional type, and a SERVER span
// whose values come in other types that still map exactly (or do not).
func callTraces(start time.Time) ptrace.Traces {
	td, spans := newTraces()
	c := addSpan(spans, 1, start)
	c.SetParentSpanID(spanID(2))
	c.SetName("chat gpt-4o")
	c.SetKind(ptrace.SpanKindClient)
	c.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(1500 * time.Millisecond)))
	c.Status().SetCode(ptrace.StatusCodeError)
	c.Status().SetMessage("upstream said 500")
	a := c.Attributes()
	a.PutStr(spanattr.InstanceID, "inst-1")
	a.PutStr(spanattr.RunID, "run-1")
	a.PutInt(spanattr.Seq, 41)
	a.PutStr(spanattr.TenantID, "acme")
	a.PutStr(spanattr.APIKeyID, "key-7")
	a.PutStr(spanattr.GenAIProviderName, "openai")
	a.PutStr(spanattr.GenAIOperationName, "chat")
	a.PutStr(spanattr.GenAIRequestModel, "gpt-4o")
	a.PutStr(spanattr.GenAIResponseModel, "gpt-4o-2024-08-06")
	a.PutStr(spanattr.GenAIResponseID, "chatcmpl-1")
	a.PutEmptySlice(spanattr.GenAIResponseFinishReasons).FromRaw([]any{"stop", "length"})
	a.PutInt(spanattr.GenAIUsageInputTokens, 100)
	a.PutInt(spanattr.GenAIUsageOutputTokens, 20)
	a.PutInt(spanattr.GenAIUsageCacheReadInputTokens, 64)
	a.PutInt(spanattr.GenAIUsageReasoningOutputTokens, 8)
	a.PutInt(spanattr.UsageTotalTokens, 120)
	a.PutBool(spanattr.GenAIRequestStream, true)
	a.PutDouble(spanattr.GenAIResponseTimeToFirstChunk, 0.25)
	a.PutDouble(spanattr.GatewayOverhead, 0.000125)
	a.PutInt(spanattr.HTTPResponseStatusCode, 500)
	a.PutInt(spanattr.UpstreamAttempt, 2)
	a.PutStr(spanattr.UsageSource, "provider")
	a.PutBool(spanattr.ClientDisconnected, false)
	a.PutInt(spanattr.Chunks, 17)
	a.PutStr(spanattr.ErrorType, "500")
	a.PutStr(spanattr.ServerAddress, "api.openai.com")
	a.PutStr(spanattr.Deployment, "openai-main")
	a.PutDouble(spanattr.Cost, 0.000123456789)
	a.PutStr(spanattr.CostCurrency, "USD")
	a.PutStr(spanattr.CostPriceID, "gpt-4o:2025-01-01T00:00:00Z")
	a.PutDouble(spanattr.GenAIRequestTemperature, 0.7) // no column
	a.PutInt(spanattr.ServerPort, 443)                 // no column
	a.PutStr(spanattr.GenAIInputMessages, `[{"role":"user","parts":[{"type":"text","content":"hi"}]}]`)
	a.PutStr(spanattr.GenAIOutputMessages, "not JSON")
	e := c.Events().AppendEmpty()
	e.SetName("gen_ai.first_chunk")
	e.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(250 * time.Millisecond)))
	e.Attributes().PutInt("n", 1)
	e = c.Events().AppendEmpty()
	e.SetName("exception")
	e.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Second)))

	s := addSpan(spans, 2, start.Add(-time.Millisecond))
	s.SetTraceID(traceID(1))
	s.SetName("POST /v1/chat/completions")
	s.SetKind(ptrace.SpanKindServer)
	s.Status().SetCode(ptrace.StatusCodeOk)
	a = s.Attributes()
	a.PutStr(spanattr.Seq, "42")                          // a decimal string: maps
	a.PutDouble(spanattr.HTTPResponseStatusCode, 200)     // an integral double: maps
	a.PutStr(spanattr.GenAIRequestStream, "false")        // maps
	a.PutDouble(spanattr.Chunks, 3.5)                     // not an integer: stays an attribute
	a.PutInt(spanattr.TenantID, 7)                        // not a string: stays an attribute
	a.PutStr(spanattr.GenAIResponseFinishReasons, "stop") // one reason
	a.PutStr(spanattr.Cost, "1.5")                        // not a number: stays an attribute
	l := s.Links().AppendEmpty()
	l.SetTraceID(traceID(9))
	l.SetSpanID(spanID(9))
	l.Attributes().PutStr("why", "retry of")
	return td
}

func TestPush_CallSpans_EveryColumnRight(t *testing.T) {
	t.Parallel()
	x := startExporter(t, nil)
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	if err := x.push(t.Context(), callTraces(start)); err != nil {
		t.Fatal(err)
	}
	resource := map[string]any{"service.name": "loom", "service.instance.id": "inst-1"}

	compare(t, "client span", row(t, x.db, "SELECT * FROM loom.spans WHERE span_id = $1", spanID(1).String()), map[string]any{
		"trace_id": traceID(1).String(), "span_id": spanID(1).String(), "parent_span_id": spanID(2).String(),
		"start_time": start, "end_time": start.Add(1500 * time.Millisecond), "duration_ms": 1500.0,
		"name": "chat gpt-4o", "kind": "client", "status_code": "error", "status_message": "upstream said 500",
		"service_name": "loom", "scope_name": "github.com/loom-gateway/loom/proxy",
		"instance_id": "inst-1", "run_id": "run-1", "seq": int64(41), "tenant_id": "acme", "api_key_id": "key-7",
		"provider": "openai", "operation": "chat", "request_model": "gpt-4o",
		"response_model": "gpt-4o-2024-08-06", "response_id": "chatcmpl-1",
		"finish_reasons": []any{"stop", "length"},
		"input_tokens":   int64(100), "output_tokens": int64(20), "cache_read_tokens": int64(64),
		"reasoning_tokens": int64(8), "total_tokens": int64(120), "stream": true,
		"time_to_first_chunk_ms": 250.0, "overhead_ms": 0.125, "http_status": int32(500),
		"upstream_attempt": int32(2), "usage_source": "provider", "client_disconnected": false,
		"chunks": int32(17), "error_type": "500", "server_address": "api.openai.com", "deployment": "openai-main",
		"cost_currency": "USD", "price_id": "gpt-4o:2025-01-01T00:00:00Z",
		// Only what has no column, and never the content.
		"attributes": map[string]any{spanattr.GenAIRequestTemperature: 0.7, spanattr.ServerPort: 443.0},
		"resource":   resource,
		"links":      nil,
	})

	compare(t, "server span", row(t, x.db, "SELECT * FROM loom.spans WHERE span_id = $1", spanID(2).String()), map[string]any{
		"parent_span_id": nil, "kind": "server", "status_code": "ok", "status_message": nil,
		"seq": int64(42), "http_status": int32(200), "stream": false, "chunks": nil, "tenant_id": nil,
		"finish_reasons": []any{"stop"}, "input_tokens": nil, "provider": nil,
		"attributes":    map[string]any{spanattr.Chunks: 3.5, spanattr.TenantID: 7.0, spanattr.Cost: "1.5"},
		"cost_currency": nil, "price_id": nil,
		"links": []any{map[string]any{"trace_id": traceID(9).String(), "span_id": spanID(9).String(),
			"attributes": map[string]any{"why": "retry of"}}},
	})

	// loom.cost is exact in the numeric column: the double's shortest
	// decimal, not its binary expansion.
	var cost *string
	if err := x.db.QueryRow(t.Context(), "SELECT cost::text FROM loom.spans WHERE span_id = $1", spanID(1).String()).Scan(&cost); err != nil ||
		cost == nil || *cost != "0.000123456789" {
		t.Errorf("client span cost = %v (err %v), want 0.000123456789", cost, err)
	}
	if err := x.db.QueryRow(t.Context(), "SELECT cost::text FROM loom.spans WHERE span_id = $1", spanID(2).String()).Scan(&cost); err != nil || cost != nil {
		t.Errorf("server span cost = %v (err %v), want NULL", cost, err)
	}

	compare(t, "content", row(t, x.db, "SELECT * FROM loom.span_content WHERE span_id = $1", spanID(1).String()), map[string]any{
		"trace_id": traceID(1).String(), "start_time": start, "tenant_id": "acme",
		"input_messages":  []any{map[string]any{"role": "user", "parts": []any{map[string]any{"type": "text", "content": "hi"}}}},
		"output_messages": "not JSON",
	})
	if n := count(t, x.db, "SELECT count(*) FROM loom.span_content"); n != 1 {
		t.Errorf("%d content rows, want 1 (the server span has no content)", n)
	}

	compare(t, "event 0", row(t, x.db, "SELECT * FROM loom.span_events WHERE seq = 0"), map[string]any{
		"trace_id": traceID(1).String(), "span_id": spanID(1).String(), "span_start_time": start, "tenant_id": "acme",
		"time": start.Add(250 * time.Millisecond), "name": "gen_ai.first_chunk", "attributes": map[string]any{"n": 1.0},
	})
	compare(t, "event 1", row(t, x.db, "SELECT * FROM loom.span_events WHERE seq = 1"), map[string]any{
		"name": "exception", "attributes": map[string]any{},
	})
	if got := x.counter(t, "loom_exporter_spans_inserted"); got != 2 {
		t.Errorf("inserted counter = %d, want 2", got)
	}
}

// At-least-once delivery upstream means the same batch can arrive again;
// it must add nothing.
func TestPush_SameBatchTwice_AddsNothing(t *testing.T) {
	t.Parallel()
	x := startExporter(t, nil)
	td := callTraces(time.Now().Add(-time.Minute))
	for range 2 {
		if err := x.push(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	for table, want := range map[string]int{"spans": 2, "span_events": 2, "span_content": 1, "dead_letters": 0} {
		if n := count(t, x.db, "SELECT count(*) FROM loom."+table); n != want {
			t.Errorf("loom.%s has %d rows, want %d", table, n, want)
		}
	}
	if got := x.counter(t, "loom_exporter_spans_duplicates"); got != 2 {
		t.Errorf("duplicates counter = %d, want 2", got)
	}
}

// A SERVER span carries no gen_ai.* (GenAI backends would count the call
// twice): its public model and stream flag come as loom.request.model and
// loom.request.stream and fill the same columns as a CLIENT span's, so a
// dashboard filtering on request_model or "not stream" sees both rows. A
// unary call's SERVER row says stream = false, never NULL, even from a
// proxy that only ever said gen_ai.request.stream = true.
func TestPush_ServerSpan_LoomRequestAttributesFillModelAndStream(t *testing.T) {
	t.Parallel()
	x := startExporter(t, nil)
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	td, spans := newTraces()
	server := func(id byte) pcommon.Map {
		s := addSpan(spans, id, start)
		s.SetKind(ptrace.SpanKindServer)
		s.Attributes().PutInt(spanattr.Seq, int64(id))
		return s.Attributes()
	}
	a := server(1)
	a.PutStr(spanattr.RequestModel, "gpt-4o-mini")
	a.PutBool(spanattr.RequestStream, false)
	server(2).PutStr(spanattr.GenAIRequestModel, "legacy") // an older proxy: no stream attribute when unary
	a = server(3)
	a.PutStr(spanattr.RequestModel, "first")
	a.PutStr(spanattr.GenAIRequestModel, "second")
	if err := x.push(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	compare(t, "server span", row(t, x.db, "SELECT * FROM loom.spans WHERE span_id = $1", spanID(1).String()), map[string]any{
		"kind": "server", "request_model": "gpt-4o-mini", "stream": false, "attributes": map[string]any{},
	})
	compare(t, "legacy server span", row(t, x.db, "SELECT * FROM loom.spans WHERE span_id = $1", spanID(2).String()), map[string]any{
		"request_model": "legacy", "stream": false,
	})
	compare(t, "both names", row(t, x.db, "SELECT * FROM loom.spans WHERE span_id = $1", spanID(3).String()), map[string]any{
		"request_model": "first", "attributes": map[string]any{spanattr.GenAIRequestModel: "second"},
	})
	if n := count(t, x.db, "SELECT count(*) FROM loom.spans WHERE NOT stream"); n != 3 {
		t.Errorf("%d rows WHERE NOT stream, want 3", n)
	}
}
