package tracing

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
)

// FuzzRecord feeds records with random bytes in every string and byte
// field, and random numbers, through the whole tracer: the encoder, the
// spool and the shipper, into a collector that decodes with the official
// OTLP types: no record may panic, fail to decode, or be refused. CI runs it briefly
// (make test); the seeds below run with every `go test`.
func FuzzRecord(f *testing.F) {
	addFuzzSeeds(f)

	col := &fakeCollector{limit: 4 << 20, discard: true}
	tr := newCollectorTracer(f, col)
	f.Cleanup(func() { _ = tr.Shutdown(context.Background()) })

	f.Fuzz(func(t *testing.T, method, route, model, upstreamModel, tenant, provider, reason string,
		id, request, response []byte, errMsg string, n int64, x float64, flags uint16) {
		r := fuzzedRecord(method, route, model, upstreamModel, tenant, provider, reason, id, request, response, errMsg, n, x, flags)
		tr.Record(r)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tr.Flush(ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
		if errs := col.decodeErrors(); len(errs) > 0 {
			t.Fatalf("OTLP encoding failed: %v", errs[0])
		}
		if st := tr.Stats(); st.Dropped != 0 || st.Spool.DiskBytes != 0 {
			t.Fatalf("spans dropped or stuck: %+v", st)
		}
	})
}

// addFuzzSeeds adds the seeds of FuzzRecord and FuzzEncode: a normal call,
// and hostile bytes in every field.
func addFuzzSeeds(f *testing.F) {
	f.Add("POST", "/v1/chat/completions", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "acme", "openai", "stop",
		[]byte("chatcmpl-1"), []byte(`{"messages":[{"role":"user","content":"hi"}]}`),
		[]byte(`{"choices":[{"message":{"content":"hello"},"finish_reason":"stop"}]}`), "connection reset",
		int64(200), 0.5, uint16(0))
	f.Add("POST", "/\xff", "\xc3", "", "", "", "", []byte{0xed, 0xa0, 0x80}, []byte("not json"), []byte(nil),
		"write tcp 127.0.0.1:1->127.0.0.1:2: broken pipe", int64(413), math.NaN(), uint16(0xffff))
	f.Add("_OTHER", strings.Repeat("/\xfe", 3000), strings.Repeat("m", 5000), "u\x00", "t\xff", "p\x80", "s\xff\xfe",
		[]byte(strings.Repeat("\xff", 2000)),
		[]byte(`{"messages":[{"role":"`+strings.Repeat("r", 3000)+`","name":"\ud800","content":[{"type":"text","text":"a"},{"type":"`+strings.Repeat("t", 400)+`"}],"tool_calls":[{"id":"`+strings.Repeat("i", 2000)+`","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"x","content":"r"}]}`),
		[]byte(`{"choices":[{"text":"`+strings.Repeat("é", 3000)+`"},{"message":{"tool_calls":[{"id":"1"}]}}]}`),
		strings.Repeat("\xff", 3000), int64(-1), math.Inf(1), uint16(0x5555))
	f.Add("GET", "/v1/models/{model}", "", "", "", "", "", []byte{}, []byte(`{"prompt":["a","\u0000"],"input":"x"}`),
		[]byte(`{}`), "", int64(math.MaxInt64), math.Copysign(0, -1), uint16(0x00f0))
	f.Add("POST", "/v1/embeddings", "e", "text-embedding-3-small", "acme", "azure.ai.openai", "embeddings",
		[]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"), []byte(`{"input":["a","b"]}`), []byte(`{}`),
		"", int64(1764000000000000000), 0.0, uint16(0x1a7))
}

// fuzzedRecord is a record with the fuzzer's values in every field.
func fuzzedRecord(method, route, model, upstreamModel, tenant, provider, reason string,
	id, request, response []byte, errMsg string, n int64, x float64, flags uint16) *call.Record {
	t0 := time.Unix(0, n&(1<<62-1))
	r := &call.Record{
		Operation: call.Operation(reason), TenantID: tenant, KeyID: tenant + provider, Model: model,
		Deployment: provider + model, Provider: provider, UpstreamModel: upstreamModel,
		ServerAddress: errMsg, ServerPort: int(n), Stream: flags&1 != 0, UsageRequested: flags&2 != 0,
		Params: call.Params{Temperature: &x, TopP: &x, MaxTokens: &n, N: &n, Seed: &n,
			EncodingFormat: reason, RequestBodyBytes: int(n)},
		HTTPMethod: method, HTTPRoute: route, TraceParent: id,
		Status: int(n), UpstreamStatus: int(n >> 3), ResponseID: id, ResponseModel: request,
		FinishReasons: []string{reason, errMsg, string(id)},
		Usage:         call.Usage{InputTokens: n, OutputTokens: -n, TotalTokens: n, HasCached: flags&4 != 0, HasReasoning: flags&8 != 0},
		UsageSource:   call.UsageSource(provider), Chunks: int(n), ChunksSent: int(n), UpstreamBytes: n, ClientBytes: n,
		Start: t0, End: t0.Add(time.Duration(n)), Overhead: time.Duration(n),
		Outcome: call.Outcome(reason), ErrorType: errMsg, ErrorMessage: errMsg,
		ClientDisconnected: flags&16 != 0, Drained: flags&32 != 0, DrainComplete: flags&64 != 0,
	}
	if flags&128 != 0 {
		r.UpstreamStart, r.FirstChunk, r.UpstreamEnd = t0, t0.Add(time.Duration(x)), t0.Add(time.Millisecond)
	}
	if flags&256 != 0 {
		r.Content = call.Content{Capture: true, Max: int(flags >> 9 << 4), Request: request, Response: response,
			Choices: [][]byte{id, response}, Truncated: flags&512 != 0}
	}
	return r
}
