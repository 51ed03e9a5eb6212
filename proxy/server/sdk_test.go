package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/loom-gateway/loom/proxy/call"
)

func sdkClient(st *stack, key string, opts ...option.RequestOption) openai.Client {
	base := []option.RequestOption{
		option.WithBaseURL(st.url + "/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Timeout: 20 * time.Second}),
	}
	return openai.NewClient(append(base, opts...)...)
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello in five words")},
	}
}

func TestSDK_ChatNonStreaming(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := sdkClient(st, st.keyA)
	seen := st.count()
	var raw *http.Response
	resp, err := c.Chat.Completions.New(context.Background(), chatParams("gpt-4o-mini"), option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens == 0 {
		t.Fatalf("unexpected completion %+v", resp)
	}
	if raw.Header.Get("X-Loom-Overhead-Ms") == "" || raw.Header.Get("X-Request-Id") == "" {
		t.Fatalf("headers %v: want Loom's overhead and the upstream's request id", raw.Header)
	}
	if raw.Header.Get("Openai-Organization") != "" {
		t.Fatal("the upstream's organisation header reached the client")
	}
	up, _ := st.mock.Last()
	var sent struct{ Model string }
	_ = json.Unmarshal(up.Body, &sent)
	if sent.Model != "gpt-4o-mini-2024-07-18" {
		t.Fatalf("upstream got model %q, want the deployment's name", sent.Model)
	}
	if up.Header["authorization"] != "Bearer "+upstreamSecret {
		t.Fatalf("upstream authorization %q: want the deployment's credential", up.Header["authorization"])
	}
	rec := st.lastRecord(seen)
	if rec.Usage.TotalTokens != int64(up.UsageSent.TotalTokens) || string(rec.ResponseID) != resp.ID ||
		!slices.Equal(rec.FinishReasons, []string{"stop"}) || rec.Overhead <= 0 {
		t.Fatalf("record %+v", rec)
	}
}

func TestSDK_StreamingWithAndWithoutUsage(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := sdkClient(st, st.keyA)
	for _, include := range []bool{true, false} {
		seen := st.count()
		p := chatParams("gpt-4o")
		if include {
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		stream := c.Chat.Completions.NewStreaming(context.Background(), p)
		var acc openai.ChatCompletionAccumulator
		usageChunks := 0
		for stream.Next() {
			ch := stream.Current()
			acc.AddChunk(ch)
			if ch.JSON.Usage.Valid() && ch.Usage.TotalTokens > 0 {
				usageChunks++
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		up, _ := st.mock.Last()
		rec := st.lastRecord(seen)
		if include != (usageChunks == 1) {
			t.Fatalf("include_usage=%v but client saw %d usage chunks", include, usageChunks)
		}
		if acc.Choices[0].Message.Content == "" {
			t.Fatal("no content accumulated")
		}
		if !up.IncludeUsage || rec.Usage.TotalTokens != int64(up.UsageSent.TotalTokens) {
			t.Fatalf("include=%v: upstream asked %v, tap usage %+v, mock sent %+v", include, up.IncludeUsage, rec.Usage, up.UsageSent)
		}
		if include && acc.Usage.TotalTokens != rec.Usage.TotalTokens {
			t.Fatalf("client usage %d, tap %d", acc.Usage.TotalTokens, rec.Usage.TotalTokens)
		}
	}
}

func TestSDK_StreamedToolCallsAreReassembled(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := sdkClient(st, st.keyA)
	p := chatParams("gpt-4o-mini")
	p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})}
	seen := st.count()
	stream := c.Chat.Completions.NewStreaming(context.Background(), p)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	calls := acc.Choices[0].Message.ToolCalls
	if len(calls) != 1 || calls[0].Function.Name != "get_weather" {
		t.Fatalf("tool calls %+v", calls)
	}
	var args map[string]any
	if err := json.Unmarshal([]byte(calls[0].Function.Arguments), &args); err != nil {
		t.Fatalf("arguments %q do not reassemble to JSON: %v", calls[0].Function.Arguments, err)
	}
	if rec := st.lastRecord(seen); !slices.Equal(rec.FinishReasons, []string{"tool_calls"}) {
		t.Fatalf("finish reasons %v", rec.FinishReasons)
	}
}

func TestSDK_TwoChoices(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := sdkClient(st, st.keyA)
	p := chatParams("gpt-4o-mini")
	p.N = openai.Int(2)
	seen := st.count()
	resp, err := c.Chat.Completions.New(context.Background(), p)
	if err != nil || len(resp.Choices) != 2 {
		t.Fatalf("n=2: %v, %d choices", err, len(resp.Choices))
	}
	stream := c.Chat.Completions.NewStreaming(context.Background(), p)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || len(acc.Choices) != 2 {
		t.Fatalf("streamed n=2: %v, %d choices", err, len(acc.Choices))
	}
	recs := st.waitRecords(seen + 2)
	for _, rec := range recs[seen:] {
		if !slices.Equal(rec.FinishReasons, []string{"stop", "stop"}) || *rec.Params.N != 2 {
			t.Fatalf("record finish reasons %v", rec.FinishReasons)
		}
	}
}

func TestSDK_EmbeddingsAndModels(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := sdkClient(st, st.keyA)
	seen := st.count()
	for _, format := range []openai.EmbeddingNewParamsEncodingFormat{openai.EmbeddingNewParamsEncodingFormatFloat, openai.EmbeddingNewParamsEncodingFormatBase64} {
		emb, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model:          "text-embedding-3-small",
			Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"hello", "world"}},
			EncodingFormat: format,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(emb.Data) != 2 || len(emb.Data[0].Embedding) == 0 || emb.Usage.PromptTokens == 0 {
			t.Fatalf("%s: embeddings %+v", format, emb)
		}
	}
	if rec := st.waitRecords(seen + 2)[seen]; rec.Operation != call.OpEmbeddings || rec.Usage.InputTokens == 0 {
		t.Fatalf("embeddings record %+v", rec)
	}
	page, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if want := []string{"azure-gpt", "gpt-4o", "gpt-4o-mini", "text-embedding-3-small"}; !slices.Equal(ids, want) {
		t.Fatalf("models %v, want exactly the tenant's %v", ids, want)
	}
	if m, err := c.Models.Get(context.Background(), "gpt-4o"); err != nil || m.ID != "gpt-4o" {
		t.Fatalf("get model: %v %+v", err, m)
	}
	other := sdkClient(st, st.keyB)
	page, err = other.Models.List(context.Background())
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "globex-model" {
		t.Fatalf("globex sees %+v (%v)", page, err)
	}
}

func TestSDK_TypedErrors(t *testing.T) {
	st := startStack(t, stackOptions{})
	tests := []struct {
		name   string
		key    string
		model  string
		status int
		code   string
	}{
		{"bad key", "sk-loom-not-a-key", "gpt-4o-mini", 401, "invalid_api_key"},
		{"unknown model", st.keyA, "gpt-9", 404, "model_not_found"},
		{"another tenant's model", st.keyA, "globex-model", 404, "model_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sdkClient(st, tt.key)
			_, err := c.Chat.Completions.New(context.Background(), chatParams(tt.model))
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("want *openai.Error, got %T %v", err, err)
			}
			if apiErr.StatusCode != tt.status || apiErr.Code != tt.code {
				t.Fatalf("status %d code %q, want %d %q", apiErr.StatusCode, apiErr.Code, tt.status, tt.code)
			}
		})
	}
}

func TestSDK_AzureDeploymentPathAndKey(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := sdkClient(st, st.keyA)
	resp, err := c.Chat.Completions.New(context.Background(), chatParams("azure-gpt"))
	if err != nil {
		t.Fatal(err)
	}
	up, _ := st.mock.Last()
	if up.Path != "/openai/deployments/gpt35-deploy/chat/completions" || up.Query != "api-version=2024-10-21" {
		t.Fatalf("azure request went to %s?%s", up.Path, up.Query)
	}
	if up.Header["api-key"] != upstreamSecret || up.Header["authorization"] != "" {
		t.Fatalf("azure credentials: api-key %q authorization %q", up.Header["api-key"], up.Header["authorization"])
	}
	if len(resp.Choices) != 1 {
		t.Fatalf("choices %d", len(resp.Choices))
	}
	// Azure SDKs authenticate with the api-key header.
	status, _, body := st.do("POST", "/v1/chat/completions", "", `{"model":"azure-gpt","messages":[{"role":"user","content":"x"}]}`,
		map[string]string{"api-key": st.keyA})
	if status != 200 {
		t.Fatalf("api-key auth: %d %s", status, body)
	}
}
