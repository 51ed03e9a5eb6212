package tracing

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/loom-gateway/loom/proxy/call"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// equivalenceRecords are the calls the encoder is checked on against the
// SDK path: every shape of call, and hostile input in every string.
func equivalenceRecords() []struct {
	name string
	rec  *call.Record
} {
	type tc = struct {
		name string
		rec  *call.Record
	}
	mod := func(f func(r *call.Record)) *call.Record { r := streamedChat(); f(r); return r }
	huge := strings.Repeat("é", 3000) + "\xff"
	return []tc{
		{"streamed-chat", streamedChat()},
		{"unary-chat", mod(func(r *call.Record) {
			r.Stream, r.UsageRequested, r.Chunks, r.ChunksSent, r.FirstChunk = false, false, 0, 0, time.Time{}
			r.FinishReasons = []string{"stop"}
			r.Params = call.Params{RequestBodyBytes: 80}
		})},
		{"streamed-chat-usage-cached-reasoning", mod(func(r *call.Record) {
			r.Usage = call.Usage{InputTokens: 100, OutputTokens: 50, TotalTokens: 150, CachedInputTokens: 64, HasCached: true,
				ReasoningTokens: 30, HasReasoning: true, CacheCreationInputTokens: 12, HasCacheCreation: true}
			r.UsageSource = call.UsageEstimated
		})},
		{"priced-call", mod(func(r *call.Record) {
			r.Cost, r.CostCurrency, r.PriceID = 123_450_000, "USD", "gpt-4o-mini:2025-01-01T00:00:00Z"
		})},
		{"price-without-usage-is-no-cost", mod(func(r *call.Record) {
			r.UsageSource, r.Cost, r.CostCurrency, r.PriceID = call.UsageNone, 5, "USD", "p"
		})},
		{"responses-api-chat", mod(func(r *call.Record) {
			r.HTTPRoute = "/v1/responses"
		})},
		{"anthropic-deployment-chat", mod(func(r *call.Record) {
			r.Provider = "anthropic"
		})},
		{"embeddings-encoding-format", mod(func(r *call.Record) {
			r.Operation, r.HTTPRoute, r.Stream, r.UsageRequested = call.OpEmbeddings, "/v1/embeddings", false, false
			r.UpstreamModel, r.Model, r.FinishReasons, r.ResponseID = "text-embedding-3-small", "embed", nil, nil
			r.Params = call.Params{EncodingFormat: "base64", RequestBodyBytes: 40}
			r.Usage = call.Usage{InputTokens: 8, TotalTokens: 8}
		})},
		{"upstream-4xx", mod(func(r *call.Record) {
			r.Outcome, r.Status, r.UpstreamStatus, r.ErrorType = call.OutcomeUpstreamError, 429, 429, "rate_limit_exceeded"
			r.ErrorMessage, r.UsageSource, r.FinishReasons = "Rate limit reached", call.UsageNone, nil
		})},
		{"upstream-5xx-address-in-message", mod(func(r *call.Record) {
			r.Outcome, r.Status, r.UpstreamStatus, r.ErrorType = call.OutcomeUpstreamError, 502, 503, "503"
			r.ErrorMessage = "upstream 10.1.2.3:8443 said: overloaded"
		})},
		{"upstream-failed-no-end", mod(func(r *call.Record) {
			r.Outcome, r.Status, r.UpstreamStatus, r.ErrorType = call.OutcomeUpstreamFailed, 502, 0, "upstream_reset"
			r.ErrorMessage, r.UpstreamEnd, r.ResponseID, r.ResponseModel = "read tcp [::1]:5000->[::1]:443: connection reset", time.Time{}, nil, nil
		})},
		{"client-gone-drained", mod(func(r *call.Record) {
			r.Outcome, r.ErrorType, r.ErrorMessage = call.OutcomeClientGone, "client_disconnected", "write tcp 127.0.0.1:1->127.0.0.1:2: broken pipe"
			r.ClientDisconnected, r.Drained, r.DrainComplete = true, true, true
		})},
		{"drain-incomplete", mod(func(r *call.Record) {
			r.Outcome, r.ClientDisconnected, r.Drained, r.DrainComplete = call.OutcomeClientGone, true, true, false
		})},
		{"rejected-before-upstream", &call.Record{
			Operation: call.OpChat, HTTPMethod: "POST", HTTPRoute: "/v1/chat/completions", Status: 401,
			Outcome: call.OutcomeRejected, ErrorType: "invalid_api_key", ErrorMessage: "no key",
			Start: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 25, 12, 0, 0, 500, time.UTC),
			Overhead: 500,
		}},
		{"rate-limited-5xx-no-route", &call.Record{
			HTTPMethod: "GET", Status: 503, Outcome: call.OutcomeRateLimited, TenantID: "t", KeyID: "k",
			Start: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 25, 12, 0, 1, 0, time.UTC),
		}},
		{"traceparent-unsampled", mod(func(r *call.Record) {
			r.TraceParent = []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
		})},
		{"traceparent-random-flag", mod(func(r *call.Record) {
			r.TraceParent = []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03")
		})},
		{"traceparent-invalid", mod(func(r *call.Record) { r.TraceParent = []byte("00-zz-00f067aa0ba902b7-01") })},
		{"traceparent-rejected-call", &call.Record{
			HTTPMethod: "POST", HTTPRoute: "/v1/completions", Status: 400, Outcome: call.OutcomeRejected,
			TraceParent: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
			Start:       time.Unix(1, 0), End: time.Unix(2, 0),
		}},
		{"content-unary", mod(func(r *call.Record) {
			r.Stream = false
			r.Content = call.Content{Capture: true, Max: 1 << 10,
				Request:  []byte(`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url"}]},{"role":"assistant","tool_calls":[{"id":"c1","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"42"}]}`),
				Response: []byte(`{"choices":[{"message":{"content":"hello"},"finish_reason":"stop"}]}`)}
		})},
		{"content-streamed-truncated", mod(func(r *call.Record) {
			r.Content = call.Content{Capture: true, Max: 8, Truncated: true,
				Request: []byte(`{"prompt":["a long prompt"]}`), Choices: [][]byte{[]byte("one two three"), []byte("x\xff")}}
		})},
		{"hostile-strings", mod(func(r *call.Record) {
			r.HTTPMethod, r.HTTPRoute = "PO\xffST", "/v1/"+huge
			r.Model, r.UpstreamModel, r.TenantID, r.KeyID = huge, "m\xc3", "t\xff", huge
			r.Provider, r.Deployment, r.ServerAddress = "\x00\xfe", huge, "h\xed\xa0\x80"
			r.Operation, r.Outcome, r.ErrorType = call.Operation("op\xff"), call.OutcomeUpstreamError, "e\xff"
			r.ErrorMessage, r.UpstreamStatus = strings.Repeat("10.0.0.1:1 \xff", 200), 500
			r.ResponseID, r.ResponseModel = []byte(huge), []byte{0xed, 0xa0, 0x80}
			r.FinishReasons = append([]string{"\xff", huge}, make([]string, 300)...)
			r.Params.EncodingFormat = "f\xff" + huge
			r.UsageSource = call.UsageSource("s\xff")
			r.Cost, r.CostCurrency, r.PriceID = -1, "U\xffD", huge
		})},
		{"hostile-content", mod(func(r *call.Record) {
			r.Content = call.Content{Capture: true, Max: 1 << 12,
				Request: []byte(`{"messages":[{"role":"` + strings.Repeat("r", 3000) + `","name":"\ud800","content":"` + strings.Repeat("\\u0001", 3000) + `"}]}` + "\xff"),
				Choices: [][]byte{[]byte(strings.Repeat("\xff", 5000))}}
		})},
		{"empty-names", &call.Record{Start: time.Unix(10, 0), UpstreamStart: time.Unix(10, 1), End: time.Unix(11, 0)}},
		{"extreme-numbers", mod(func(r *call.Record) {
			r.Params.Temperature, r.Params.MaxTokens = f64(math.Inf(-1)), i64(math.MinInt64)
			r.Usage.InputTokens, r.ClientBytes, r.Status = -1, math.MaxInt64, -7
			r.Start = time.Unix(-5, 0) // before 1970: 0, as the exporter clamps it
		})},
	}
}

// The heart of the encoder's contract: for every kind of call it writes
// what the SDK path (SDK spans through the real OTLP/gRPC exporter) sent,
// field by field, plus loom.run.id.
func TestEncode_MatchesSDKPath(t *testing.T) {
	const version, instance = "v1.2.3", "inst-1"
	ref := newSDKRef(t, version, instance)
	e := newEncoder(version, instance)
	for i, tc := range equivalenceRecords() {
		t.Run(tc.name, func(t *testing.T) {
			ids := callIDs{Seq: int64(i + 1), Run: "run-7"}
			want := spansOf(ref.record(tc.rec, ids.Seq))
			b := e.appendCall(nil, tc.rec, ids)
			var got coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatalf("encoding does not decode: %v", err)
			}
			if len(want) != spanCount(tc.rec) {
				t.Fatalf("SDK path sent %d spans, spanCount says %d", len(want), spanCount(tc.rec))
			}
			compareCall(t, tc.rec, ids, want, &got)
		})
	}
}

// compareCall checks got (one appendCall) against the SDK path's spans.
func compareCall(t *testing.T, r *call.Record, ids callIDs, want []sdkSpan, got *coltracepb.ExportTraceServiceRequest) {
	t.Helper()
	if len(got.ResourceSpans) != 1 || len(got.ResourceSpans[0].ScopeSpans) != 1 {
		t.Fatalf("want one ResourceSpans with one ScopeSpans, got %s", prototext.Format(got))
	}
	rs := got.ResourceSpans[0]
	ss := rs.ScopeSpans[0]
	if len(ss.Spans) != len(want) {
		t.Fatalf("%d spans, SDK path %d", len(ss.Spans), len(want))
	}
	for _, w := range want {
		if !proto.Equal(rs.Resource, w.rs.Resource) || rs.SchemaUrl != w.rs.SchemaUrl {
			t.Errorf("resource:\n got %s\nwant %s", prototext.Format(rs.Resource), prototext.Format(w.rs.Resource))
		}
		if !proto.Equal(ss.Scope, w.ss.Scope) || ss.SchemaUrl != w.ss.SchemaUrl {
			t.Errorf("scope:\n got %s\nwant %s", prototext.Format(ss.Scope), prototext.Format(w.ss.Scope))
		}
	}
	byKind := func(spans []*tracepb.Span) map[tracepb.Span_SpanKind]*tracepb.Span {
		m := map[tracepb.Span_SpanKind]*tracepb.Span{}
		for _, s := range spans {
			if m[s.Kind] != nil {
				t.Fatalf("two spans of kind %v", s.Kind)
			}
			m[s.Kind] = s
		}
		return m
	}
	var wantSpans []*tracepb.Span
	for _, w := range want {
		wantSpans = append(wantSpans, w.span)
	}
	gk, wk := byKind(ss.Spans), byKind(wantSpans)
	for kind, w := range wk {
		g := gk[kind]
		if g == nil {
			t.Fatalf("no %v span", kind)
		}
		compareSpan(t, kind.String(), g, w, ids)
	}
	// Ids: the same structure on both sides.
	for side, m := range map[string]map[tracepb.Span_SpanKind]*tracepb.Span{"encoder": gk, "sdk": wk} {
		server, client := m[tracepb.Span_SPAN_KIND_SERVER], m[tracepb.Span_SPAN_KIND_CLIENT]
		if len(server.TraceId) != 16 || len(server.SpanId) != 8 || bytes.Equal(server.TraceId, make([]byte, 16)) || bytes.Equal(server.SpanId, make([]byte, 8)) {
			t.Errorf("%s: server ids invalid: %x %x", side, server.TraceId, server.SpanId)
		}
		tp := strings.Split(string(r.TraceParent), "-")
		if len(tp) == 4 && len(tp[1]) == 32 && !strings.Contains(tp[1], "z") {
			if hex.EncodeToString(server.TraceId) != tp[1] || hex.EncodeToString(server.ParentSpanId) != tp[2] {
				t.Errorf("%s: traceparent not joined: trace %x parent %x", side, server.TraceId, server.ParentSpanId)
			}
		} else if len(server.ParentSpanId) != 0 {
			t.Errorf("%s: root server span has a parent %x", side, server.ParentSpanId)
		}
		if client != nil {
			if !bytes.Equal(client.TraceId, server.TraceId) || !bytes.Equal(client.ParentSpanId, server.SpanId) ||
				len(client.SpanId) != 8 || bytes.Equal(client.SpanId, server.SpanId) {
				t.Errorf("%s: client span not the server span's child: %x/%x parent %x, server %x/%x",
					side, client.TraceId, client.SpanId, client.ParentSpanId, server.TraceId, server.SpanId)
			}
		}
		if id, ok := traceIDOf(appendOne(server)); !ok || id != hex.EncodeToString(server.TraceId) {
			t.Errorf("traceIDOf: %q %v", id, ok)
		}
	}
	if id, ok := traceIDOf(mustMarshal(t, got)); !ok || id != hex.EncodeToString(gk[tracepb.Span_SPAN_KIND_SERVER].TraceId) {
		t.Errorf("traceIDOf(encoded) = %q, %v", id, ok)
	}
}

// compareSpan compares every field but the ids (compared structurally by
// the caller); the only difference allowed is loom.run.id, right after
// loom.instance.id.
func compareSpan(t *testing.T, kind string, got, want *tracepb.Span, ids callIDs) {
	t.Helper()
	attrs := got.Attributes
	if len(attrs) < 2 || attrs[0].Key != sa.InstanceID || attrs[1].Key != sa.RunID ||
		attrs[1].Value.GetStringValue() != call.Clean(ids.Run, maxShort) {
		t.Errorf("%s: loom.run.id not right after loom.instance.id: %v", kind, attrs[:min(2, len(attrs))])
	} else {
		attrs = append(attrs[:1:1], attrs[2:]...)
	}
	if len(attrs) != len(want.Attributes) {
		t.Errorf("%s: %d attributes, SDK path %d:\n got %v\nwant %v", kind, len(attrs), len(want.Attributes), keys(attrs), keys(want.Attributes))
	}
	for i := range min(len(attrs), len(want.Attributes)) {
		if !proto.Equal(attrs[i], want.Attributes[i]) {
			t.Errorf("%s: attribute %d:\n got %s\nwant %s", kind, i, short(attrs[i]), short(want.Attributes[i]))
		}
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"name", got.Name, want.Name},
		{"kind", got.Kind, want.Kind},
		{"start", got.StartTimeUnixNano, want.StartTimeUnixNano},
		{"end", got.EndTimeUnixNano, want.EndTimeUnixNano},
		{"flags", got.Flags, want.Flags},
		{"trace state", got.TraceState, want.TraceState},
		{"status present", got.Status != nil, want.Status != nil},
		{"status code", got.Status.GetCode(), want.Status.GetCode()},
		{"status message", got.Status.GetMessage(), want.Status.GetMessage()},
		{"events", len(got.Events), len(want.Events)},
		{"links", len(got.Links), len(want.Links)},
		{"dropped attributes", got.DroppedAttributesCount, want.DroppedAttributesCount},
		{"dropped events", got.DroppedEventsCount, want.DroppedEventsCount},
		{"dropped links", got.DroppedLinksCount, want.DroppedLinksCount},
	} {
		if f.got != f.want {
			t.Errorf("%s: %s = %v, SDK path %v", kind, f.name, short(f.got), short(f.want))
		}
	}
}

func keys(kvs []*commonpb.KeyValue) []string {
	var ks []string
	for _, kv := range kvs {
		ks = append(ks, kv.Key)
	}
	return ks
}

// short keeps failure messages readable when values are huge.
func short(v any) string {
	s := fmt.Sprint(v)
	if m, ok := v.(proto.Message); ok {
		s = prototext.Format(m)
	}
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func appendOne(s *tracepb.Span) []byte {
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{s}}}}}})
	if err != nil {
		panic(err)
	}
	return b
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Concatenated outputs are one request with one ResourceSpans each: the
// spool ships them without re-encoding.
func TestEncode_ConcatenatedCallsAreOneRequest(t *testing.T) {
	e := newEncoder("v", "inst-1")
	var b []byte
	recs := equivalenceRecords()
	spans := 0
	for i, tc := range recs {
		b = e.appendCall(b, tc.rec, callIDs{Seq: int64(i + 1), Run: "r"})
		spans += spanCount(tc.rec)
	}
	b = e.appendRunMarker(b, runMarker{Event: sa.RunStop, Run: "r", At: time.Unix(9, 0), LastSeq: int64(len(recs))})
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	if len(req.ResourceSpans) != len(recs)+1 {
		t.Fatalf("%d ResourceSpans, want %d", len(req.ResourceSpans), len(recs)+1)
	}
	n := 0
	for _, rs := range req.ResourceSpans[:len(recs)] {
		n += len(rs.ScopeSpans[0].Spans)
	}
	if n != spans {
		t.Fatalf("%d spans, want %d", n, spans)
	}
}

// The encoding is canonical: what proto.Marshal writes for the decoded
// message (deterministic, field order aside), byte for byte in size, so
// every length is a minimal varint.
func TestEncode_LengthsAreMinimalVarints(t *testing.T) {
	e := newEncoder("v", "inst-1")
	for _, tc := range equivalenceRecords() {
		b := e.appendCall(nil, tc.rec, callIDs{Seq: 1, Run: "r"})
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Fatal(err)
		}
		if n := proto.Size(&req); n != len(b) {
			t.Errorf("%s: %d bytes, canonical %d", tc.name, len(b), n)
		}
	}
}

func TestCloseLen_MovesContentWhenTheReservationIsWrong(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 1 << 21} {
		for reserve := 1; reserve <= 3; reserve++ {
			dst, start := openLen([]byte("xy"), 0x0a, reserve)
			for i := range n {
				dst = append(dst, byte(i))
			}
			dst = closeLen(dst, start, reserve)
			num, typ, m := protowire.ConsumeTag(dst[2:])
			v, vn := protowire.ConsumeBytes(dst[2+m:])
			if num != 1 || typ != protowire.BytesType || vn < 0 || len(v) != n || 2+m+vn != len(dst) ||
				vn != protowire.SizeBytes(n) || (n > 0 && v[n-1] != byte(n-1)) {
				t.Fatalf("n=%d reserve=%d: bad field", n, reserve)
			}
		}
	}
}

func TestRunMarker_StartAndStopCarryTheirAttributes(t *testing.T) {
	e := newEncoder("v", "inst-1")
	at := time.Date(2026, 12, 5, 14, 0, 0, 123, time.UTC)
	for _, tc := range []struct {
		m    runMarker
		want map[string]any
	}{
		{runMarker{Event: sa.RunStart, Run: "run-1", At: at, CommitInterval: 5 * time.Millisecond, LossBound: 4096},
			map[string]any{sa.InstanceID: "inst-1", sa.RunID: "run-1", sa.RunEvent: sa.RunStart, sa.RunCommitInterval: 0.005, sa.RunLossBound: int64(4096)}},
		{runMarker{Event: sa.RunStop, Run: "run-1", At: at, LastSeq: 77},
			map[string]any{sa.InstanceID: "inst-1", sa.RunID: "run-1", sa.RunEvent: sa.RunStop, sa.RunLastSeq: int64(77)}},
	} {
		var req coltracepb.ExportTraceServiceRequest
		b := e.appendRunMarker(nil, tc.m)
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Fatal(err)
		}
		if len(req.ResourceSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans[0].Spans) != 1 {
			t.Fatalf("want one span: %s", prototext.Format(&req))
		}
		s := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
		if s.Name != sa.RunSpanName || s.Kind != tracepb.Span_SPAN_KIND_INTERNAL || len(s.ParentSpanId) != 0 ||
			s.StartTimeUnixNano != uint64(at.UnixNano()) || s.EndTimeUnixNano != uint64(at.UnixNano()) ||
			len(s.TraceId) != 16 || len(s.SpanId) != 8 || s.Flags != 0x101 {
			t.Fatalf("marker span: %s", prototext.Format(s))
		}
		got := map[string]any{}
		var order []string
		for _, kv := range s.Attributes {
			order = append(order, kv.Key)
			switch v := kv.Value.Value.(type) {
			case *commonpb.AnyValue_StringValue:
				got[kv.Key] = v.StringValue
			case *commonpb.AnyValue_IntValue:
				got[kv.Key] = v.IntValue
			case *commonpb.AnyValue_DoubleValue:
				got[kv.Key] = v.DoubleValue
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || len(got) != len(s.Attributes) {
			t.Fatalf("attributes %v, want %v", got, tc.want)
		}
		if order[0] != sa.InstanceID || order[1] != sa.RunID || order[2] != sa.RunEvent {
			t.Fatalf("attribute order %v", order)
		}
		if id, ok := traceIDOf(b); !ok || id != hex.EncodeToString(s.TraceId) {
			t.Fatalf("traceIDOf = %q %v", id, ok)
		}
		if !proto.Equal(req.ResourceSpans[0].Resource, decodeOne(t, e.appendCall(nil, streamedChat(), callIDs{})).Resource) {
			t.Fatal("marker resource differs from the calls'")
		}
	}
}

func decodeOne(t *testing.T, b []byte) *tracepb.ResourceSpans {
	t.Helper()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil || len(req.ResourceSpans) != 1 {
		t.Fatalf("decode: %v (%d)", err, len(req.ResourceSpans))
	}
	return req.ResourceSpans[0]
}

func TestTraceIDOf_RefusesWhatIsNotAnEncodedCall(t *testing.T) {
	b := newEncoder("v", "i").appendCall(nil, streamedChat(), callIDs{Seq: 1})
	for _, bad := range [][]byte{nil, {0x0a}, {0xff, 0xff}, b[:len(b)/2], b[:3], []byte("junk")} {
		if id, ok := traceIDOf(bad); ok {
			t.Fatalf("traceIDOf(%x) = %q, true", bad, id)
		}
	}
}

func TestSpanCount_ServerAlwaysClientOnlyWithUpstream(t *testing.T) {
	r := streamedChat()
	if spanCount(r) != 2 {
		t.Fatal("relayed call: want 2")
	}
	r.UpstreamStart = time.Time{}
	if spanCount(r) != 1 {
		t.Fatal("rejected call: want 1")
	}
}

// Random ids differ between calls and between encoders.
func TestEncode_IDsAreFreshPerCall(t *testing.T) {
	e := newEncoder("v", "i")
	seen := map[string]bool{}
	for range 1000 {
		rs := decodeOne(t, e.appendCall(nil, streamedChat(), callIDs{Seq: 1}))
		for _, s := range rs.ScopeSpans[0].Spans {
			if seen[string(s.SpanId)] {
				t.Fatalf("span id %x repeated", s.SpanId)
			}
			seen[string(s.SpanId)] = true
		}
		if seen[string(rs.ScopeSpans[0].Spans[0].TraceId)] {
			t.Fatal("trace id repeated")
		}
		seen[string(rs.ScopeSpans[0].Spans[0].TraceId)] = true
	}
}

// BenchmarkEncode is what recording costs per call with the encoder:
// both spans appended into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		rec  func() *call.Record
	}{
		{"streamed-chat", streamedChat},
		{"traceparent", func() *call.Record {
			r := streamedChat()
			r.TraceParent = []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			return r
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEncoder("v1.0.0", "inst-1")
			r := bc.rec()
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			var seq int64
			for b.Loop() {
				seq++
				buf = e.appendCall(buf[:0], r, callIDs{Seq: seq, Run: "0123456789abcdef"})
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// The normal path allocates nothing (budget 2): a call's spans are bytes
// appended to the caller's buffer.
func TestEncode_AllocationBudget(t *testing.T) {
	e := newEncoder("v1.0.0", "inst-1")
	r := streamedChat()
	r.Cost, r.CostCurrency, r.PriceID = 123_450_000, "USD", "gpt-4o-mini:2025-01-01T00:00:00Z"
	buf := make([]byte, 0, 4096)
	n := testing.AllocsPerRun(200, func() { buf = e.appendCall(buf[:0], r, callIDs{Seq: 1, Run: "0123456789abcdef"}) })
	if n > 0 {
		t.Fatalf("appendCall allocates %.0f times per call, budget 0 (issue 12 allows 2)", n)
	}
	// A client's traceparent costs the context the W3C propagator returns.
	r.TraceParent = []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	n = testing.AllocsPerRun(200, func() { buf = e.appendCall(buf[:0], r, callIDs{Seq: 1, Run: "0123456789abcdef"}) })
	if n > 2 {
		t.Fatalf("appendCall with a traceparent allocates %.0f times per call, budget 2", n)
	}
}

// Many request goroutines record at once: the encoder is shared, every
// output stays whole (run with -race). Each call has its own record, as in
// the gateway: the encoder writes the trace id it chose into it.
func TestEncode_ConcurrentCalls_EachOutputWhole(t *testing.T) {
	e := newEncoder("v", "inst-1")
	recs := equivalenceRecords()
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var buf []byte
			for i := range 50 {
				tc := recs[(g+i)%len(recs)]
				rec := *tc.rec
				buf = e.appendCall(buf[:0], &rec, callIDs{Seq: int64(i), Run: "r"})
				var req coltracepb.ExportTraceServiceRequest
				if err := proto.Unmarshal(buf, &req); err != nil {
					errs <- fmt.Errorf("%s: %w", tc.name, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// As the SDK did with trace.WithTimestamp(zero time): a time the record
// lacks is the moment of recording, never 1 January of year 1.
func TestEncode_MissingTimesAreTheMomentOfRecording(t *testing.T) {
	r := streamedChat()
	r.Start, r.End, r.UpstreamEnd = time.Time{}, time.Time{}, time.Time{}
	before := uint64(time.Now().UnixNano())
	rs := decodeOne(t, newEncoder("v", "i").appendCall(nil, r, callIDs{Seq: 1}))
	after := uint64(time.Now().UnixNano())
	for _, s := range rs.ScopeSpans[0].Spans {
		if s.EndTimeUnixNano < before || s.EndTimeUnixNano > after {
			t.Fatalf("%v span ends at %d, not within [%d, %d]", s.Kind, s.EndTimeUnixNano, before, after)
		}
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER && (s.StartTimeUnixNano < before || s.StartTimeUnixNano > after) {
			t.Fatalf("server span starts at %d", s.StartTimeUnixNano)
		}
	}
}

// encodedSpans decodes one appendCall output into its SERVER and CLIENT
// spans (client nil when there is none).
func encodedSpans(t *testing.T, b []byte) (server, client *tracepb.Span) {
	t.Helper()
	for _, s := range decodeOne(t, b).ScopeSpans[0].Spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = s
		}
	}
	if server == nil {
		t.Fatal("no SERVER span")
	}
	return server, client
}

// otlpAttrs is s's attributes by key.
func otlpAttrs(s *tracepb.Span) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// gen_ai.* lives on the CLIENT span only, so GenAI-aware backends count
// each upstream call once; the call's numbering is on both.
func TestEncode_GenAIOnlyOnClientSpan_NumberingOnBoth(t *testing.T) {
	b := newEncoder("v", "inst-1").appendCall(nil, streamedChat(), callIDs{Seq: 42, Run: "run-9"})
	server, client := encodedSpans(t, b)
	if client == nil {
		t.Fatal("no CLIENT span")
	}
	sa2, ca := otlpAttrs(server), otlpAttrs(client)
	for k := range sa2 {
		if strings.HasPrefix(k, "gen_ai.") {
			t.Errorf("SERVER span carries %s", k)
		}
	}
	if ca[sa.GenAIUsageInputTokens].GetIntValue() != 11 || ca[sa.GenAIUsageCacheReadInputTokens].GetIntValue() != 4 ||
		ca[sa.GenAIRequestModel].GetStringValue() != "gpt-4o-mini-2024-07-18" {
		t.Errorf("CLIENT span GenAI attributes wrong: %v", keys(client.Attributes))
	}
	for _, m := range []map[string]*commonpb.AnyValue{sa2, ca} {
		if m[sa.Seq].GetIntValue() != 42 || m[sa.RunID].GetStringValue() != "run-9" || m[sa.InstanceID].GetStringValue() != "inst-1" {
			t.Errorf("numbering missing: seq %v run %v instance %v", m[sa.Seq], m[sa.RunID], m[sa.InstanceID])
		}
	}
	if server.Name != "POST /v1/chat/completions" || client.Name != "chat gpt-4o-mini-2024-07-18" {
		t.Errorf("names %q, %q", server.Name, client.Name)
	}
}

// spanCount is how many spans appendCall writes for r: the SERVER span,
// one CLIENT span per failed attempt, and the serving attempt's CLIENT
// span when Loom reached an upstream.
func spanCount(r *call.Record) int {
	n := 1 + len(r.Attempts)
	if !r.UpstreamStart.IsZero() {
		n++
	}
	return n
}

// openai.api.type names the OpenAI API a chat call used upstream, and only
// for OpenAI and Azure OpenAI deployments.
func TestOpenAIAPIType_ByRouteProviderAndOperation(t *testing.T) {
	for _, tc := range []struct {
		op              call.Operation
		route, provider string
		want            string
	}{
		{call.OpChat, "/v1/chat/completions", "openai", "chat_completions"},
		{call.OpChat, "/openai/deployments/{deployment-id}/chat/completions", "azure.ai.openai", "chat_completions"},
		{call.OpChat, "/v1/messages", "openai", "chat_completions"},
		{call.OpChat, "/v1/responses", "openai", "responses"},
		{call.OpChat, "/openai/responses", "azure.ai.openai", "responses"},
		{call.OpChat, "/v1/responses/compact", "openai", "responses"},
		{call.OpChat, "/v1/chat/completions", "anthropic", ""},
		{call.OpEmbeddings, "/v1/embeddings", "openai", ""},
	} {
		r := &call.Record{Operation: tc.op, HTTPRoute: tc.route}
		if got := OpenAIAPIType(r, tc.provider); got != tc.want {
			t.Errorf("%s %s on %s: %q, want %q", tc.op, tc.route, tc.provider, got, tc.want)
		}
	}
}

// loom.cost, its currency and its price entry are on the CLIENT span of a
// priced call, exactly; a call no entry priced has none of the three (no
// cost is not a cost of 0), and the SERVER span never has them.
func TestEncode_CostOnClientSpanOnlyWhenPriced(t *testing.T) {
	e := newEncoder("v", "inst-1")
	r := streamedChat()
	r.Cost, r.CostCurrency, r.PriceID = 7_500_000_000, "EUR", "gpt-4o-mini@mock:2025-01-01T00:00:00Z"
	server, client := encodedSpans(t, e.appendCall(nil, r, callIDs{Seq: 1, Run: "r"}))
	ca := otlpAttrs(client)
	if got := ca[sa.Cost].GetDoubleValue(); got != 0.0075 {
		t.Errorf("loom.cost = %v, want 0.0075", got)
	}
	if ca[sa.CostCurrency].GetStringValue() != "EUR" || ca[sa.CostPriceID].GetStringValue() != r.PriceID {
		t.Errorf("currency %v, price id %v", ca[sa.CostCurrency], ca[sa.CostPriceID])
	}
	for k := range otlpAttrs(server) {
		if strings.HasPrefix(k, "loom.cost") {
			t.Errorf("SERVER span carries %s", k)
		}
	}
	r.Cost, r.CostCurrency, r.PriceID = 0, "", ""
	_, client = encodedSpans(t, e.appendCall(nil, r, callIDs{Seq: 2, Run: "r"}))
	for k := range otlpAttrs(client) {
		if strings.HasPrefix(k, "loom.cost") {
			t.Errorf("an unpriced call's CLIENT span carries %s", k)
		}
	}
}

// The record learns its spans' trace id (the metrics' exemplars link to
// it): the client's when its traceparent is valid, the new one otherwise.
func TestEncode_WritesTheSpansTraceIDToTheRecord(t *testing.T) {
	e := newEncoder("v", "i")
	r := streamedChat()
	b := e.appendCall(nil, r, callIDs{Seq: 1})
	id, ok := traceIDOf(b)
	if !ok || hex.EncodeToString(r.TraceID[:]) != id {
		t.Fatalf("record's trace id %x, spans' %q", r.TraceID, id)
	}
	r.TraceParent = []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	e.appendCall(nil, r, callIDs{Seq: 2})
	if got := hex.EncodeToString(r.TraceID[:]); got != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("with a traceparent, record's trace id %s", got)
	}
}
