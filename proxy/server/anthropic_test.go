package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// startAnthropicStack serves Loom in front of the mock, with an Anthropic
// deployment (model claude-sonnet, upstream claude-sonnet-4-5-20250929)
// beside an OpenAI one (gpt-4o).
func startAnthropicStack(t testing.TB) *stack {
	t.Helper()
	mock := mockupstream.New(mockupstream.Config{APIKey: upstreamSecret, ReplayDir: fixtures})
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mock.Serve(mln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = mock.Shutdown(ctx)
	})
	mockURL := "http://" + mln.Addr().String()
	keyA, hashA, _ := tenant.NewKey()
	keyB, hashB, _ := tenant.NewKey()
	yaml := fmt.Sprintf(`
listen: 127.0.0.1:0
timeouts: {connect: 1s, first_byte: 10s, stream_idle: 10s, drain: 2s, shutdown: 5s}
deployments:
  - {name: mock-openai, provider: openai, base_url: %[1]s/v1, api_key: %[2]s, forward_headers: ["x-mock-*"]}
  - {name: mock-claude, provider: anthropic, base_url: %[1]s/v1, api_key: %[2]s, default_max_tokens: 2048, forward_headers: ["x-mock-*"]}
tenants:
  - id: acme
    keys: [{id: acme-key-1, sha256: %[3]s}]
    content: {capture: true, max_bytes: 4096}
    models:
      - {name: claude-sonnet, deployment: mock-claude, upstream_model: claude-sonnet-4-5-20250929}
      - {name: gpt-4o, deployment: mock-openai}
      - {name: mixed, deployments: [{name: mock-claude, upstream_model: claude-haiku-4-5}, {name: mock-openai, priority: 1, upstream_model: gpt-4o}]}
  - id: globex
    keys: [{id: globex-key-1, sha256: %[4]s}]
    models:
      - {name: globex-model, deployment: mock-openai, upstream_model: gpt-4o}
`, mockURL, upstreamSecret, hashA, hashB)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{t: t, mock: mock, cfg: cfg, keyA: keyA, keyB: keyB, notify: make(chan struct{}, 1)}
	st.serve(server.Options{Sink: call.SinkFunc(st.record)})
	return st
}

// recording is what a recorded Anthropic stream says: its text, each
// tool_use block's input (the joined input_json_delta fragments), its
// usage (input as Anthropic counts it: uncached only) and stop reason.
type recording struct {
	text                                    string
	toolInputs                              []string
	input, cacheRead, cacheCreation, output int64
	stop                                    string
}

func readRecording(t testing.TB, name string) recording {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "anthropic", name))
	if err != nil {
		t.Fatal(err)
	}
	var r recording
	tools := map[int]int{}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		var ev struct {
			Type         string
			Index        int
			Message      struct{ Usage map[string]any }
			ContentBlock struct{ Type string } `json:"content_block"`
			Delta        struct {
				Type, Text  string
				PartialJSON string `json:"partial_json"`
				StopReason  string `json:"stop_reason"`
			}
			Usage map[string]any
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		usage := func(u map[string]any) {
			for k, p := range map[string]*int64{"input_tokens": &r.input, "cache_read_input_tokens": &r.cacheRead,
				"cache_creation_input_tokens": &r.cacheCreation, "output_tokens": &r.output} {
				if v, ok := u[k].(float64); ok {
					*p = int64(v)
				}
			}
		}
		switch ev.Type {
		case "message_start":
			usage(ev.Message.Usage)
		case "content_block_start":
			if ev.ContentBlock.Type == "tool_use" {
				tools[ev.Index] = len(r.toolInputs)
				r.toolInputs = append(r.toolInputs, "")
			}
		case "content_block_delta":
			switch ev.Delta.Type {
			case "text_delta":
				r.text += ev.Delta.Text
			case "input_json_delta":
				r.toolInputs[tools[ev.Index]] += ev.Delta.PartialJSON
			}
		case "message_delta":
			usage(ev.Usage)
			r.stop = ev.Delta.StopReason
		}
	}
	return r
}

func replayAnthropic(name string) option.RequestOption {
	return option.WithHeader("x-mock-replay", "anthropic/"+name)
}

// Recorded Anthropic streams reach openai-go as chat chunks: the text
// reassembles, tool calls reassemble to the recorded input, and usage is
// the recording's (input counting cache reads and writes).
func TestAnthropicDeployment_RecordedStreams_ReachOpenAIGoAsChunks(t *testing.T) {
	st := startAnthropicStack(t)
	c := sdkClient(st, st.keyA)
	for _, name := range []string{"messages-stream-text.sse", "messages-stream-tool-use.sse", "messages-stream-thinking.sse",
		"messages-stream-cache-read.sse", "messages-stream-cache-creation.sse", "messages-stream-delta-usage-cumulative.sse"} {
		t.Run(name, func(t *testing.T) {
			want := readRecording(t, name)
			if want.text == "" || want.output == 0 || (strings.Contains(name, "tool") != (len(want.toolInputs) > 0)) {
				t.Fatalf("recording read as %+v", want)
			}
			seen := st.count()
			p := chatParams("claude-sonnet")
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := c.Chat.Completions.NewStreaming(context.Background(), p, replayAnthropic(name))
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			msg := acc.Choices[0].Message
			if msg.Content != want.text {
				t.Fatalf("text %q\nwant %q", msg.Content, want.text)
			}
			if len(msg.ToolCalls) != len(want.toolInputs) {
				t.Fatalf("%d tool calls, want %d", len(msg.ToolCalls), len(want.toolInputs))
			}
			for i, tc := range msg.ToolCalls {
				var got, exp any
				if err := json.Unmarshal([]byte(tc.Function.Arguments), &got); err != nil {
					t.Fatalf("arguments %q: %v", tc.Function.Arguments, err)
				}
				_ = json.Unmarshal([]byte(want.toolInputs[i]), &exp)
				if fmt.Sprint(got) != fmt.Sprint(exp) {
					t.Fatalf("arguments %v, recorded %v", got, exp)
				}
			}
			prompt := want.input + want.cacheRead + want.cacheCreation
			if acc.Usage.PromptTokens != prompt || acc.Usage.CompletionTokens != want.output {
				t.Fatalf("client usage %+v, recorded prompt %d output %d", acc.Usage, prompt, want.output)
			}
			rec := st.lastRecord(seen)
			if rec.Usage.InputTokens != prompt || rec.Usage.OutputTokens != want.output || rec.UsageSource != call.UsageProvider ||
				rec.Provider != "anthropic" || rec.Deployment != "mock-claude" || rec.Outcome != call.OutcomeOK {
				t.Fatalf("record %s %s %s usage %+v", rec.Provider, rec.Deployment, rec.Outcome, rec.Usage)
			}
			if want.cacheRead > 0 && (!rec.Usage.HasCached || rec.Usage.CachedInputTokens != want.cacheRead) {
				t.Fatalf("cache reads %+v, recorded %d", rec.Usage, want.cacheRead)
			}
			if want.cacheCreation > 0 && (!rec.Usage.HasCacheCreation || rec.Usage.CacheCreationInputTokens != want.cacheCreation) {
				t.Fatalf("cache writes %+v, recorded %d", rec.Usage, want.cacheCreation)
			}
		})
	}
}

func TestAnthropicDeployment_OpenAIGoChat_TranslatedBothWays(t *testing.T) {
	st := startAnthropicStack(t)
	c := sdkClient(st, st.keyA)
	seen := st.count()
	resp, err := c.Chat.Completions.New(context.Background(), chatParams("claude-sonnet"))
	if err != nil {
		t.Fatal(err)
	}
	up, _ := st.mock.Last()
	var sent struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
	}
	_ = json.Unmarshal(up.Body, &sent)
	if up.Path != "/v1/messages" || up.Header["x-api-key"] != upstreamSecret || up.Header["anthropic-version"] != "2023-06-01" ||
		up.Header["authorization"] != "" || sent.Model != "claude-sonnet-4-5-20250929" || sent.MaxTokens != 2048 {
		t.Fatalf("upstream got %s %v model %q max_tokens %d", up.Path, up.Header, sent.Model, sent.MaxTokens)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens == 0 {
		t.Fatalf("completion %+v", resp)
	}
	rec := st.lastRecord(seen)
	if rec.Usage.TotalTokens != resp.Usage.TotalTokens || rec.Provider != "anthropic" || string(rec.ResponseID) == "" ||
		!slices.Equal(rec.FinishReasons, []string{"stop"}) {
		t.Fatalf("record %s usage %+v id %q reasons %v", rec.Provider, rec.Usage, rec.ResponseID, rec.FinishReasons)
	}
}

func TestAnthropicDeployment_ErrorsBecomeOpenAIShaped(t *testing.T) {
	st := startAnthropicStack(t)
	c := sdkClient(st, st.keyA)
	for _, tt := range []struct {
		replay string
		status int
	}{
		{"error-429-rate-limit.json", 429},
		{"error-400-invalid-request.json", 400},
	} {
		_, err := c.Chat.Completions.New(context.Background(), chatParams("claude-sonnet"), replayAnthropic(tt.replay))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status || apiErr.Message == "" {
			t.Fatalf("%s: %v", tt.replay, err)
		}
	}
	_, err := c.Responses.New(context.Background(), responseParams("claude-sonnet"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Fatalf("responses on an anthropic deployment: %v", err)
	}
}

func anthropicClient(st *stack, key string) anthropic.Client {
	return anthropic.NewClient(aoption.WithBaseURL(st.url), aoption.WithAPIKey(key), aoption.WithMaxRetries(0),
		aoption.WithHTTPClient(&http.Client{Timeout: 20 * time.Second}))
}

func messageParams(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     anthropic.Model(model),
		MaxTokens: 512,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello"))},
	}
}

// The Anthropic SDK against /v1/messages on an Anthropic deployment: bytes
// relayed unchanged, usage read on the side.
func TestMessages_AnthropicSDK_NativeDeployment(t *testing.T) {
	st := startAnthropicStack(t)
	c := anthropicClient(st, st.keyA)
	seen := st.count()
	msg, err := c.Messages.New(context.Background(), messageParams("claude-sonnet"))
	if err != nil {
		t.Fatal(err)
	}
	up, _ := st.mock.Last()
	if up.Path != "/v1/messages" || up.Header["x-api-key"] != upstreamSecret || strings.Contains(string(up.Body), st.keyA) {
		t.Fatalf("upstream got %s with %v", up.Path, up.Header)
	}
	rec := st.lastRecord(seen)
	if len(msg.Content) == 0 || rec.Usage.OutputTokens != msg.Usage.OutputTokens || rec.Usage.InputTokens != msg.Usage.InputTokens ||
		rec.HTTPRoute != "/v1/messages" || rec.Provider != "anthropic" || string(rec.ResponseID) != msg.ID {
		t.Fatalf("message %+v record %+v", msg.Usage, rec)
	}

	for _, name := range []string{"messages-stream-text.sse", "messages-stream-tool-use.sse", "messages-stream-thinking.sse"} {
		t.Run(name, func(t *testing.T) {
			want := readRecording(t, name)
			recorded, _ := os.ReadFile(filepath.Join(fixtures, "anthropic", name))
			body := `{"model":"claude-sonnet","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
			seen := st.count()
			status, h, got := st.do("POST", "/v1/messages", "", body, map[string]string{"x-api-key": st.keyA,
				"anthropic-version": "2023-06-01", "x-mock-replay": "anthropic/" + name})
			if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") || !bytes.Equal(got, recorded) {
				t.Fatalf("status %d: %d bytes, want the %d recorded", status, len(got), len(recorded))
			}
			rec := st.lastRecord(seen)
			if rec.Usage.OutputTokens != want.output || rec.Usage.InputTokens != want.input+want.cacheRead+want.cacheCreation {
				t.Fatalf("record usage %+v, recorded %+v", rec.Usage, want)
			}

			stream := c.Messages.NewStreaming(context.Background(), messageParams("claude-sonnet"),
				aoption.WithHeader("x-mock-replay", "anthropic/"+name))
			var acc anthropic.Message
			for stream.Next() {
				if err := acc.Accumulate(stream.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			text, tools := "", 0
			for _, b := range acc.Content {
				switch b.Type {
				case "text":
					text += b.Text
				case "tool_use":
					var in map[string]any
					if err := json.Unmarshal(b.Input, &in); err != nil {
						t.Fatalf("tool input %s: %v", b.Input, err)
					}
					tools++
				}
			}
			if text != want.text || tools != len(want.toolInputs) || string(acc.StopReason) != want.stop {
				t.Fatalf("text %q tools %d stop %q", text, tools, acc.StopReason)
			}
		})
	}

	tokens, err := c.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    "claude-sonnet",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello"))},
	})
	if err != nil || tokens.InputTokens == 0 {
		t.Fatalf("count_tokens: %v %+v", err, tokens)
	}
	if up, _ := st.mock.Last(); up.Path != "/v1/messages/count_tokens" {
		t.Fatalf("count_tokens went to %s", up.Path)
	}
}

// The Anthropic SDK against /v1/messages on an OpenAI-compatible
// deployment: translated both ways.
func TestMessages_AnthropicSDK_TranslatedToOpenAIDeployment(t *testing.T) {
	st := startAnthropicStack(t)
	c := anthropicClient(st, st.keyA)
	seen := st.count()
	msg, err := c.Messages.New(context.Background(), messageParams("gpt-4o"))
	if err != nil {
		t.Fatal(err)
	}
	up, _ := st.mock.Last()
	if up.Path != "/v1/chat/completions" || up.Header["authorization"] != "Bearer "+upstreamSecret {
		t.Fatalf("upstream got %s", up.Path)
	}
	rec := st.lastRecord(seen)
	if len(msg.Content) == 0 || msg.Content[0].Text == "" || rec.Usage.TotalTokens != int64(up.UsageSent.TotalTokens) ||
		msg.Usage.OutputTokens != int64(up.UsageSent.CompletionTokens) {
		t.Fatalf("message %+v record %+v upstream %+v", msg, rec.Usage, up.UsageSent)
	}

	seen = st.count()
	stream := c.Messages.NewStreaming(context.Background(), messageParams("gpt-4o"))
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	up, _ = st.mock.Last()
	rec = st.lastRecord(seen)
	if len(acc.Content) == 0 || acc.Content[0].Text == "" || acc.Usage.OutputTokens != int64(up.UsageSent.CompletionTokens) ||
		rec.Usage.TotalTokens != int64(up.UsageSent.TotalTokens) || !up.IncludeUsage {
		t.Fatalf("streamed %+v usage %+v, record %+v, upstream %+v", acc.Content, acc.Usage, rec.Usage, up.UsageSent)
	}

	_, err = c.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    "gpt-4o",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("x"))},
	})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.RawJSON(), `"type":"error"`) {
		t.Fatalf("count_tokens on an OpenAI deployment: %v", err)
	}
}

func TestMessages_Refusals_InAnthropicsShape(t *testing.T) {
	st := startAnthropicStack(t)
	bad := anthropicClient(st, "sk-loom-not-a-key")
	_, err := bad.Messages.New(context.Background(), messageParams("claude-sonnet"))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("bad key: %v", err)
	}
	for _, tt := range []struct {
		key, body, typ string
		status         int
	}{
		{"sk-loom-not-a-key", `{"model":"claude-sonnet","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, "authentication_error", 401},
		{st.keyA, `{"model":"globex-model","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, "not_found_error", 404},
		{st.keyA, `{"max_tokens":5,"messages":[]}`, "invalid_request_error", 400},
		{st.keyA, `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`, "invalid_request_error", 400},
	} {
		status, _, got := st.do("POST", "/v1/messages", "", tt.body, map[string]string{"x-api-key": tt.key})
		var e struct {
			Type  string
			Error struct{ Type, Message string }
		}
		if err := json.Unmarshal(got, &e); err != nil || status != tt.status || e.Type != "error" || e.Error.Type != tt.typ || e.Error.Message == "" {
			t.Errorf("%s: %d %s, want %d %s", tt.body, status, got, tt.status, tt.typ)
		}
	}
	// Bearer carries a Loom key too.
	status, _, got := st.do("POST", "/v1/messages", st.keyA, `{"model":"claude-sonnet","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, nil)
	if status != 200 {
		t.Fatalf("bearer: %d %s", status, got)
	}
}

// An Azure client's body names no model; the path's model is served by an
// Anthropic deployment all the same.
func TestAnthropicDeployment_ThroughAzurePath(t *testing.T) {
	st := startAnthropicStack(t)
	status, _, got := st.do("POST", "/openai/deployments/claude-sonnet/chat/completions?api-version=2024-10-21", "",
		`{"messages":[{"role":"user","content":"hi"}]}`, map[string]string{"api-key": st.keyA})
	var c struct {
		Choices []struct{ Message struct{ Content string } }
	}
	if err := json.Unmarshal(got, &c); status != 200 || err != nil || len(c.Choices) != 1 || c.Choices[0].Message.Content == "" {
		t.Fatalf("%d %s", status, got)
	}
	up, _ := st.mock.Last()
	var sent struct{ Model string }
	if _ = json.Unmarshal(up.Body, &sent); up.Path != "/v1/messages" || sent.Model != "claude-sonnet-4-5-20250929" {
		t.Fatalf("upstream got %s %s", up.Path, up.Body)
	}
}

// A model served by an Anthropic deployment first and an OpenAI one second:
// when the first fails before anything reached the client, the second
// serves, each attempt in its own dialect, and the client sees one clean
// answer in its own.
func TestAnthropicDeployment_FailoverAcrossDialects(t *testing.T) {
	st := startAnthropicStack(t)
	fail := func(key string) []option.RequestOption {
		return []option.RequestOption{option.WithHeader("x-mock-fail", "500"), option.WithHeader("x-mock-fail-count", "1"),
			option.WithHeader("x-mock-fail-key", key)}
	}
	c := sdkClient(st, st.keyA)
	for _, stream := range []bool{false, true} {
		seen := st.count()
		key := fmt.Sprint("chat-", stream)
		text := ""
		if stream {
			s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("mixed"), fail(key)...)
			var acc openai.ChatCompletionAccumulator
			for s.Next() {
				acc.AddChunk(s.Current())
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			text = acc.Choices[0].Message.Content
		} else {
			resp, err := c.Chat.Completions.New(context.Background(), chatParams("mixed"), fail(key)...)
			if err != nil {
				t.Fatal(err)
			}
			text = resp.Choices[0].Message.Content
		}
		rec := st.lastRecord(seen)
		if text == "" || rec.Deployment != "mock-openai" || rec.Provider != "openai" || len(rec.Attempts) != 1 ||
			rec.Attempts[0].Deployment != "mock-claude" || rec.Attempts[0].Provider != "anthropic" || rec.Usage.TotalTokens == 0 {
			t.Fatalf("stream=%v: text %q, record %s %s attempts %+v usage %+v", stream, text, rec.Deployment, rec.Provider, rec.Attempts, rec.Usage)
		}
	}

	ac := anthropicClient(st, st.keyA)
	seen := st.count()
	msg, err := ac.Messages.New(context.Background(), messageParams("mixed"), aoption.WithHeader("x-mock-fail", "500"),
		aoption.WithHeader("x-mock-fail-count", "1"), aoption.WithHeader("x-mock-fail-key", "messages"))
	if err != nil {
		t.Fatal(err)
	}
	rec := st.lastRecord(seen)
	if len(msg.Content) == 0 || msg.Content[0].Text == "" || rec.Deployment != "mock-openai" || len(rec.Attempts) != 1 {
		t.Fatalf("message %+v, record %s attempts %+v", msg.Content, rec.Deployment, rec.Attempts)
	}
}

// An Anthropic error event after the stream began ends the chat client's
// stream with an error it raises, and marks the record.
func TestAnthropicDeployment_ErrorEventMidStream(t *testing.T) {
	st := startAnthropicStack(t)
	c := sdkClient(st, st.keyA)
	seen := st.count()
	s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("claude-sonnet"),
		option.WithHeader("x-mock-stream-error-after", "2"))
	chunks := 0
	for s.Next() {
		chunks++
	}
	if s.Err() == nil || chunks == 0 {
		t.Fatalf("%d chunks, error %v: want some chunks, then the error", chunks, s.Err())
	}
	if rec := st.lastRecord(seen); rec.Outcome != call.OutcomeUpstreamError || rec.ErrorType == "" {
		t.Fatalf("record outcome %s error %q", rec.Outcome, rec.ErrorType)
	}
}
