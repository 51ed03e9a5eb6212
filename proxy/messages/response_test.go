package messages_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/messages"
)

var recordedBodies = []string{
	"openai/chat-completion-basic.json",
	"openai/chat-completion-finish-length.json",
	"openai/chat-completion-n3-choices.json",
	"openai/chat-completion-parallel-tool-calls.json",
	"openai/chat-completion-recorded-headers.json",
	"openai/chat-completion-refusal.json",
	"azure/chat-completion-finish-content-filter.json",
}

func TestAppendMessage_RecordedCompletions_DecodeInAnthropicSDK(t *testing.T) {
	for _, name := range recordedBodies {
		t.Run(name, func(t *testing.T) {
			body := readFixture(t, name)
			var want recorded
			want.take(t, body)
			var rec call.Record
			out, err := messages.AppendMessage(nil, body, []byte("claude-via-loom"), &rec)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := sdkMessage(t, 200, out)
			if err != nil {
				t.Fatalf("sdk: %v\n%s", err, out)
			}
			checkMessage(t, *msg, want, "claude-via-loom")
			if msg.Type != "message" || msg.StopSequence != "" {
				t.Errorf("type %q stop_sequence %q", msg.Type, msg.StopSequence)
			}
			if string(rec.ResponseID) != want.responseID || rec.Usage.InputTokens != want.prompt ||
				rec.Usage.OutputTokens != want.completion || len(rec.FinishReasons) == 0 || rec.FinishReasons[0] != want.finish {
				t.Errorf("record: id %q usage %+v finish %q; want %q %d/%d %q", rec.ResponseID, rec.Usage,
					rec.FinishReasons, want.responseID, want.prompt, want.completion, want.finish)
			}
		})
	}
}

func TestAppendMessage_CachedTokens_SplitOutOfInput(t *testing.T) {
	body := []byte(`{"id":"chatcmpl-c","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920}}}`)
	out, err := messages.AppendMessage(nil, body, []byte("m"), nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sdkMessage(t, 200, out)
	if err != nil {
		t.Fatal(err)
	}
	if u := msg.Usage; u.InputTokens != 86 || u.CacheReadInputTokens != 1920 || u.CacheCreationInputTokens != 0 || u.OutputTokens != 300 {
		t.Fatalf("usage %+v", u)
	}
}

func TestAppendMessage_ToolArguments(t *testing.T) {
	tests := []struct {
		name, args, wantInput string
	}{
		{"object kept byte for byte", `"{\"city\": \"Paris\",\n \"n\": 2}"`, "{\"city\": \"Paris\",\n \"n\": 2}"},
		{"empty becomes {}", `""`, `{}`},
		{"not JSON becomes {}", `"{\"city\": "`, `{}`},
		{"array becomes {}", `"[1,2]"`, `{}`},
		{"raw control char in a string becomes {}", `"{\"a\":\"x\ny\"}"`, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(`{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[` +
				`{"id":"call_1","type":"function","function":{"name":"f","arguments":` + tt.args + `}}]},"finish_reason":"tool_calls"}]}`)
			out, err := messages.AppendMessage(nil, body, []byte("m"), nil)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := sdkMessage(t, 200, out)
			if err != nil {
				t.Fatalf("sdk: %v\n%s", err, out)
			}
			if len(msg.Content) != 1 || string(msg.Content[0].Input) != tt.wantInput || msg.StopReason != "tool_use" {
				t.Fatalf("got %s", out)
			}
		})
	}
}

func TestAppendMessage_NotACompletion_ErrUpstreamBody(t *testing.T) {
	for _, body := range []string{``, `[]`, `{"choices":"x"}`, `{"id":"x"}`, `{"error":{"message":"no"}}`, `{"choices":[{"index":0`} {
		out, err := messages.AppendMessage([]byte("keep"), []byte(body), []byte("m"), nil)
		if !errors.Is(err, messages.ErrUpstreamBody) || string(out) != "keep" {
			t.Errorf("%q: out %q err %v", body, out, err)
		}
	}
}

func TestAppendMessage_IDIsDeterministicAndSafe(t *testing.T) {
	for _, id := range []string{`"chatcmpl-abc"`, `"we\"ird id"`, `"` + strings.Repeat("a", 300) + `"`, `""`} {
		body := []byte(`{"id":` + id + `,"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}]}`)
		a, err := messages.AppendMessage(nil, body, []byte("m"), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := messages.AppendMessage(nil, body, []byte("m"), nil)
		msg, err := sdkMessage(t, 200, a)
		if err != nil || string(a) != string(b) || !strings.HasPrefix(msg.ID, "msg_") || len(msg.ID) > 140 {
			t.Fatalf("id %s: %s (%v)", id, a, err)
		}
	}
}
