package tracing

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
	"github.com/loom-gateway/loom/proxy/tracing/tracingtest"
)

func testConfig() config.Tracing {
	c := config.DefaultTracing
	c.ExportTimeout = 2 * time.Second
	c.InstanceID = "inst-1"
	c.Spool.CommitInterval = time.Millisecond
	return c
}

// sendFunc is a test's collector: what Options.Send takes.
type sendFunc = func(ctx context.Context, req []byte) (int64, error)

// newTestTracer starts a tracer on a spool of its own (unless cfg names
// one) shipping to send.
func newTestTracer(t *testing.T, send sendFunc, cfg config.Tracing, log *slog.Logger) *Tracer {
	t.Helper()
	if cfg.Spool.Dir == "" {
		cfg.Spool.Dir = t.TempDir()
	}
	tr, err := New(context.Background(), cfg, Options{ServiceVersion: "test", Send: send, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// memory keeps what it was sent, decoded with the official OTLP types.
type memory struct{ *tracingtest.Collector }

func newMemory() memory { return memory{&tracingtest.Collector{}} }

func (m memory) markers() tracetest.SpanStubs { return m.Markers() }

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
	tr := newTestTracer(t, exp.Send, testConfig(), nil)
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
	tr := newTestTracer(t, exp.Send, testConfig(), nil)
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
	tr := newTestTracer(t, exp.Send, testConfig(), nil)
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
	tr := newTestTracer(t, exp.Send, testConfig(), nil)
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
	tr := newTestTracer(t, exp.Send, testConfig(), nil)
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

func (f *flaky) Send(ctx context.Context, req []byte) (int64, error) {
	if f.fail.Add(-1) >= 0 {
		return 0, errUnavailable
	}
	return f.memory.Send(ctx, req)
}

// A batch that fails to export is retried, not dropped.
func TestShip_FailedExportIsRetriedNotDropped(t *testing.T) {
	exp := &flaky{memory: newMemory()}
	exp.fail.Store(2)
	var logs bytes.Buffer
	tr := newTestTracer(t, exp.Send, testConfig(), slog.New(slog.NewTextHandler(&logs, nil)))
	for range 10 {
		tr.Record(streamedChat())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	// 10 calls and the run's two markers.
	if len(exp.GetSpans()) != 20 || st.Shipped != 12 || st.Dropped != 0 || st.ExportFails != 2 {
		t.Fatalf("exported %d, stats %+v", len(exp.GetSpans()), st)
	}
	if !strings.Contains(logs.String(), "export failed") {
		t.Fatalf("failure not logged:\n%s", logs.String())
	}
}

// blocked never answers until released.
type blocked struct {
	memory
	release chan struct{}
}

func (b *blocked) Send(ctx context.Context, req []byte) (int64, error) {
	select {
	case <-b.release:
		return b.memory.Send(ctx, req)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// With the collector away, a stop loses nothing: the calls stay in the
// spool, and the next start of the same spool ships them first, under the
// same instance id, the old run's stop marker with them.
func TestShutdown_CollectorAway_NothingDroppedNextStartShipsIt(t *testing.T) {
	exp := &blocked{memory: newMemory(), release: make(chan struct{})}
	cfg := testConfig()
	cfg.InstanceID = ""
	cfg.Spool.Dir = t.TempDir()
	var logs bytes.Buffer
	tr := newTestTracer(t, exp.Send, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	for range 20 {
		tr.Record(streamedChat())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with the collector away: %v (nothing is lost: the spool keeps it)", err)
	}
	if st := tr.Stats(); st.Calls != 20 || st.Shipped != 0 || st.Dropped != 0 || st.Spool.DiskBytes == 0 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(logs.String(), "tracing stopped") {
		t.Errorf("log:\n%s", logs.String())
	}

	next := newMemory()
	tr2 := newTestTracer(t, next.Send, cfg, nil)
	flushWithin(t, tr2, 10*time.Second)
	if tr2.InstanceID() != tr.InstanceID() || tr2.RunID() == tr.RunID() {
		t.Errorf("instance %s then %s, run %s then %s: want one instance, two runs", tr.InstanceID(), tr2.InstanceID(), tr.RunID(), tr2.RunID())
	}
	seqs := map[int64]bool{}
	for _, s := range next.GetSpans() {
		a := attrs(s)
		if s.SpanKind == trace.SpanKindServer && a[sa.RunID].AsString() == tr.RunID() {
			seqs[a[sa.Seq].AsInt64()] = true
		}
	}
	if len(seqs) != 20 || !seqs[1] || !seqs[20] {
		t.Fatalf("the next start shipped %d of the first run's 20 calls", len(seqs))
	}
	events := map[string]string{}
	for _, m := range next.markers() {
		a := attrs(m)
		events[a[sa.RunID].AsString()+"/"+a[sa.RunEvent].AsString()] = a[sa.RunLastSeq].String()
	}
	if !has(events, tr.RunID()+"/start") || events[tr.RunID()+"/stop"] != "20" || !has(events, tr2.RunID()+"/start") {
		t.Fatalf("markers %v", events)
	}
	_ = tr2.Shutdown(context.Background())
}

func has(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// A full spool drops calls and counts each one; the calls it kept ship.
func TestSpool_Full_DropsCountedAsSpoolFull(t *testing.T) {
	exp := &blocked{memory: newMemory(), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Spool.MaxBytes = 16 << 10
	var logs bytes.Buffer
	tr := newTestTracer(t, exp.Send, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	for range 100 {
		tr.Record(streamedChat())
	}
	st := tr.Stats()
	if st.SpoolFull == 0 || st.SpoolFull >= 100 || st.Dropped != st.SpoolFull {
		t.Fatalf("byte bound not applied: %+v", st)
	}
	close(exp.release)
	flushWithin(t, tr, 10*time.Second)
	if got := uint64(len(exp.GetSpans())) / 2; got+st.SpoolFull != 100 {
		t.Fatalf("shipped %d calls and dropped %d, of 100", got, st.SpoolFull)
	}
	m := string(tr.AppendMetrics(nil))
	if !strings.Contains(m, `loom_calls_dropped_total{reason="spool_full"} `+strconv.FormatUint(st.SpoolFull, 10)) {
		t.Errorf("metrics:\n%s", m)
	}
	if !strings.Contains(logs.String(), "spool full") {
		t.Errorf("log:\n%s", logs.String())
	}
	_ = tr.Shutdown(context.Background())
}

// With when_full: refuse, the tracer says so before a call starts, and
// again takes calls once the collector has caught up.
func TestAdmit_RefusePolicy_SaysNoWhileTheSpoolIsFull(t *testing.T) {
	exp := &blocked{memory: newMemory(), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Spool.MaxBytes = 256 << 10
	cfg.Spool.WhenFull = config.SpoolRefuse
	tr := newTestTracer(t, exp.Send, cfg, nil)
	defer tr.Shutdown(context.Background())
	if !tr.Admit() {
		t.Fatal("an empty spool refuses")
	}
	for tr.Admit() {
		tr.Record(streamedChat())
		if tr.Calls() > 10000 {
			t.Fatal("never full")
		}
	}
	if st := tr.Stats(); st.SpoolFull != 0 {
		t.Fatalf("calls were admitted and then dropped: %+v", st)
	}
	close(exp.release)
	flushWithin(t, tr, 10*time.Second)
	if !tr.Admit() {
		t.Fatal("still refusing after the collector caught up")
	}
}

// The drop policy never refuses.
func TestAdmit_DropPolicy_AlwaysAdmits(t *testing.T) {
	exp := &blocked{memory: newMemory(), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Spool.MaxBytes = 16 << 10
	tr := newTestTracer(t, exp.Send, cfg, nil)
	for range 100 {
		tr.Record(streamedChat())
	}
	if !tr.Admit() {
		t.Fatal("drop policy refused a call")
	}
	close(exp.release)
	_ = tr.Shutdown(context.Background())
}

func TestFlush_ExportsEverythingEnded(t *testing.T) {
	exp := newMemory()
	cfg := testConfig()
	cfg.Spool.CommitInterval = time.Second
	tr := newTestTracer(t, exp.Send, cfg, nil)
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
