package tracing

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

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

func testConfig() config.Tracing {
	c := config.DefaultTracing
	c.BatchTimeout = 5 * time.Millisecond
	c.ExportTimeout = 2 * time.Second
	c.RetryMaxElapsed = time.Second
	c.InstanceID = "inst-1"
	return c
}

func newTestTracer(t *testing.T, exp sdktrace.SpanExporter, cfg config.Tracing, log *slog.Logger) *Tracer {
	t.Helper()
	tr, err := New(context.Background(), cfg, Options{ServiceVersion: "test", Exporter: exp, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// memory keeps its spans after Shutdown (the SDK's in-memory exporter
// forgets them), so tests can read what a shut-down tracer exported.
type memory struct{ *tracetest.InMemoryExporter }

func (memory) Shutdown(context.Context) error { return nil }

func newMemory() memory { return memory{tracetest.NewInMemoryExporter()} }

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }

// streamedChat is a finished streaming call as the server would record it.
func streamedChat() *call.Record {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return &call.Record{
		Operation: call.OpChat, TenantID: "acme", KeyID: "acme-key-1", Model: "gpt-4o-mini",
		Deployment: "mock-openai", Provider: "openai", UpstreamModel: "gpt-4o-mini-2024-07-18",
		ServerAddress: "127.0.0.1", ServerPort: 8090, Stream: true, UsageRequested: true,
		Params:     call.Params{Temperature: f64(0.5), TopP: f64(0.9), MaxTokens: i64(100), N: i64(2), Seed: i64(7), RequestBodyBytes: 321},
		HTTPMethod: "POST", HTTPRoute: "/v1/chat/completions", Status: 200, UpstreamStatus: 200,
		ResponseID: []byte("chatcmpl-1"), ResponseModel: []byte("gpt-4o-mini-2024-07-18"),
		FinishReasons: []string{"stop", "length"},
		Usage:         call.Usage{InputTokens: 11, OutputTokens: 22, TotalTokens: 33, CachedInputTokens: 4, HasCached: true},
		UsageSource:   call.UsageProvider, Chunks: 9, ChunksSent: 8, UpstreamBytes: 900, ClientBytes: 800,
		Start: t0, UpstreamStart: t0.Add(time.Millisecond), UpstreamHeader: t0.Add(5 * time.Millisecond),
		FirstChunk: t0.Add(51 * time.Millisecond), UpstreamEnd: t0.Add(200 * time.Millisecond), End: t0.Add(201 * time.Millisecond),
		Overhead: 300 * time.Microsecond, Outcome: call.OutcomeOK,
	}
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func spansByKind(t *testing.T, spans tracetest.SpanStubs) (server, client tracetest.SpanStub) {
	t.Helper()
	for _, s := range spans {
		switch s.SpanKind {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			client = s
		}
	}
	return server, client
}

func TestRecord_StreamedChat_ServerAndClientSpansFollowGenAIConventions(t *testing.T) {
	exp := newMemory()
	tr := newTestTracer(t, exp, testConfig(), nil)
	r := streamedChat()
	tr.Record(r)
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("want 2 spans, got %d", len(spans))
	}
	server, client := spansByKind(t, spans)
	if server.Name != "POST /v1/chat/completions" || client.Name != "chat gpt-4o-mini-2024-07-18" {
		t.Fatalf("names: %q, %q", server.Name, client.Name)
	}
	if client.Parent.SpanID() != server.SpanContext.SpanID() || client.SpanContext.TraceID() != server.SpanContext.TraceID() {
		t.Fatal("CLIENT span is not the SERVER span's child")
	}
	if !server.StartTime.Equal(r.Start) || !server.EndTime.Equal(r.End) ||
		!client.StartTime.Equal(r.UpstreamStart) || !client.EndTime.Equal(r.UpstreamEnd) {
		t.Fatal("span times are not the call's")
	}
	c := attrs(client)
	want := map[string]any{
		sa.GenAIOperationName: "chat", sa.GenAIProviderName: "openai", sa.GenAIRequestModel: "gpt-4o-mini-2024-07-18",
		sa.GenAIRequestTemperature: 0.5, sa.GenAIRequestTopP: 0.9, sa.GenAIRequestMaxTokens: int64(100),
		sa.GenAIRequestChoiceCount: int64(2), sa.GenAIRequestSeed: int64(7), sa.GenAIRequestStream: true,
		sa.GenAIResponseModel: "gpt-4o-mini-2024-07-18", sa.GenAIResponseID: "chatcmpl-1",
		sa.GenAIUsageInputTokens: int64(11), sa.GenAIUsageOutputTokens: int64(22), sa.UsageTotalTokens: int64(33),
		sa.GenAIUsageCacheReadInputTokens: int64(4), sa.GenAIResponseTimeToFirstChunk: 0.05,
		sa.ServerAddress: "127.0.0.1", sa.ServerPort: int64(8090), sa.HTTPResponseStatusCode: int64(200),
		sa.TenantID: "acme", sa.APIKeyID: "acme-key-1", sa.InstanceID: "inst-1", sa.Seq: int64(1),
		sa.UsageSource: "provider", sa.Chunks: int64(9), sa.ChunksSent: int64(8), sa.UpstreamAttempt: int64(1),
		sa.Deployment: "mock-openai", sa.Outcome: "ok", sa.GatewayOverhead: 0.0003, sa.UsageInjected: true,
	}
	for k, v := range want {
		if got, ok := c[attribute.Key(k)]; !ok || got.AsInterface() != v {
			t.Errorf("CLIENT %s = %v, want %v", k, got.AsInterface(), v)
		}
	}
	if got := c[sa.GenAIResponseFinishReasons].AsStringSlice(); strings.Join(got, ",") != "stop,length" {
		t.Errorf("finish reasons %v", got)
	}
	if _, ok := c[sa.GenAIUsageReasoningOutputTokens]; ok {
		t.Error("reasoning tokens recorded though the provider did not report them")
	}
	s := attrs(server)
	for k, v := range map[string]any{
		sa.HTTPRequestMethod: "POST", sa.HTTPRoute: "/v1/chat/completions", sa.HTTPResponseStatusCode: int64(200),
		sa.HTTPRequestBodySize: int64(321), sa.RequestModel: "gpt-4o-mini", sa.RequestStream: true,
		sa.TenantID: "acme", sa.Seq: int64(1),
	} {
		if got := s[attribute.Key(k)]; got.AsInterface() != v {
			t.Errorf("SERVER %s = %v, want %v", k, got.AsInterface(), v)
		}
	}
	// GenAI-aware backends count each span with gen_ai.* as a GenAI
	// operation: the SERVER span must carry none, or every call counts twice.
	for k := range s {
		if strings.HasPrefix(string(k), "gen_ai.") {
			t.Errorf("SERVER span carries %s", k)
		}
	}
	if server.Status.Code != codes.Unset || client.Status.Code != codes.Unset {
		t.Error("a good call has an error status")
	}
	res := map[attribute.Key]string{}
	for _, kv := range server.Resource.Attributes() {
		res[kv.Key] = kv.Value.String()
	}
	if res[sa.ServiceName] != "loom" || res[sa.ServiceVersion] != "test" || res[sa.ServiceInstanceID] != "inst-1" {
		t.Errorf("resource %v", res)
	}
}

func TestRecord_RejectedCall_OnlyServerSpan(t *testing.T) {
	exp := newMemory()
	tr := newTestTracer(t, exp, testConfig(), nil)
	now := time.Now()
	tr.Record(&call.Record{Operation: call.OpChat, HTTPMethod: "POST", HTTPRoute: "/v1/chat/completions",
		Status: 401, Outcome: call.OutcomeRejected, ErrorType: "invalid_api_key", Start: now, End: now})
	_ = tr.Shutdown(context.Background())
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].SpanKind != trace.SpanKindServer {
		t.Fatalf("want one SERVER span, got %d", len(spans))
	}
	a := attrs(spans[0])
	if a[sa.ErrorType].AsString() != "invalid_api_key" || a[sa.Seq].AsInt64() != 1 {
		t.Fatalf("attrs %v", a)
	}
	if spans[0].Status.Code != codes.Unset {
		t.Fatal("a 4xx is not a server error")
	}
}

func TestRecord_UpstreamFailure_MarksBothSpansError(t *testing.T) {
	exp := newMemory()
	tr := newTestTracer(t, exp, testConfig(), nil)
	r := streamedChat()
	r.Status, r.Outcome, r.ErrorType, r.ErrorMessage = 200, call.OutcomeUpstreamFailed, "upstream_reset", "connection reset"
	tr.Record(r)
	_ = tr.Shutdown(context.Background())
	server, client := spansByKind(t, exp.GetSpans())
	if server.Status.Code != codes.Error || client.Status.Code != codes.Error || client.Status.Description != "connection reset" {
		t.Fatalf("statuses %v %v", server.Status, client.Status)
	}
	if attrs(client)[sa.ErrorType].AsString() != "upstream_reset" {
		t.Fatal("error.type missing")
	}
}

// A caller that sends sampled=0 still gets its call recorded, in its trace.
func TestRecord_TraceparentHonouredButNeverUnsampled(t *testing.T) {
	exp := newMemory()
	tr := newTestTracer(t, exp, testConfig(), nil)
	r := streamedChat()
	r.TraceParent = []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	tr.Record(r)
	_ = tr.Shutdown(context.Background())
	server, client := spansByKind(t, exp.GetSpans())
	if server.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		server.Parent.SpanID().String() != "00f067aa0ba902b7" || !server.Parent.IsRemote() {
		t.Fatalf("caller's trace not joined: %v parent %v", server.SpanContext.TraceID(), server.Parent.SpanID())
	}
	if !server.SpanContext.IsSampled() || client.SpanContext.TraceID() != server.SpanContext.TraceID() {
		t.Fatal("span not sampled or client in another trace")
	}
}

func TestRecord_SeqHasNoGapsUnderConcurrency(t *testing.T) {
	exp := newMemory()
	tr := newTestTracer(t, exp, testConfig(), nil)
	const workers, each = 8, 250
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				r := streamedChat()
				tr.Record(r)
			}
		})
	}
	wg.Wait()
	_ = tr.Shutdown(context.Background())
	seen := make([]int, workers*each+1)
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindServer {
			seen[attrs(s)[sa.Seq].AsInt64()]++
		}
	}
	for seq := 1; seq < len(seen); seq++ {
		if seen[seq] != 1 {
			t.Fatalf("loom.seq %d appears %d times", seq, seen[seq])
		}
	}
}

// flaky fails its first n exports, then delegates.
type flaky struct {
	memory
	fail atomic.Int64
}

func (f *flaky) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if f.fail.Add(-1) >= 0 {
		return errors.New("collector unavailable")
	}
	return f.memory.ExportSpans(ctx, spans)
}

// A batch the collector refuses is retried, not dropped.
func TestQueue_FailedExportIsRetriedNotDropped(t *testing.T) {
	exp := &flaky{memory: newMemory()}
	exp.fail.Store(2)
	var logs bytes.Buffer
	tr := newTestTracer(t, exp, testConfig(), slog.New(slog.NewTextHandler(&logs, nil)))
	for range 10 {
		tr.Record(streamedChat())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	if len(exp.GetSpans()) != 20 || st.Exported != 20 || st.Dropped != 0 || st.ExportFails != 2 {
		t.Fatalf("exported %d, stats %+v", len(exp.GetSpans()), st)
	}
	if !strings.Contains(logs.String(), "span export failed") {
		t.Fatalf("failure not logged:\n%s", logs.String())
	}
}

// blocked never answers until released.
type blocked struct {
	memory
	release chan struct{}
}

func (b *blocked) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-b.release:
		return b.memory.ExportSpans(ctx, spans)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// With the collector away, a full queue drops, shutdown gives up at its
// deadline, and every lost span is counted and logged.
func TestQueue_EveryDropIsCountedAndLogged(t *testing.T) {
	exp := &blocked{memory: newMemory(), release: make(chan struct{})}
	cfg := testConfig()
	cfg.QueueSize, cfg.BatchSize = 8, 4
	var logs bytes.Buffer
	tr := newTestTracer(t, exp, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	for range 20 {
		tr.Record(streamedChat())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	st := tr.Stats()
	if st.Ended != 40 || st.Exported != 0 || st.Dropped != 40 || st.QueueFull == 0 || st.AtShutdown == 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, want := range []string{"span queue full", "tracing stopped", "spans_dropped=40", "calls=20"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	m := string(tr.AppendMetrics(nil))
	for _, want := range []string{"loom_spans_ended_total 40", `loom_spans_dropped_total{reason="queue_full"} `, "loom_calls_total 20"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
}

func TestFlush_ExportsEverythingEnded(t *testing.T) {
	exp := newMemory()
	cfg := testConfig()
	cfg.BatchTimeout = time.Hour
	tr := newTestTracer(t, exp, cfg, nil)
	defer tr.Shutdown(context.Background())
	for range 3 {
		tr.Record(streamedChat())
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 6 {
		t.Fatalf("flushed %d spans, want 6", n)
	}
}

func TestHTTPTracesURL_DefaultsThePath(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":              "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":             "http://127.0.0.1:4318/v1/traces",
		"https://otel.example.com/v1/traces": "https://otel.example.com/v1/traces",
		"https://otel.example.com/custom":    "https://otel.example.com/custom",
	} {
		if got := httpTracesURL(in); got != want {
			t.Errorf("httpTracesURL(%q) = %q, want %q", in, got, want)
		}
	}
}
