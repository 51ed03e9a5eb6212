package mockupstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

const (
	anthropicKey  = "sk-ant-mock-key"
	messagesBody  = `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"What is the weather in Paris?"}]}`
	anthropicVers = "2023-06-01"
)

func anthropicHeaders(more ...string) []string {
	return append([]string{"x-api-key", anthropicKey, "anthropic-version", anthropicVers}, more...)
}

func (m *testMock) anthropicClient(t *testing.T, opts ...option.RequestOption) anthropic.Client {
	t.Helper()
	return anthropic.NewClient(append([]option.RequestOption{option.WithBaseURL("http://mock/"),
		option.WithAPIKey(anthropicKey), option.WithHTTPClient(m.httpClient(t)), option.WithMaxRetries(0)}, opts...)...)
}

func userMessage(text string) []anthropic.MessageParam {
	return []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}
}

func weatherTool() []anthropic.ToolUnionParam {
	return []anthropic.ToolUnionParam{anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
		Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}}, "get_weather")}
}

func TestMessages_SDK_NonStream_TextAndUsage(t *testing.T) {
	m := startMock(t, Config{APIKey: anthropicKey})
	client := m.anthropicClient(t)
	msg, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "claude-sonnet-4-5",
		MaxTokens: 100, Messages: userMessage("What is the weather in Paris?")},
		option.WithHeader(HeaderChunks, "3"), option.WithHeader(HeaderCacheReadTokens, "40"),
		option.WithHeader(HeaderCacheWriteTokens, "7"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Model != "claude-sonnet-4-5" || msg.Role != "assistant" || msg.StopReason != anthropic.StopReasonEndTurn ||
		len(msg.Content) != 1 || msg.Content[0].AsText().Text != "tok1 tok2 tok3 " {
		t.Fatalf("message %s", msg.RawJSON())
	}
	// "What is the weather in Paris?" is 29 bytes: 7 input tokens; cache counts apart, as Anthropic reports them.
	u := msg.Usage
	if u.InputTokens != 7 || u.OutputTokens != 3 || u.CacheReadInputTokens != 40 || u.CacheCreationInputTokens != 7 {
		t.Errorf("usage %s", u.RawJSON())
	}
	rec, _ := m.srv.Last()
	if rec.UsageSent == nil || *rec.UsageSent != (Usage{PromptTokens: 54, CompletionTokens: 3, TotalTokens: 57}) ||
		rec.UsageDetails == nil || rec.UsageDetails.CacheReadTokens != 40 || rec.UsageDetails.CacheWriteTokens != 7 {
		t.Errorf("recorded usage %+v %+v", rec.UsageSent, rec.UsageDetails)
	}
}

func TestMessages_SDK_Stream_AccumulatesToSameMessage(t *testing.T) {
	m := startMock(t, Config{APIKey: anthropicKey})
	client := m.anthropicClient(t)
	params := anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 100,
		Messages: userMessage("What is the weather in Paris?")}
	want, err := client.Messages.New(context.Background(), params, option.WithHeader(HeaderCacheReadTokens, "12"))
	if err != nil {
		t.Fatal(err)
	}
	stream := client.Messages.NewStreaming(context.Background(), params, option.WithHeader(HeaderCacheReadTokens, "12"))
	var got anthropic.Message
	var types []string
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		if err := got.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	// The SDK drops ping; TestMessages_Stream_Framing sees it on the wire.
	wantTypes := "message_start content_block_start content_block_delta content_block_delta content_block_delta " +
		"content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if strings.Join(types, " ") != wantTypes {
		t.Errorf("events %v", types)
	}
	if got.Content[0].AsText().Text != want.Content[0].AsText().Text || got.StopReason != want.StopReason ||
		got.Usage.InputTokens != want.Usage.InputTokens || got.Usage.OutputTokens != want.Usage.OutputTokens ||
		got.Usage.CacheReadInputTokens != 12 {
		t.Errorf("streamed %s\nnon-streamed %s", got.RawJSON(), want.RawJSON())
	}
	rec := waitDone(t, m.srv)
	if rec.UsageSent == nil || *rec.UsageSent != (Usage{PromptTokens: 19, CompletionTokens: 5, TotalTokens: 24}) {
		t.Errorf("recorded usage %+v", rec.UsageSent)
	}
}

func TestMessages_SDK_ToolUse(t *testing.T) {
	m := startMock(t, Config{})
	client := m.anthropicClient(t)
	params := anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 100,
		Messages: userMessage("What is the weather in Paris?"), Tools: weatherTool()}
	msg, err := client.Messages.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 1 {
		t.Fatalf("message %s", msg.RawJSON())
	}
	tu := msg.Content[0].AsToolUse()
	if tu.Name != "get_weather" || !strings.HasPrefix(tu.ID, "toolu_") || string(tu.Input) != cityArgs {
		t.Errorf("tool_use %s", msg.Content[0].RawJSON())
	}

	stream := client.Messages.NewStreaming(context.Background(), params)
	var acc anthropic.Message
	deltas := 0
	for stream.Next() {
		ev := stream.Current()
		if ev.Type == "content_block_delta" && ev.Delta.Type == "input_json_delta" {
			deltas++
		}
		if err := acc.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	var args, wantArgs any
	if err := json.Unmarshal(acc.Content[0].AsToolUse().Input, &args); err != nil {
		t.Fatalf("streamed input %s: %v", acc.Content[0].RawJSON(), err)
	}
	_ = json.Unmarshal([]byte(cityArgs), &wantArgs)
	if deltas < 2 || acc.StopReason != anthropic.StopReasonToolUse || acc.Content[0].AsToolUse().Name != "get_weather" ||
		!jsonEqual(args, wantArgs) {
		t.Errorf("%d input_json_delta events; accumulated %s", deltas, acc.RawJSON())
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestMessages_Thinking_BlockBeforeText(t *testing.T) {
	m := startMock(t, Config{})
	client := m.anthropicClient(t)
	params := anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 2048,
		Messages: userMessage("How many r in strawberry?"), Thinking: anthropic.ThinkingConfigParamOfEnabled(1024)}
	msg, err := client.Messages.New(context.Background(), params, option.WithHeader(HeaderChunks, "2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 2 || msg.Content[0].Type != "thinking" || msg.Content[0].AsThinking().Thinking != "think1 think2 " ||
		msg.Content[0].AsThinking().Signature == "" || msg.Content[1].AsText().Text != "tok1 tok2 " || msg.Usage.OutputTokens != 4 {
		t.Fatalf("message %s", msg.RawJSON())
	}
	stream := client.Messages.NewStreaming(context.Background(), params, option.WithHeader(HeaderChunks, "2"))
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Content) != 2 || acc.Content[0].AsThinking().Thinking != "think1 think2 " ||
		acc.Content[0].AsThinking().Signature != anthropicSignature || acc.Content[1].AsText().Text != "tok1 tok2 " {
		t.Errorf("streamed %s", acc.RawJSON())
	}
}

func TestMessages_MaxTokens_StopsThere(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/messages", `{"model":"c","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`,
		anthropicHeaders()...)
	got := decode(t, string(r.body))
	if got["stop_reason"] != "max_tokens" || got["usage"].(map[string]any)["output_tokens"] != 2.0 {
		t.Errorf("%s", r.body)
	}
}

// TestMessages_Stream_Framing checks the bytes: every event is "event: <type>\ndata: <json>\n\n" with the
// name equal to the JSON type, as Anthropic frames them, and no [DONE].
func TestMessages_Stream_Framing(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/messages", strings.Replace(messagesBody, `"max_tokens"`, `"stream":true,"max_tokens"`, 1),
		anthropicHeaders(HeaderChunks, "2")...)
	if r.status != 200 || r.header["content-type"] != "text/event-stream; charset=utf-8" || r.header["request-id"] == "" {
		t.Fatalf("status %d headers %v", r.status, r.header)
	}
	checkNamedFraming(t, r.body)
	if bytes.Contains(r.body, []byte("[DONE]")) {
		t.Errorf("Anthropic streams end without [DONE]")
	}
	rec, _ := m.srv.Last()
	if len(rec.ChunkSentAt) != 8 { // start, block start, ping, 2 deltas, block stop, message_delta, stop
		t.Errorf("%d events flushed", len(rec.ChunkSentAt))
	}
}

func checkNamedFraming(t *testing.T, body []byte) {
	t.Helper()
	events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
	for _, ev := range events {
		name, data, ok := strings.Cut(ev, "\n")
		var v struct{ Type string }
		if !ok || !strings.HasPrefix(name, "event: ") || !strings.HasPrefix(data, "data: ") ||
			json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &v) != nil || v.Type != strings.TrimPrefix(name, "event: ") {
			t.Fatalf("bad event %q", ev)
		}
	}
	if len(events) < 3 || !strings.HasSuffix(string(body), "\n\n") {
		t.Fatalf("stream %q", body)
	}
}

func TestMessages_CountTokens(t *testing.T) {
	m := startMock(t, Config{APIKey: anthropicKey})
	client := m.anthropicClient(t)
	got, err := client.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model: "claude-sonnet-4-5", Messages: userMessage("What is the weather in Paris?")})
	if err != nil {
		t.Fatal(err)
	}
	if got.InputTokens != 7 {
		t.Errorf("input_tokens %d, want the same estimate as /v1/messages (7)", got.InputTokens)
	}
}

func TestMessages_Errors_AnthropicShape(t *testing.T) {
	m := startMock(t, Config{APIKey: anthropicKey, ReplayDir: t.TempDir()})
	tests := []struct {
		name       string
		body       string
		headers    []string
		wantStatus int
		wantType   string
		retry      string // x-should-retry
	}{
		{name: "missing key", body: messagesBody, headers: []string{"anthropic-version", anthropicVers},
			wantStatus: 401, wantType: "authentication_error", retry: "false"},
		{name: "wrong key", body: messagesBody, headers: []string{"x-api-key", "sk-ant-wrong", "anthropic-version", anthropicVers},
			wantStatus: 401, wantType: "authentication_error", retry: "false"},
		{name: "wrong bearer", body: messagesBody,
			headers:    []string{"Authorization", "Bearer sk-ant-wrong", "anthropic-version", anthropicVers},
			wantStatus: 401, wantType: "authentication_error", retry: "false"},
		{name: "missing anthropic-version", body: messagesBody, headers: []string{"x-api-key", anthropicKey},
			wantStatus: 400, wantType: "invalid_request_error", retry: "false"},
		{name: "bad JSON", body: `{"model":`, headers: anthropicHeaders(), wantStatus: 400,
			wantType: "invalid_request_error", retry: "false"},
		{name: "missing max_tokens", body: `{"model":"c","messages":[]}`, headers: anthropicHeaders(),
			wantStatus: 400, wantType: "invalid_request_error", retry: "false"},
		{name: "status 429", body: messagesBody, headers: anthropicHeaders(HeaderStatus, "429"), wantStatus: 429,
			wantType: "rate_limit_error", retry: "true"},
		{name: "status 500", body: messagesBody, headers: anthropicHeaders(HeaderStatus, "500"), wantStatus: 500,
			wantType: "api_error", retry: "true"},
		{name: "status 529", body: messagesBody, headers: anthropicHeaders(HeaderStatus, "529"), wantStatus: 529,
			wantType: "overloaded_error", retry: "true"},
		{name: "bad control header", body: messagesBody, headers: anthropicHeaders(HeaderChunks, "many"),
			wantStatus: 400, wantType: "invalid_request_error", retry: "false"},
		{name: "replay outside dir", body: messagesBody, headers: anthropicHeaders(HeaderReplay, "../x.sse"),
			wantStatus: 400, wantType: "invalid_request_error", retry: "false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := m.mustDo(t, "POST", "/v1/messages", tc.body, tc.headers...)
			var e anthropicErrorBody
			if err := json.Unmarshal(r.body, &e); err != nil || r.status != tc.wantStatus || e.Type != "error" ||
				e.Error.Type != tc.wantType || e.Error.Message == "" {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if r.header["x-should-retry"] != tc.retry || (tc.wantStatus == 429) != (r.header["retry-after"] != "") {
				t.Errorf("x-should-retry %q retry-after %q", r.header["x-should-retry"], r.header["retry-after"])
			}
			if (tc.wantStatus == 429) != (r.header["anthropic-ratelimit-requests-remaining"] == "0") {
				t.Errorf("anthropic-ratelimit-requests-remaining %q", r.header["anthropic-ratelimit-requests-remaining"])
			}
			if r.header["request-id"] == "" || r.header["openai-organization"] != "" {
				t.Errorf("headers %v", r.header)
			}
		})
	}

	// The SDK reads the same bodies as its typed error.
	client := m.anthropicClient(t, option.WithAPIKey("sk-ant-wrong"))
	_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "c", MaxTokens: 1,
		Messages: userMessage("hi")})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || !strings.Contains(apiErr.RawJSON(), "authentication_error") {
		t.Errorf("SDK error %v", err)
	}
}

func TestReplay_AnthropicFixtures_ByteIdentical(t *testing.T) {
	dir := fixturesDir(t)
	m := startMock(t, Config{ReplayDir: dir})
	files, err := filepath.Glob(filepath.Join(dir, "anthropic", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasSuffix(base, suffixHeaders) {
			continue
		}
		n++
		t.Run(base, func(t *testing.T) {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus := 200
			if hb, err := os.ReadFile(strings.TrimSuffix(strings.TrimSuffix(f, suffixSSE), suffixJSON) + suffixHeaders); err == nil {
				var h recordedHeaders
				if err := json.Unmarshal(hb, &h); err != nil {
					t.Fatal(err)
				}
				if strings.HasSuffix(base, suffixJSON) {
					wantStatus = h.Status
				}
			}
			r := m.mustDo(t, "POST", "/v1/messages", messagesBody, anthropicHeaders(HeaderReplay, "anthropic/"+base)...)
			if r.status != wantStatus || !bytes.Equal(r.body, want) {
				t.Fatalf("status %d (want %d), body differs from the recording (%d vs %d bytes)", r.status, wantStatus,
					len(r.body), len(want))
			}
			rec := waitDone(t, m.srv)
			if strings.HasSuffix(base, suffixSSE) && len(rec.ChunkSentAt) != strings.Count(string(want), "\n\n") {
				t.Errorf("%d flushes, want one per event", len(rec.ChunkSentAt))
			}
		})
	}
	if n == 0 {
		t.Fatal("no anthropic fixtures")
	}
}

func TestReplay_AnthropicUsage_FromStartAndDelta(t *testing.T) {
	m := startMock(t, Config{ReplayDir: fixturesDir(t)})
	tests := []struct {
		file string
		want Usage
		read int
	}{
		// input 18 + cache write 1031; output from message_delta.
		{file: "anthropic/messages-stream-cache-creation.sse", want: Usage{PromptTokens: 1049}},
		{file: "anthropic/messages-stream-cache-read.sse", want: Usage{PromptTokens: 1042}, read: 1031},
		{file: "anthropic/messages-stream-delta-usage-cumulative.sse", want: Usage{20, 5, 25}},
		{file: "anthropic/messages-nonstream.json", want: Usage{249, 26, 275}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m.mustDo(t, "POST", "/v1/messages", messagesBody, anthropicHeaders(HeaderReplay, tc.file)...)
			rec := waitDone(t, m.srv)
			if rec.UsageSent == nil || rec.UsageSent.PromptTokens != tc.want.PromptTokens ||
				(tc.want.CompletionTokens != 0 && *rec.UsageSent != tc.want) || rec.UsageSent.CompletionTokens == 0 {
				t.Errorf("usage %+v, want %+v", rec.UsageSent, tc.want)
			}
			if tc.read != 0 && (rec.UsageDetails == nil || rec.UsageDetails.CacheReadTokens != tc.read) {
				t.Errorf("details %+v", rec.UsageDetails)
			}
		})
	}
}

func TestMessages_SDK_StreamErrorEvent_IsTheStreamsError(t *testing.T) {
	m := startMock(t, Config{})
	client := m.anthropicClient(t)
	stream := client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{Model: "c", MaxTokens: 10,
		Messages: userMessage("hi")}, option.WithHeader(HeaderStreamErrorAfter, "4"))
	n := 0
	for stream.Next() {
		n++
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "overloaded_error") || n != 3 {
		t.Errorf("after %d events (ping dropped): %v", n, err)
	}
}
