package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/loom-gateway/loom/proxy/call"
)

// azureClient is openai-go configured for Azure OpenAI, as an app built on
// it is, with Loom's URL as the Azure endpoint and a Loom key as the
// api-key. The SDK sends a key over plain HTTP only to a loopback address
// it is told is local (WithUnsafeAllowHTTP); a deployed Loom is behind
// HTTPS, where the app needs nothing but the endpoint.
func azureClient(st *stack, key string) openai.Client {
	return openai.NewClient(
		azure.WithEndpoint(st.url, "2024-10-21"),
		azure.WithAPIKey(key),
		azure.WithUnsafeAllowHTTP(),
		option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Timeout: 20 * time.Second}),
	)
}

func TestAzureIngress_OpenAIGoAzureClient_ChatStreamingAndEmbeddings(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := azureClient(st, st.keyA)
	for _, tt := range []struct {
		model, upstreamPath, upstreamModel string
	}{
		// A tenant model on an Azure deployment, and one on an OpenAI one:
		// {name} is the tenant's model name either way.
		{"azure-gpt", "/openai/deployments/gpt35-deploy/chat/completions", ""},
		{"gpt-4o-mini", "/v1/chat/completions", "gpt-4o-mini-2024-07-18"},
	} {
		t.Run(tt.model, func(t *testing.T) {
			seen := st.count()
			resp, err := c.Chat.Completions.New(context.Background(), chatParams(tt.model))
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" {
				t.Fatalf("completion %+v", resp)
			}
			up, _ := st.mock.Last()
			if up.Path != tt.upstreamPath {
				t.Fatalf("upstream path %s", up.Path)
			}
			var sent struct{ Model string }
			_ = json.Unmarshal(up.Body, &sent)
			if tt.upstreamModel != "" && sent.Model != tt.upstreamModel {
				t.Fatalf("upstream model %q", sent.Model)
			}
			if up.Header["api-key"] != "" && up.Header["api-key"] != upstreamSecret || strings.Contains(string(up.Body), st.keyA) {
				t.Fatal("the client's key went upstream")
			}
			rec := st.lastRecord(seen)
			if rec.HTTPRoute != "/openai/deployments/{deployment-id}/chat/completions" || rec.Model != tt.model ||
				rec.Usage.TotalTokens != int64(up.UsageSent.TotalTokens) || rec.Operation != call.OpChat {
				t.Fatalf("record route %s model %s usage %+v", rec.HTTPRoute, rec.Model, rec.Usage)
			}

			seen = st.count()
			p := chatParams(tt.model)
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := c.Chat.Completions.NewStreaming(context.Background(), p)
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			rec = st.lastRecord(seen)
			if acc.Choices[0].Message.Content == "" || acc.Usage.TotalTokens == 0 || acc.Usage.TotalTokens != rec.Usage.TotalTokens || !rec.Stream {
				t.Fatalf("streamed %q usage %d, record %+v", acc.Choices[0].Message.Content, acc.Usage.TotalTokens, rec.Usage)
			}
		})
	}
	seen := st.count()
	emb, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"hello"}},
	})
	if err != nil || len(emb.Data) != 1 {
		t.Fatalf("embeddings: %v", err)
	}
	if rec := st.lastRecord(seen); rec.HTTPRoute != "/openai/deployments/{deployment-id}/embeddings" || rec.Operation != call.OpEmbeddings {
		t.Fatalf("embeddings record %s %s", rec.HTTPRoute, rec.Operation)
	}
	seen = st.count()
	comp, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
		Model:  "gpt-4o",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Say")},
	})
	if err != nil || len(comp.Choices) == 0 {
		t.Fatalf("completions: %v", err)
	}
	if rec := st.lastRecord(seen); rec.HTTPRoute != "/openai/deployments/{deployment-id}/completions" || rec.Operation != call.OpTextCompletion {
		t.Fatalf("completions record %s %s", rec.HTTPRoute, rec.Operation)
	}
}

func TestAzureIngress_BodyWithoutModel_UsesThePathsModel(t *testing.T) {
	st := startStack(t, stackOptions{})
	status, _, body := st.do("POST", "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2025-01-01", "",
		`{"messages":[{"role":"user","content":"hi"}]}`, map[string]string{"api-key": st.keyA})
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	up, _ := st.mock.Last()
	var sent struct{ Model string }
	if err := json.Unmarshal(up.Body, &sent); err != nil || sent.Model != "gpt-4o-mini-2024-07-18" {
		t.Fatalf("upstream body %s", up.Body)
	}
}

func TestAzureIngress_Refusals(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := azureClient(st, st.keyA)
	_, err := c.Chat.Completions.New(context.Background(), chatParams("globex-model"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Fatalf("another tenant's model: %v", err)
	}
	bad := azureClient(st, "sk-loom-not-a-key")
	_, err = bad.Chat.Completions.New(context.Background(), chatParams("azure-gpt"))
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("bad key: %v", err)
	}
	for _, tt := range []struct {
		path   string
		status int
		code   string
	}{
		{"/openai/deployments/azure-gpt/chat/completions", 400, "missing_api_version"},
		{"/openai/deployments/azure-gpt/images/generations?api-version=1", 404, "unknown_url"},
		{"/openai/deployments/azure-gpt?api-version=1", 404, "unknown_url"},
		{"/openai/deployments/nope/chat/completions?api-version=1", 404, "model_not_found"},
	} {
		status, _, body := st.do("POST", tt.path, "", `{"messages":[{"role":"user","content":"hi"}]}`, map[string]string{"api-key": st.keyA})
		var e struct{ Error struct{ Code string } }
		_ = json.Unmarshal(body, &e)
		if status != tt.status || e.Error.Code != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.path, status, body, tt.status, tt.code)
		}
	}
}

// Azure's v1 API is OpenAI's under /openai/v1: a plain OpenAI client with
// that base URL works too.
func TestAzureIngress_V1Paths(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := openai.NewClient(option.WithBaseURL(st.url+"/openai/v1/"), option.WithAPIKey(st.keyA), option.WithMaxRetries(0))
	seen := st.count()
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("gpt-4o")); err != nil {
		t.Fatal(err)
	}
	if rec := st.lastRecord(seen); rec.HTTPRoute != "/openai/v1/chat/completions" {
		t.Fatalf("route %s", rec.HTTPRoute)
	}
	page, err := c.Models.List(context.Background())
	if err != nil || len(page.Data) != 4 {
		t.Fatalf("models: %v", err)
	}
}

// openai-go's Azure client sends the Responses API to
// /openai/responses?api-version=..., the deployment as the body's model.
func TestAzureIngress_OpenAIGoAzureClient_Responses(t *testing.T) {
	st, up := startResponsesStack(t)
	c := azureClient(st, st.keyA)
	seen := st.count()
	resp, err := c.Responses.New(context.Background(), responseParams("azure-gpt"), replay("nonstream-reasoning-tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	sent := up.last()
	if sent.Path != "/openai/v1/responses" || sent.Query != "" {
		t.Fatalf("upstream got %s?%s", sent.Path, sent.Query)
	}
	rec := st.lastRecord(seen)
	if rec.HTTPRoute != "/openai/responses" || rec.Usage.ReasoningTokens != 128 || string(rec.ResponseID) != resp.ID {
		t.Fatalf("record route %s usage %+v id %q", rec.HTTPRoute, rec.Usage, rec.ResponseID)
	}
	got, err := c.Responses.Get(context.Background(), resp.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != resp.ID {
		t.Fatalf("get through the Azure path: %v", err)
	}
	if sent = up.last(); sent.Path != "/openai/v1/responses/"+resp.ID || strings.Contains(sent.Query, "api-version") {
		t.Fatalf("lookup went to %s?%s", sent.Path, sent.Query)
	}
}

// Anthropic SDKs send their key as x-api-key.
func TestAuthenticate_XAPIKeyHeader(t *testing.T) {
	st := startStack(t, stackOptions{})
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`
	if status, _, got := st.do("POST", "/v1/chat/completions", "", body, map[string]string{"x-api-key": st.keyA}); status != 200 {
		t.Fatalf("x-api-key: %d %s", status, got)
	}
	up, _ := st.mock.Last()
	if _, ok := up.Header["x-api-key"]; ok {
		t.Fatal("the client's x-api-key went upstream")
	}
	if status, _, _ := st.do("POST", "/v1/chat/completions", "", body, map[string]string{"x-api-key": "sk-loom-nope"}); status != 401 {
		t.Fatalf("bad x-api-key: %d", status)
	}
}
