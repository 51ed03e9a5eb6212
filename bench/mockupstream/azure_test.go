package mockupstream

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
)

// startTCPMock serves on a loopback TCP port: openai-go's Azure client sends credentials over plain HTTP
// only to loopback, and dials it itself.
func startTCPMock(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	srv := New(cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
	})
	return srv, "http://" + ln.Addr().String()
}

const azureAPIVersion = "2024-10-21"

func TestAzure_SDK_ChatCompletionsEmbeddings(t *testing.T) {
	srv, base := startTCPMock(t, Config{APIKey: "azure-key"})
	client := openai.NewClient(azure.WithEndpoint(base, azureAPIVersion), azure.WithAPIKey("azure-key"),
		azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	ctx := context.Background()

	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "my-gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Model != "my-gpt-4o" || chat.Choices[0].Message.Content != "tok1 tok2 tok3 tok4 tok5 " {
		t.Errorf("chat %s", chat.RawJSON())
	}
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "my-gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != "tok1 tok2 tok3 tok4 tok5 " {
		t.Errorf("stream %v: %+v", err, acc.Choices)
	}

	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "my-instruct",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Say this is a test")}})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Model != "my-instruct" || comp.Choices[0].Text != "tok1 tok2 tok3 tok4 tok5 " || comp.Usage.PromptTokens != 4 {
		t.Errorf("completion %s", comp.RawJSON())
	}

	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "my-embedder",
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello")}})
	if err != nil {
		t.Fatal(err)
	}
	if emb.Model != "my-embedder" || len(emb.Data) != 1 || len(emb.Data[0].Embedding) != defaultDimensions {
		t.Errorf("embeddings %s", emb.RawJSON())
	}

	paths := map[string]bool{}
	for _, r := range srv.Requests() {
		if r.Query != "api-version="+azureAPIVersion || r.Header["api-key"] != "azure-key" || r.Header["authorization"] != "" {
			t.Errorf("%s %s?%s headers %v", r.Method, r.Path, r.Query, r.Header)
		}
		paths[r.Path] = true
	}
	for _, p := range []string{"/openai/deployments/my-gpt-4o/chat/completions",
		"/openai/deployments/my-instruct/completions", "/openai/deployments/my-embedder/embeddings"} {
		if !paths[p] {
			t.Errorf("no request to %s (got %v)", p, paths)
		}
	}
}

func TestAzure_EveryOperation_NeedsAPIVersionAndKey(t *testing.T) {
	m := startMock(t, Config{APIKey: "k"})
	for _, op := range []struct{ path, body string }{
		{"chat/completions", chatBody},
		{"completions", `{"prompt":"hi"}`},
		{"embeddings", `{"input":"hi"}`},
	} {
		t.Run(op.path, func(t *testing.T) {
			path := "/openai/deployments/dep/" + op.path
			if r := m.mustDo(t, "POST", path+"?api-version="+azureAPIVersion, op.body, "api-key", "k"); r.status != 200 ||
				decode(t, string(r.body))["model"] != "dep" || r.header["apim-request-id"] == "" {
				t.Errorf("served: %d %s", r.status, r.body)
			}
			if r := m.mustDo(t, "POST", path, op.body, "api-key", "k"); r.status != 404 || errorKeys(t, r.body)["code"] != "404" {
				t.Errorf("without api-version: %d %s", r.status, r.body)
			}
			if r := m.mustDo(t, "POST", path+"?api-version="+azureAPIVersion, op.body, "api-key", "nope"); r.status != 401 {
				t.Errorf("wrong key: %d %s", r.status, r.body)
			}
		})
	}
}
