package tap

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

func TestObserve_RecordedUnaryBodies(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		id, model string
		reasons   []string
		in, out   int64
		errorType string
		hasUsage  bool
	}{
		{name: "parallel tool calls", file: "openai/chat-completion-parallel-tool-calls.json", model: "gpt-4o-2024-08-06",
			reasons: []string{"tool_calls"}, in: 149, out: 60, hasUsage: true},
		{name: "n3", file: "openai/chat-completion-n3-choices.json", model: "gpt-4o-2024-08-06",
			reasons: []string{"stop", "stop", "stop"}, hasUsage: true},
		{name: "finish length", file: "openai/chat-completion-finish-length.json", model: "gpt-4o-2024-08-06",
			reasons: []string{"length"}, hasUsage: true},
		{name: "embeddings", file: "openai/embeddings-base64.json", model: "text-embedding-ada-002", in: 8, hasUsage: true},
		{name: "azure content filter", file: "azure/chat-completion-finish-content-filter.json", id: "chatcmpl-9HpyGSWv1hoKdGaUaiFhfxzTEVlZo",
			model: "gpt-35-turbo", reasons: []string{"content_filter"}, hasUsage: true},
		{name: "openai 404", file: "openai/error-404-model-not-found.json", errorType: "model_not_found"},
		{name: "azure 404", file: "azure/error-404-deployment-not-found.json", errorType: "DeploymentNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var r call.Record
			c := Observe(&r, b)
			if !c.Valid {
				t.Fatal("not read as an object")
			}
			if tt.id != "" && string(r.ResponseID) != tt.id {
				t.Errorf("id %q", r.ResponseID)
			}
			if tt.model != "" && string(r.ResponseModel) != tt.model {
				t.Errorf("model %q", r.ResponseModel)
			}
			if tt.reasons != nil && !slices.Equal(r.FinishReasons, tt.reasons) {
				t.Errorf("finish reasons %v", r.FinishReasons)
			}
			if (r.UsageSource == call.UsageProvider) != tt.hasUsage || (tt.in != 0 && r.Usage.InputTokens != tt.in) || (tt.out != 0 && r.Usage.OutputTokens != tt.out) {
				t.Errorf("usage %+v source %q", r.Usage, r.UsageSource)
			}
			if c.Error != (tt.errorType != "") || r.ErrorType != tt.errorType {
				t.Errorf("error %v type %q", c.Error, r.ErrorType)
			}
		})
	}
}

func TestObserve_UsageOnlyChunkAndSpan(t *testing.T) {
	chunk := []byte(`{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}}`)
	var r call.Record
	c := Observe(&r, chunk)
	if !c.UsageOnly || string(chunk[:c.UsageStart])+string(chunk[c.UsageEnd:]) != `{"id":"c","choices":[]}` {
		t.Fatalf("chunk %+v", c)
	}
	if !r.Usage.HasCached || r.Usage.CachedInputTokens != 1 || r.Usage.TotalTokens != 3 {
		t.Fatalf("usage %+v", r.Usage)
	}
	if c := Observe(&r, []byte(`{"choices":[{"index":0,"delta":{}}],"usage":null}`)); c.UsageOnly || c.UsageEnd == 0 {
		t.Fatalf("usage:null chunk %+v", c)
	}
}

func TestObserve_AllocationFree(t *testing.T) {
	chunk := []byte(`{"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":"stop"}]}`)
	var r call.Record
	Observe(&r, chunk)
	if n := testing.AllocsPerRun(200, func() { Observe(&r, chunk) }); n != 0 {
		t.Fatalf("%v allocs per chunk", n)
	}
}
