package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

func flushWithin(t *testing.T, tr *Tracer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := tr.Flush(ctx); err != nil {
		t.Fatalf("flush: %v; stats %+v", err, tr.Stats())
	}
}

// poisonRecords are the calls of issue 10 that stopped the export queue
// for everyone: a transport-level reject whose path is not UTF-8, a 6 MiB
// model name, captured content with a huge role and a name that is not
// UTF-8, and an upstream that answers with garbage ids and reasons.
func poisonRecords() []*call.Record {
	now := time.Now()
	huge := strings.Repeat("x", 6<<20)
	route := &call.Record{HTTPMethod: "POST", HTTPRoute: "/\xff", Status: 413, Outcome: call.OutcomeRejected,
		ErrorType: "request_too_large", ErrorMessage: "bad \xff path", Start: now, End: now, TenantID: "acme", KeyID: "k\xfe"}
	model := &call.Record{Operation: call.OpChat, HTTPMethod: "POST", HTTPRoute: "/v1/chat/completions", Status: 404,
		Outcome: call.OutcomeRejected, ErrorType: "model_not_found", Model: huge, ErrorMessage: "The model `" + huge + "` does not exist",
		Start: now, End: now, TenantID: "acme", KeyID: "acme-key-1"}
	content := streamedChat()
	content.Stream = false
	content.Content = call.Content{Capture: true, Max: 1 << 10,
		Request: []byte(`{"messages":[{"role":"` + strings.Repeat("r", 1<<20) + `","name":"n` + "\xff" + `n` + strings.Repeat("é", 1<<19) +
			`","content":"hi"},{"role":"assistant","tool_calls":[{"id":"` + strings.Repeat("i", 1<<20) +
			`","function":{"name":"f` + "\xfe" + `","arguments":"` + strings.Repeat("a", 1<<20) + `"}}]}]}`),
		Response: []byte(`{"choices":[{"message":{"role":"assistant","content":"ok ` + "\xff" + `"},"finish_reason":"` + strings.Repeat("s", 1<<20) + `"}]}`)}
	upstream := streamedChat()
	upstream.UpstreamModel = "gpt\xc3"
	upstream.ResponseID = []byte("chatcmpl-\xff" + huge)
	upstream.ResponseModel = []byte{0xed, 0xa0, 0x80} // a UTF-16 surrogate: not UTF-8
	upstream.FinishReasons = make([]string, 1025)
	for i := range upstream.FinishReasons {
		upstream.FinishReasons[i] = "stop\xff" + strings.Repeat("s", 10000)
	}
	upstream.Provider, upstream.Deployment, upstream.ServerAddress = "open\xffai", strings.Repeat("d", 1<<20), "h\xffst"
	upstream.Params.EncodingFormat = "\xff"
	return []*call.Record{route, model, content, upstream}
}

// Issue 10, item 1: one such call made the batch unmarshalable and the
// queue retried it forever, so no later call of any tenant was recorded.
// Now each poisoning call is recorded, and the 100 normal calls after it too.
func TestRecord_PoisoningCalls_ThenNormalCalls_AllExported(t *testing.T) {
	col := &fakeCollector{limit: 4 << 20} // the OTLP/gRPC receiver's default
	tr := newCollectorTracer(t, col)
	defer tr.Shutdown(context.Background())
	want := 0
	for _, r := range poisonRecords() {
		tr.Record(r)
		want++
		if !r.UpstreamStart.IsZero() {
			want++
		}
		for range 100 {
			tr.Record(streamedChat())
			want += 2
		}
	}
	flushWithin(t, tr, 10*time.Second)
	if errs := col.decodeErrors(); len(errs) > 0 {
		t.Fatalf("%d requests did not decode: %v", len(errs), errs[0])
	}
	st := tr.Stats()
	if got := len(col.accepted()); got != want || st.Dropped != 0 {
		t.Fatalf("collector has %d spans, want %d; stats %+v", got, want, st)
	}
	captured := 0
	for _, s := range col.accepted() {
		if !utf8.ValidString(s.Name) || len(s.Name) > maxShort {
			t.Errorf("span name %q", s.Name)
		}
		for _, kv := range s.Attributes {
			if v := kv.Value.GetStringValue(); len(v) > 64<<10 {
				t.Errorf("%s is %d bytes", kv.Key, len(v))
			}
			if kv.Key == sa.GenAIInputMessages || kv.Key == sa.GenAIOutputMessages {
				captured++
			}
		}
	}
	if captured != 2 {
		t.Errorf("the hostile content was not captured (%d attributes): the test proves less than it says", captured)
	}
}

// A call that escaped sanitization (its bytes edited here after encoding)
// or one too large for the collector is refused: the shipper splits its
// batch, ships every other call, and counts and logs the refused one by
// trace id, and the spool flows on.
func TestShip_CollectorRefusesOneCall_SplitsBatchAndDropsOnlyIt(t *testing.T) {
	const badTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name string
		bad  func(tr *Tracer) []byte
	}{
		{"invalid UTF-8 name", func(tr *Tracer) []byte {
			r := streamedChat()
			r.HTTPRoute = "/XXXX"
			r.TraceParent = []byte("00-" + badTrace + "-00f067aa0ba902b7-01")
			b := tr.enc.appendCall(nil, r, callIDs{Seq: 999, Run: tr.run})
			return bytes.ReplaceAll(b, []byte("XXXX"), []byte("\xff\xff\xff\xff"))
		}},
		{"over the collector's size limit", func(tr *Tracer) []byte {
			r := streamedChat()
			r.TraceParent = []byte("00-" + badTrace + "-00f067aa0ba902b7-01")
			r.Content = call.Content{Capture: true, Max: 1 << 20,
				Request: []byte(`{"messages":[{"role":"user","content":"` + strings.Repeat("b", 200<<10) + `"}]}`)}
			return tr.enc.appendCall(nil, r, callIDs{Seq: 999, Run: tr.run})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := &fakeCollector{limit: 64 << 10}
			var logs bytes.Buffer
			cfg := testConfig()
			cfg.Spool.Dir = t.TempDir()
			cfg.Spool.CommitInterval = time.Second // one commit, one batch
			tr, err := New(context.Background(), cfg, Options{Send: col.Send, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			for range 4 {
				tr.Record(streamedChat())
			}
			if err := tr.spool.Append(tc.bad(tr)); err != nil {
				t.Fatal(err)
			}
			for range 5 {
				tr.Record(streamedChat())
			}
			flushWithin(t, tr, 10*time.Second)
			st := tr.Stats()
			if n := len(col.accepted()); n != 18 || st.Invalid != 1 || st.Dropped != 1 {
				t.Fatalf("collector has %d spans; stats %+v", n, st)
			}
			// The spool flows on.
			tr.Record(streamedChat())
			flushWithin(t, tr, 10*time.Second)
			if n := len(col.accepted()); n != 20 {
				t.Fatalf("after the refusal, %d spans exported", n)
			}
			if !strings.Contains(logs.String(), badTrace) {
				t.Errorf("log does not name trace %s:\n%s", badTrace, logs.String())
			}
			if m := string(tr.AppendMetrics(nil)); !strings.Contains(m, `loom_calls_dropped_total{reason="invalid"} 1`) {
				t.Errorf("metrics:\n%s", m)
			}
		})
	}
}

// Batches are cut by their encoded size: no request the collector gets is
// over BatchBytes (unless one call alone is).
func TestQueue_BatchesStayUnderBatchBytes(t *testing.T) {
	col := &fakeCollector{}
	const limit = 32 << 10
	tr := newCollectorTracer(t, col, func(c *config.Tracing) {
		c.BatchBytes, c.BatchSize, c.Spool.CommitInterval = limit, 512, 100*time.Millisecond
	})
	defer tr.Shutdown(context.Background())
	for i := range 200 {
		r := streamedChat()
		r.Content = call.Content{Capture: true, Max: 1 << 10,
			Request: []byte(`{"messages":[{"role":"user","content":"` + strings.Repeat("q", i*10) + `"}]}`)}
		tr.Record(r)
	}
	flushWithin(t, tr, 10*time.Second)
	spans := len(col.accepted())
	col.mu.Lock()
	defer col.mu.Unlock()
	if spans != 400 || len(col.sizes) < 5 {
		t.Fatalf("%d spans in %d requests", spans, len(col.sizes))
	}
	for _, n := range col.sizes {
		if n > limit {
			t.Fatalf("a request of %d bytes, over BatchBytes %d (sizes %v)", n, limit, col.sizes)
		}
	}
}

// A client that hangs up mid-stream while the provider answers normally is
// the client's doing: the CLIENT span (the upstream call) is not an error
// and has no error.type, the SERVER span is, and no status message names a
// socket address.
func TestRecord_ClientGone_UpstreamFine_OnlyServerSpanIsError(t *testing.T) {
	exp := newMemory()
	tr := newTestTracer(t, exp.Send, testConfig(), nil)
	r := streamedChat()
	r.Outcome, r.ErrorType, r.ClientDisconnected = call.OutcomeClientGone, "client_disconnected", true
	r.ErrorMessage = "write tcp 127.0.0.1:8080->127.0.0.1:54321: write: broken pipe"
	r.Drained, r.DrainComplete = true, true
	tr.Record(r)
	_ = tr.Shutdown(context.Background())
	server, client := spansByKind(t, exp.GetSpans())
	if client.Status.Code != codes.Unset {
		t.Errorf("CLIENT status %v: the upstream call went fine", client.Status)
	}
	if _, ok := attrs(client)[sa.ErrorType]; ok {
		t.Error("error.type on a CLIENT span whose upstream call succeeded")
	}
	if !attrs(client)[sa.ClientDisconnected].AsBool() {
		t.Error("loom.client.disconnected missing")
	}
	if server.Status.Code != codes.Error || server.Status.Description != "client disconnected" {
		t.Errorf("SERVER status %v", server.Status)
	}
}

func TestRecord_UpstreamFailure_StatusNamesNoAddress(t *testing.T) {
	exp := newMemory()
	tr := newTestTracer(t, exp.Send, testConfig(), nil)
	r := streamedChat()
	r.Status, r.UpstreamStatus, r.Outcome, r.ErrorType = 502, 0, call.OutcomeUpstreamFailed, "connect"
	r.ErrorMessage = "dial tcp 10.1.2.3:443: connect: connection refused; via [fe80::1]:8443"
	tr.Record(r)
	_ = tr.Shutdown(context.Background())
	server, client := spansByKind(t, exp.GetSpans())
	want := "dial tcp <addr>: connect: connection refused; via <addr>"
	if client.Status.Code != codes.Error || client.Status.Description != want || server.Status.Description != want {
		t.Fatalf("statuses %v / %v, want %q", client.Status, server.Status, want)
	}
	if attrs(client)[sa.ErrorType].AsString() != "connect" {
		t.Error("error.type missing on the failed CLIENT span")
	}
}

// The stream column must read false, not NULL, for a unary call's SERVER
// row: the SERVER span always says whether the client streamed.
func TestRecord_UnaryCall_ServerSpanSaysNotStreamed(t *testing.T) {
	exp := newMemory()
	tr := newTestTracer(t, exp.Send, testConfig(), nil)
	r := streamedChat()
	r.Stream = false
	tr.Record(r)
	_ = tr.Shutdown(context.Background())
	server, _ := spansByKind(t, exp.GetSpans())
	if v, ok := attrs(server)[sa.RequestStream]; !ok || v.AsBool() {
		t.Fatalf("SERVER %s = %v (set %v), want false", sa.RequestStream, v.AsInterface(), ok)
	}
}

// Captured content: every field is capped and valid UTF-8, and what the
// cap cuts leaves out whole parts and messages, never a text part without
// its content.
func TestContent_CapCountsEveryFieldAndKeepsPartsValid(t *testing.T) {
	r := streamedChat()
	r.Stream = false
	r.Content = call.Content{Capture: true, Max: 10,
		Request: []byte(`{"messages":[` +
			`{"role":"system","content":"a long system prompt"},` +
			`{"role":"user","content":[{"type":"text","text":"first part"},{"type":"text","text":"ab` + "\xff" + `cd"}]},` +
			`{"role":"` + strings.Repeat("R", 5000) + `","name":"` + strings.Repeat("N", 5000) + `","content":""}]}`),
		Response: []byte(`{"choices":[{"message":{"content":"0123456789abcdef"},"finish_reason":"stop"}]}`)}
	a := map[attribute.Key]attribute.Value{}
	for _, kv := range appendContent(nil, r) {
		a[kv.Key] = kv.Value
	}
	if !a[sa.ContentTruncated].AsBool() {
		t.Error("not marked truncated")
	}
	for _, k := range []attribute.Key{sa.GenAIInputMessages, sa.GenAIOutputMessages} {
		s := a[k].AsString()
		if !utf8.ValidString(s) {
			t.Fatalf("%s not UTF-8: %q", k, s)
		}
		var msgs []map[string]any
		if err := json.Unmarshal([]byte(s), &msgs); err != nil || len(msgs) == 0 {
			t.Fatalf("%s: %v %s", k, err, s)
		}
		for _, m := range msgs {
			if len(m["role"].(string)) > maxField || len(asString(m["name"])) > maxField {
				t.Errorf("%s: a small field over %d bytes", k, maxField)
			}
			parts, ok := m["parts"].([]any)
			if !ok {
				t.Fatalf("%s: parts is not an array: %s", k, s)
			}
			for _, p := range parts {
				pm := p.(map[string]any)
				if _, has := pm["content"]; pm["type"] == "text" && !has {
					t.Errorf("%s: a text part without content: %s", k, s)
				}
			}
		}
	}
	in := a[sa.GenAIInputMessages].AsString()
	// The last message (empty content, huge role and name) and the last
	// part's text fit; the first part and the earlier messages do not.
	if strings.Contains(in, "first part") || strings.Contains(in, "system") || !strings.Contains(in, `"content":"ab\ufffdcd"`) &&
		!strings.Contains(in, `"content":"ab�cd"`) {
		t.Errorf("input messages: %s", in)
	}
	if out := a[sa.GenAIOutputMessages].AsString(); !strings.Contains(out, `"content":"0123456789"`) {
		t.Errorf("output messages: %s", out)
	}
}

func TestClean_ShortValidStringsPassUnchangedWithoutAllocating(t *testing.T) {
	s := "gpt-4o-mini-2024-07-18"
	if n := testing.AllocsPerRun(100, func() { _ = call.Clean(s, maxShort) }); n != 0 {
		t.Fatalf("clean allocates %v times on the fast path", n)
	}
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"ok", 3, "ok"},
		{"a\xffb", 5, "a\uFFFDb"},
		{"a\xffb", 3, "a"}, // U+FFFD does not fit whole
		{"ééé", 3, "é"},    // a cut never splits a character
		{strings.Repeat("x", 10), 3, "xxx"},
		{"\xed\xa0\x80", 3, "\uFFFD"}, // ToValidUTF8 merges a run of invalid bytes
	} {
		if got := call.Clean(tc.in, tc.max); got != tc.want {
			t.Errorf("call.Clean(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestScrubAddrs_ReplacesIPsAndPortsOnly(t *testing.T) {
	for in, want := range map[string]string{
		"write tcp 127.0.0.1:8080->127.0.0.1:54321: write: broken pipe": "write tcp <addr>-><addr>: write: broken pipe",
		"read tcp [::1]:5000->[2001:db8::1]:443: reset":                 "read tcp <addr>-><addr>: reset",
		"timeout after 1.5s; version 1.2.3":                             "timeout after 1.5s; version 1.2.3",
		"HTTP/1.1 502":                                                  "HTTP/1.1 502",
	} {
		if got := scrubAddrs(in); got != want {
			t.Errorf("scrubAddrs(%q) = %q, want %q", in, got, want)
		}
	}
}

// A tenant's cap may be large, and JSON escapes a control character in six
// bytes: each content attribute still stays within maxContentJSON, so the
// span stays under the collector's receive limit.
func TestContent_EscapesCannotTakeAnAttributePastItsBound(t *testing.T) {
	r := streamedChat()
	r.Stream = false
	r.Content = call.Content{Capture: true, Max: 8 << 20,
		Request: []byte(`{"messages":[{"role":"user","content":"` + strings.Repeat(`\u0001`, 1<<20) + `"}]}`)}
	var in string
	for _, kv := range appendContent(nil, r) {
		if kv.Key == sa.GenAIInputMessages {
			in = kv.Value.AsString()
		}
	}
	if len(in) == 0 || len(in) > maxContentJSON || !utf8.ValidString(in) || !json.Valid([]byte(in)) {
		t.Fatalf("input messages: %d bytes (bound %d), valid UTF-8 %v", len(in), maxContentJSON, utf8.ValidString(in))
	}
}
