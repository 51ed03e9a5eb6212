package tap

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

// responsesEvents reads a recorded Responses stream as the data of each
// event: an .sse file as framed, a .chunks.jsonl one line per event.
func responsesEvents(t testing.TB, file string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", "openai-responses", file))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		switch {
		case bytes.HasPrefix(line, []byte("data: ")):
			out = append(out, line[len("data: "):])
		case filepath.Ext(file) == ".jsonl" && len(bytes.TrimSpace(line)) > 0:
			out = append(out, line)
		}
	}
	return out
}

func TestObserveResponseEvent_RecordedStreams(t *testing.T) {
	tests := []struct {
		file              string
		id, model         string
		in, cached, out   int64
		reasoning         int64
		reason, errorType string
		usage             bool
	}{
		{file: "stream-text.sse", id: "resp_681e3e15125c8191afb05fabbf3b86d6047f076151f76bcc", model: "gpt-4.1-2025-04-14",
			in: 9, out: 12, reason: "stop", usage: true},
		{file: "stream-text-cached-tokens.sse", id: "resp_6866cf894080819eb7bfe6d71ac9b5f60f7302bc38f74547", model: "gpt-4o-2024-08-06",
			in: 1515, cached: 1390, out: 8, reason: "stop", usage: true},
		{file: "stream-text-obfuscation.sse", id: "resp_0e054c0b7ea15b350069cbcbfbc338819898e8a9ab6185e5d3", model: "gpt-4.1-nano-2025-04-14",
			in: 14, out: 9, reason: "stop", usage: true},
		{file: "stream-function-call.sse", id: "resp_682c9421a0b881918d920a1c0ad7a6250b603284be451166", model: "gpt-4.1-2025-04-14",
			in: 75, out: 23, reason: "tool_calls", usage: true},
		{file: "stream-reasoning-summary.sse", id: "resp_6877c00e3380819d83a86eb2b2b4fe17014f759afd995257", model: "o4-mini-2025-04-16",
			in: 20, out: 166, reasoning: 128, reason: "stop", usage: true},
		{file: "stream-incomplete-max-output-tokens.sse", id: "resp_6866d2dec420819c92534dcf75e475120847a84b87aad89c", model: "gpt-4o-2024-08-06",
			reason: "length", usage: true},
		{file: "stream-error-insufficient-quota.chunks.jsonl", id: "resp_05500b38c2cd9bfc00691c7c9d222481a3b595421266dab424",
			model: "gpt-5-nano-2025-08-07", errorType: "insufficient_quota"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var r call.Record
			errs := 0
			for _, data := range responsesEvents(t, tt.file) {
				c := ObserveResponseEvent(&r, data)
				if !c.Valid {
					t.Fatalf("event not read: %.80s", data)
				}
				if c.Error {
					errs++
				}
			}
			if string(r.ResponseID) != tt.id || string(r.ResponseModel) != tt.model {
				t.Errorf("id %q model %q", r.ResponseID, r.ResponseModel)
			}
			u := r.Usage
			if (r.UsageSource == call.UsageProvider) != tt.usage || u.InputTokens != tt.in || u.OutputTokens != tt.out ||
				u.CachedInputTokens != tt.cached || u.ReasoningTokens != tt.reasoning || u.TotalTokens != tt.in+tt.out ||
				(tt.usage && (!u.HasCached || !u.HasReasoning)) {
				t.Errorf("usage %+v source %q", u, r.UsageSource)
			}
			if tt.reason != "" && !slices.Equal(r.FinishReasons, []string{tt.reason}) {
				t.Errorf("finish reasons %v", r.FinishReasons)
			}
			if r.ErrorType != tt.errorType || (errs > 0) != (tt.errorType != "") {
				t.Errorf("error type %q, %d error events", r.ErrorType, errs)
			}
			if tt.usage && r.OutputPieces == 0 {
				t.Error("no output delta counted")
			}
		})
	}
}

func TestObserveResponse_RecordedBodies(t *testing.T) {
	tests := []struct {
		file                string
		in, cached, out, rs int64
		reason, errorType   string
	}{
		{file: "nonstream-cached-tokens.json", in: 1515, cached: 1390, out: 8, reason: "stop"},
		{file: "nonstream-reasoning-tokens.json", in: 54, out: 164, rs: 128, reason: "stop"},
		{file: "nonstream-incomplete-cache-write-tokens.json", in: 1220, out: 100, rs: 54, reason: "length"},
		{file: "error-insufficient-quota.json", errorType: "insufficient_quota"},
		{file: "error-401-invalid-api-key.json", errorType: "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", "openai-responses", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var r call.Record
			c := ObserveResponse(&r, b)
			u := r.Usage
			if !c.Valid || u.InputTokens != tt.in || u.CachedInputTokens != tt.cached || u.OutputTokens != tt.out || u.ReasoningTokens != tt.rs {
				t.Errorf("valid %v usage %+v", c.Valid, u)
			}
			if tt.reason != "" && !slices.Equal(r.FinishReasons, []string{tt.reason}) {
				t.Errorf("finish reasons %v", r.FinishReasons)
			}
			if c.Error != (tt.errorType != "") || r.ErrorType != tt.errorType {
				t.Errorf("error %v type %q", c.Error, r.ErrorType)
			}
			if tt.errorType == "" && (len(r.ResponseID) == 0 || len(r.ResponseModel) == 0) {
				t.Errorf("id %q model %q", r.ResponseID, r.ResponseModel)
			}
		})
	}
}

func TestObserveResponseEvent_LegacyFlatErrorEvent(t *testing.T) {
	var r call.Record
	if c := ObserveResponseEvent(&r, []byte(`{"type":"error","code":"server_error","message":"boom"}`)); !c.Error || r.ErrorType != "server_error" {
		t.Fatalf("error %v type %q", c.Error, r.ErrorType)
	}
	r = call.Record{}
	if c := ObserveResponseEvent(&r, []byte(`{"type":"error","message":"boom"}`)); !c.Error || r.ErrorType != "upstream_error" {
		t.Fatalf("error %v type %q", c.Error, r.ErrorType)
	}
}

func TestObserveResponseContent_CapturesOutputTextOnly(t *testing.T) {
	c := call.Content{Capture: true, Max: 1 << 10}
	for _, data := range responsesEvents(t, "stream-text.sse") {
		ObserveResponseContent(&c, data)
	}
	if len(c.Choices) != 1 || string(c.Choices[0]) != "Hello! 🌍 How can I assist you today?" {
		t.Fatalf("captured %q", c.Choices)
	}
}

func TestObserveResponseEvent_NoAllocationsPerEvent(t *testing.T) {
	events := responsesEvents(t, "stream-reasoning-summary.sse")
	var r call.Record
	for _, data := range events { // the record's buffers fill once per call
		ObserveResponseEvent(&r, data)
	}
	allocs := testing.AllocsPerRun(20, func() {
		r.Reset()
		for _, data := range events {
			ObserveResponseEvent(&r, data)
		}
	})
	if allocs > 0 {
		t.Fatalf("%v allocations per stream of %d events", allocs, len(events))
	}
}

func BenchmarkObserveResponseEvent(b *testing.B) {
	events := responsesEvents(b, "stream-text.sse")
	var r call.Record
	b.ReportAllocs()
	for b.Loop() {
		r.Reset()
		for _, data := range events {
			ObserveResponseEvent(&r, data)
		}
	}
}
