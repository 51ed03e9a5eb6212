package tracing

import (
	"bytes"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/loom-gateway/loom/proxy/call"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// failedOver is streamedChat served by its third attempt: the first
// deployment answered 503, the second (a fallback model's) reset.
func failedOver() *call.Record {
	r := streamedChat()
	t0 := r.Start
	r.Attempts = []call.Attempt{
		{Deployment: "east", Provider: "openai", UpstreamModel: "gpt-4o-mini", ServerAddress: "east.example",
			ServerPort: 443, Start: t0.Add(100 * time.Microsecond), End: t0.Add(300 * time.Microsecond),
			Status: 503, ErrorType: "503", Reason: "upstream answered 503"},
		{FallbackModel: "backup", Deployment: "west", Provider: "azure.ai.openai", UpstreamModel: "gpt-4o",
			ServerAddress: "west.example", ServerPort: 443, Start: t0.Add(400 * time.Microsecond),
			End: t0.Add(900 * time.Microsecond), ErrorType: "upstream_reset", Reason: "upstream closed the connection: EOF from 10.1.2.3:443"},
	}
	r.FallbackModel = "backup"
	return r
}

// Each attempt is its own CLIENT span under the call's SERVER span, in
// order and numbered from 1: the failed ones with error.type and their
// reason (addresses scrubbed) and no usage, the serving one with the usage.
func TestEncode_MultiAttempt_OneClientSpanPerAttempt(t *testing.T) {
	r := failedOver()
	rs := decodeOne(t, newEncoder("v", "inst-1").appendCall(nil, r, callIDs{Seq: 7, Run: "run-1"}))
	spans := rs.ScopeSpans[0].Spans
	if len(spans) != 4 || len(spans) != spanCount(r) {
		t.Fatalf("%d spans, want 4 (SERVER + 3 attempts)", len(spans))
	}
	server := spans[0]
	if server.Kind != tracepb.Span_SPAN_KIND_SERVER || otlpAttrs(server)[sa.UpstreamAttempts].GetIntValue() != 3 {
		t.Fatalf("SERVER span: kind %v, %s = %v", server.Kind, sa.UpstreamAttempts, otlpAttrs(server)[sa.UpstreamAttempts])
	}
	for i, s := range spans[1:] {
		a := otlpAttrs(s)
		if s.Kind != tracepb.Span_SPAN_KIND_CLIENT || !bytes.Equal(s.ParentSpanId, server.SpanId) ||
			!bytes.Equal(s.TraceId, server.TraceId) {
			t.Fatalf("attempt %d: kind %v, not a child of the SERVER span in its trace", i+1, s.Kind)
		}
		if got := a[sa.UpstreamAttempt].GetIntValue(); got != int64(i+1) {
			t.Errorf("span %d: %s = %d", i+1, sa.UpstreamAttempt, got)
		}
		if a[sa.Seq].GetIntValue() != 7 || a[sa.TenantID].GetStringValue() != "acme" {
			t.Errorf("attempt %d lacks the call's numbering or tenant", i+1)
		}
		_, hasUsage := a[sa.GenAIUsageInputTokens]
		if i < 2 {
			if hasUsage || s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || a[sa.ErrorType] == nil ||
				a[sa.UpstreamFailureReason] == nil {
				t.Errorf("failed attempt %d: usage %v, status %v, attrs %v", i+1, hasUsage, s.Status, keys(s.Attributes))
			}
		} else if !hasUsage || a[sa.ErrorType] != nil || a[sa.UpstreamFailureReason] != nil {
			t.Errorf("serving attempt: usage %v, attrs %v", hasUsage, keys(s.Attributes))
		}
	}
	first, second, served := otlpAttrs(spans[1]), otlpAttrs(spans[2]), otlpAttrs(spans[3])
	if first[sa.Deployment].GetStringValue() != "east" || first[sa.HTTPResponseStatusCode].GetIntValue() != 503 ||
		first[sa.ErrorType].GetStringValue() != "503" || spans[1].Name != "chat gpt-4o-mini" {
		t.Errorf("first attempt: %s %v", spans[1].Name, keys(spans[1].Attributes))
	}
	if _, ok := first[sa.UpstreamFallbackModel]; ok {
		t.Error("the model's own deployment is marked as a fallback")
	}
	if second[sa.UpstreamFallbackModel].GetStringValue() != "backup" || second[sa.GenAIProviderName].GetStringValue() != "azure.ai.openai" ||
		second[sa.UpstreamFailureReason].GetStringValue() != "upstream closed the connection: EOF from <addr>" {
		t.Errorf("second attempt: %v", second)
	}
	if served[sa.Deployment].GetStringValue() != "mock-openai" || served[sa.UpstreamFallbackModel].GetStringValue() != "backup" {
		t.Errorf("serving attempt: %v", keys(spans[3].Attributes))
	}
	if spans[1].StartTimeUnixNano != uint64(r.Attempts[0].Start.UnixNano()) || spans[2].EndTimeUnixNano != uint64(r.Attempts[1].End.UnixNano()) {
		t.Error("attempt spans do not keep their attempts' times")
	}
}

// A call whose every attempt failed: the last is the record's own and
// carries the error the client saw; the others are failed attempts.
func TestEncode_AllAttemptsFailed_LastCarriesTheCallsError(t *testing.T) {
	r := failedOver()
	r.Usage, r.UsageSource = call.Usage{}, call.UsageNone
	r.Outcome, r.ErrorType, r.UpstreamStatus, r.Status = call.OutcomeUpstreamError, "500", 500, 500
	rs := decodeOne(t, newEncoder("v", "i").appendCall(nil, r, callIDs{Seq: 1}))
	for _, s := range rs.ScopeSpans[0].Spans[1:] {
		if s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || otlpAttrs(s)[sa.ErrorType] == nil {
			t.Errorf("attempt %d: status %v", otlpAttrs(s)[sa.UpstreamAttempt].GetIntValue(), s.Status)
		}
	}
}

// Failed attempts cost no allocation either (their reasons carry no
// address to scrub).
func TestEncode_MultiAttempt_AllocationBudget(t *testing.T) {
	e := newEncoder("v1.0.0", "inst-1")
	r := failedOver()
	r.Attempts[1].Reason = "upstream closed the connection"
	buf := make([]byte, 0, 8192)
	if n := testing.AllocsPerRun(200, func() { buf = e.appendCall(buf[:0], r, callIDs{Seq: 1, Run: "r"}) }); n > 0 {
		t.Fatalf("appendCall with 3 attempts allocates %.0f times, budget 0", n)
	}
}

// A record reset for the next call forgets its attempts but keeps their
// storage.
func TestRecord_Reset_KeepsAttemptStorage(t *testing.T) {
	r := failedOver()
	r.Reset()
	if len(r.Attempts) != 0 || cap(r.Attempts) < 2 || r.FallbackModel != "" {
		t.Fatalf("after Reset: %d attempts (cap %d), fallback %q", len(r.Attempts), cap(r.Attempts), r.FallbackModel)
	}
	for range call.MaxAttempts + 3 {
		r.AddAttempt(call.Attempt{Deployment: "d"})
	}
	if len(r.Attempts) != call.MaxAttempts {
		t.Fatalf("%d attempts kept, bound %d", len(r.Attempts), call.MaxAttempts)
	}
}
