package server_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/loom-gateway/loom/proxy/config"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
	"github.com/loom-gateway/loom/proxy/tracing"
	"github.com/loom-gateway/loom/proxy/tracing/tracingtest"
)

// Real calls through Loom become spans whose tokens are what the upstream
// sent, and no span anywhere carries a client key or the upstream
// credential.
func TestTracing_SpansCarryUpstreamUsageAndNoSecrets(t *testing.T) {
	tr, exp := newMemoryTracer(t)
	st := startStack(t, stackOptions{sink: tr})
	calls := []struct {
		key, body string
		header    map[string]string
	}{
		{st.keyA, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, nil},
		{st.keyA, `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil},
		{st.keyB, `{"model":"globex-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, nil},
		{st.keyA, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, map[string]string{"x-mock-status": "429"}},
		{"sk-loom-not-a-real-key", `{"model":"gpt-4o","messages":[]}`, nil},
	}
	for _, c := range calls {
		st.do("POST", "/v1/chat/completions", c.key, c.body, c.header)
	}
	// The call with a wrong key is refused before any tenant is known: it
	// is counted in metrics, not recorded (ops_test.go).
	st.waitRecords(len(calls) - 1)
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	var servers, clients []tracetest.SpanStub
	for _, s := range spans {
		for _, kv := range s.Attributes {
			v := kv.Value.String()
			for _, secret := range []string{st.keyA, st.keyB, "sk-loom-not-a-real-key", upstreamSecret} {
				if strings.Contains(v, secret) {
					t.Fatalf("span %q attribute %s carries a secret", s.Name, kv.Key)
				}
			}
		}
		switch s.SpanKind {
		case trace.SpanKindServer:
			servers = append(servers, s)
		case trace.SpanKindClient:
			clients = append(clients, s)
		}
	}
	if len(servers) != 4 || len(clients) != 4 {
		t.Fatalf("want 4 SERVER and 4 CLIENT spans, got %d and %d", len(servers), len(clients))
	}
	got := map[string]int64{}
	for _, c := range clients {
		a := attrMap(c.Attributes)
		if a[sa.HTTPResponseStatusCode].AsInt64() == 200 {
			got[a[sa.GenAIResponseID].AsString()] = a[sa.GenAIUsageInputTokens].AsInt64()*1000 + a[sa.GenAIUsageOutputTokens].AsInt64()
		}
	}
	sent := st.mock.Requests()
	matched := 0
	for _, r := range sent {
		if r.UsageSent == nil {
			continue
		}
		for _, v := range got {
			if v == int64(r.UsageSent.PromptTokens)*1000+int64(r.UsageSent.CompletionTokens) {
				matched++
				break
			}
		}
	}
	if len(got) != 3 || matched != 3 {
		t.Fatalf("CLIENT span usage %v does not match what the mock sent (%d matched)", got, matched)
	}
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func newMemoryTracer(t *testing.T) (*tracing.Tracer, *tracingtest.Collector) {
	t.Helper()
	exp := &tracingtest.Collector{}
	cfg := config.DefaultTracing
	cfg.Spool.Dir = t.TempDir()
	tr, err := tracing.New(context.Background(), cfg, tracing.Options{Send: exp.Send})
	if err != nil {
		t.Fatal(err)
	}
	return tr, exp
}

// clientSpans flushes tr and returns the CLIENT spans' attributes in order.
func clientSpans(t *testing.T, tr *tracing.Tracer, exp *tracingtest.Collector) []map[attribute.Key]attribute.Value {
	t.Helper()
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []map[attribute.Key]attribute.Value
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindClient {
			out = append(out, attrMap(s.Attributes))
		}
	}
	return out
}

func TestTracing_ContentCapturedOnlyForTenantsThatOptIn(t *testing.T) {
	tr, exp := newMemoryTracer(t)
	st := startStack(t, stackOptions{sink: tr, contentMax: 1 << 10})
	st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"héllo"}]}]}`, nil)
	_, _, streamed := st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	st.do("POST", "/v1/chat/completions", st.keyB, `{"model":"globex-model","messages":[{"role":"user","content":"secret plans"}]}`, nil)
	st.waitRecords(3)
	spans := clientSpans(t, tr, exp)
	if len(spans) != 3 {
		t.Fatalf("%d CLIENT spans", len(spans))
	}
	in := spans[0][sa.GenAIInputMessages].AsString()
	if in != `[{"role":"system","parts":[{"type":"text","content":"be brief"}]},{"role":"user","parts":[{"type":"text","content":"héllo"}]}]` {
		t.Errorf("input messages: %s", in)
	}
	out := spans[0][sa.GenAIOutputMessages].AsString()
	if !strings.HasPrefix(out, `[{"role":"assistant","parts":[{"type":"text","content":"`) || !strings.Contains(out, `"finish_reason":"stop"`) {
		t.Errorf("output messages: %s", out)
	}
	// The streamed output is the concatenation of the deltas the client got.
	var text strings.Builder
	for _, ev := range sseEvents(streamed) {
		if i := strings.Index(string(ev), `"content":"`); i >= 0 {
			rest := string(ev)[i+len(`"content":"`):]
			text.WriteString(rest[:strings.Index(rest, `"`)])
		}
	}
	if want := `"content":"` + text.String() + `"`; text.Len() == 0 || !strings.Contains(spans[1][sa.GenAIOutputMessages].AsString(), want) {
		t.Errorf("streamed output %s lacks %s", spans[1][sa.GenAIOutputMessages].AsString(), want)
	}
	if _, ok := spans[2][sa.GenAIInputMessages]; ok {
		t.Error("content captured for a tenant that did not opt in")
	}
}

func TestTracing_ContentCapCutsOnRuneBoundaries(t *testing.T) {
	tr, exp := newMemoryTracer(t)
	st := startStack(t, stackOptions{sink: tr, contentMax: 7})
	st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"first"},{"role":"user","content":"ééééé"}]}`, nil)
	st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o-mini","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, nil)
	st.waitRecords(2)
	spans := clientSpans(t, tr, exp)
	in := spans[0][sa.GenAIInputMessages].AsString()
	if !strings.Contains(in, `"content":"ééé"`) || strings.Contains(in, "first") || !spans[0][sa.ContentTruncated].AsBool() {
		t.Errorf("input not cut to the latest 7 bytes on a rune boundary: %s", in)
	}
	for _, s := range spans {
		for _, k := range []attribute.Key{sa.GenAIInputMessages, sa.GenAIOutputMessages} {
			if v := s[k].AsString(); !utf8.ValidString(v) {
				t.Errorf("%s is not valid UTF-8: %q", k, v)
			}
		}
	}
	if !spans[1][sa.ContentTruncated].AsBool() {
		t.Error("streamed output over the cap not marked truncated")
	}
}
