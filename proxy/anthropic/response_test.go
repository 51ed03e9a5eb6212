package anthropic

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/loom-gateway/loom/proxy/call"
)

func chatCompletion(tb testing.TB, body []byte, rec *call.Record) openai.ChatCompletion {
	tb.Helper()
	out, err := AppendChatCompletion(nil, body, rec)
	if err != nil {
		tb.Fatal(err)
	}
	if !json.Valid(out) {
		tb.Fatalf("not JSON: %s", out)
	}
	var cc openai.ChatCompletion
	if err := json.Unmarshal(out, &cc); err != nil {
		tb.Fatalf("openai-go cannot read %s: %v", out, err)
	}
	return cc
}

func TestAppendChatCompletion_RecordedAnswer(t *testing.T) {
	var rec call.Record
	cc := chatCompletion(t, fixture(t, "messages-nonstream.json"), &rec)
	if cc.ID != "msg_01Egs18hRzhru3uGon3qesbA" || cc.Model != "claude-sonnet-4-5-20250929" || cc.Object != "chat.completion" || cc.Created == 0 {
		t.Fatalf("completion %+v", cc)
	}
	if len(cc.Choices) != 1 || cc.Choices[0].Message.Content != `{"product_name": "Green Tea", "price": 5.50, "quantity": 2}` ||
		cc.Choices[0].FinishReason != "stop" || cc.Choices[0].Message.Role != "assistant" {
		t.Fatalf("choice %+v", cc.Choices)
	}
	if cc.Usage.PromptTokens != 249 || cc.Usage.CompletionTokens != 26 || cc.Usage.TotalTokens != 275 || cc.Usage.PromptTokensDetails.CachedTokens != 0 {
		t.Fatalf("usage %+v", cc.Usage)
	}
	u := rec.Usage
	if u.InputTokens != 249 || u.OutputTokens != 26 || u.TotalTokens != 275 || !u.HasCached || !u.HasCacheCreation || rec.UsageSource != call.UsageProvider {
		t.Fatalf("record usage %+v", u)
	}
	if string(rec.ResponseID) != cc.ID || string(rec.ResponseModel) != cc.Model || !slices.Equal(rec.FinishReasons, []string{"stop"}) {
		t.Fatalf("record %q %q %v", rec.ResponseID, rec.ResponseModel, rec.FinishReasons)
	}
}

func TestAppendChatCompletion_ToolUseThinkingAndCache(t *testing.T) {
	body := []byte(`{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[
		{"type":"thinking","thinking":"Let me \"think\".","signature":"sig"},
		{"type":"redacted_thinking","data":"xyz"},
		{"type":"text","text":"Checking "},
		{"type":"text","text":"both.\n"},
		{"type":"tool_use","id":"toolu_a","name":"get_weather","input":{"city": "Paris", "units": ["c"]}},
		{"type":"tool_use","id":"toolu_b","name":"now","input":{}}],
		"stop_reason":"tool_use","stop_sequence":null,
		"usage":{"input_tokens":10,"cache_read_input_tokens":200,"cache_creation_input_tokens":30,"output_tokens":40,"output_tokens_details":{"thinking_tokens":12}}}`)
	var rec call.Record
	cc := chatCompletion(t, body, &rec)
	msg := cc.Choices[0].Message
	if msg.Content != "Checking both.\n" || cc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("message %+v finish %q", msg, cc.Choices[0].FinishReason)
	}
	if len(msg.ToolCalls) != 2 || msg.ToolCalls[0].ID != "toolu_a" || msg.ToolCalls[0].Function.Name != "get_weather" ||
		msg.ToolCalls[1].Function.Arguments != "{}" {
		t.Fatalf("tool calls %+v", msg.ToolCalls)
	}
	var args map[string]any
	if err := json.Unmarshal([]byte(msg.ToolCalls[0].Function.Arguments), &args); err != nil || args["city"] != "Paris" {
		t.Fatalf("arguments %q: %v", msg.ToolCalls[0].Function.Arguments, err)
	}
	var reasoning string
	_ = json.Unmarshal([]byte(msg.JSON.ExtraFields["reasoning_content"].Raw()), &reasoning)
	if reasoning != `Let me "think".` {
		t.Fatalf("reasoning_content %q", reasoning)
	}
	if cc.Usage.PromptTokens != 240 || cc.Usage.PromptTokensDetails.CachedTokens != 200 || cc.Usage.TotalTokens != 280 ||
		cc.Usage.CompletionTokensDetails.ReasoningTokens != 12 {
		t.Fatalf("usage %+v", cc.Usage)
	}
	u := rec.Usage
	if u.InputTokens != 240 || u.CachedInputTokens != 200 || u.CacheCreationInputTokens != 30 || u.OutputTokens != 40 ||
		u.ReasoningTokens != 12 || !u.HasReasoning {
		t.Fatalf("record usage %+v", u)
	}
}

func TestAppendChatCompletion_StopReasonsMapToFinishReasons(t *testing.T) {
	for stop, want := range map[string]string{
		`"end_turn"`: "stop", `"stop_sequence"`: "stop", `"max_tokens"`: "length", `"tool_use"`: "tool_calls",
		`"refusal"`: "content_filter", `"pause_turn"`: "stop", `"model_context_window_exceeded"`: "length", `null`: "stop",
	} {
		body := []byte(`{"id":"m","type":"message","model":"c","content":[{"type":"text","text":"x"}],"stop_reason":` + stop + `}`)
		var rec call.Record
		cc := chatCompletion(t, body, &rec)
		if cc.Choices[0].FinishReason != want || !slices.Equal(rec.FinishReasons, []string{want}) {
			t.Errorf("%s: finish %q record %v, want %q", stop, cc.Choices[0].FinishReason, rec.FinishReasons, want)
		}
		if rec.UsageSource != call.UsageNone {
			t.Errorf("%s: usage recorded from an answer without usage", stop)
		}
	}
}

func TestAppendChatCompletion_NotAMessage_IsMalformed(t *testing.T) {
	for _, body := range []string{``, `[]`, `{"type":"error","error":{"type":"api_error","message":"x"}}`, `{"id":"m"`, `{"type":"message","content":[`, `{"id":"m"}`} {
		var rec call.Record
		out, err := AppendChatCompletion([]byte("keep"), []byte(body), &rec)
		if !errors.Is(err, ErrMalformed) || string(out) != "keep" {
			t.Errorf("%q: %v, wrote %q", body, err, out)
		}
	}
}

func TestAppendChatCompletion_HostileStrings_StayValidJSON(t *testing.T) {
	body := []byte("{\"id\":\"m\xff\",\"type\":\"message\",\"model\":\"c\",\"content\":[{\"type\":\"text\",\"text\":\"a\x01b\xc3\x28\"},{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{\"k\":\"\xff\x02\"}}],\"stop_reason\":\"end_turn\"}")
	var rec call.Record
	cc := chatCompletion(t, body, &rec)
	if cc.ID != "m\uFFFD" || cc.Choices[0].Message.Content != "a\x01b\uFFFD(" || cc.Choices[0].Message.ToolCalls[0].Function.Arguments != "{\"k\":\"\uFFFD\\u0002\"}" {
		t.Fatalf("invalid UTF-8 not replaced: %+v", cc)
	}
	// json.Valid lets raw control characters through, as sonic does: they
	// must still come out escaped.
	body = []byte("{\"id\":\"m\",\"type\":\"message\",\"model\":\"c\",\"content\":[{\"type\":\"text\",\"text\":\"a\x01b\"},{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{\"k\":\"\x02\"}}],\"stop_reason\":\"end_turn\"}")
	cc = chatCompletion(t, body, &rec)
	if args := cc.Choices[0].Message.ToolCalls[0].Function.Arguments; cc.Choices[0].Message.Content != "a\x01b" || !json.Valid([]byte(args)) {
		t.Fatalf("content %q arguments %q", cc.Choices[0].Message.Content, args)
	}
}

func TestErrorToOpenAI(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       []byte
		wantStatus int
		typ, code  string
		message    string
	}{
		{"recorded 400", 400, fixture(t, "error-400-invalid-request.json"), 400, "invalid_request_error", "", "messages.0.content.1: unexpected `tool_use_id`"},
		{"recorded 401", 401, fixture(t, "error-401-authentication.json"), 401, "invalid_request_error", "invalid_api_key", "invalid x-api-key"},
		{"recorded 429", 429, fixture(t, "error-429-rate-limit.json"), 429, "requests", "rate_limit_exceeded", "This request would exceed"},
		{"overloaded 529", 529, []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`), 503, "server_error", "overloaded", "Overloaded"},
		{"api error 500", 500, []byte(`{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`), 500, "server_error", "api_error", "Internal server error"},
		{"permission 403", 403, []byte(`{"type":"error","error":{"type":"permission_error","message":"no"}}`), 403, "invalid_request_error", "permission_denied", "no"},
		{"not found 404", 404, []byte(`{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}`), 404, "invalid_request_error", "not_found", "model: claude-x"},
		{"too large 413", 413, []byte(`{"type":"error","error":{"type":"request_too_large","message":"big"}}`), 413, "invalid_request_error", "request_too_large", "big"},
		{"timeout 504", 504, []byte(`{"type":"error","error":{"type":"timeout_error","message":"slow"}}`), 504, "server_error", "timeout", "slow"},
		{"billing 400", 400, []byte(`{"type":"error","error":{"type":"billing_error","message":"pay"}}`), 429, "insufficient_quota", "insufficient_quota", "pay"},
		{"html 502", 502, []byte(`<html>bad gateway</html>`), 502, "server_error", "upstream_error", "status 502"},
		{"bare 529", 529, nil, 503, "server_error", "overloaded", "status 529"},
		{"unknown type 418", 418, []byte(`{"type":"error","error":{"type":"teapot_error","message":"short"}}`), 418, "invalid_request_error", "", "short"},
		{"in stream", 200, []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`), 503, "server_error", "overloaded", "Overloaded"},
		{"hostile message", 400, []byte("{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad \xff\"}}"), 400, "invalid_request_error", "", "bad \uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := ErrorToOpenAI([]byte("x"), tt.status, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d", status, tt.wantStatus)
			}
			var e struct {
				Error struct {
					Message string
					Type    string
					Param   *string
					Code    *string
				}
			}
			if out[0] != 'x' || json.Unmarshal(out[1:], &e) != nil {
				t.Fatalf("body %s", out)
			}
			code := ""
			if e.Error.Code != nil {
				code = *e.Error.Code
			}
			if e.Error.Type != tt.typ || code != tt.code || !strings.Contains(e.Error.Message, tt.message) || e.Error.Param != nil {
				t.Errorf("error %+v (code %q)", e.Error, code)
			}
		})
	}
}

func TestAppendChatCompletion_AllocationFree(t *testing.T) {
	body := fixture(t, "messages-nonstream.json")
	var rec call.Record
	dst := make([]byte, 0, 4096)
	dst, _ = AppendChatCompletion(dst[:0], body, &rec)
	if n := testing.AllocsPerRun(100, func() {
		rec.Reset()
		dst, _ = AppendChatCompletion(dst[:0], body, &rec)
	}); n != 0 {
		t.Fatalf("%v allocations per answer", n)
	}
}

func BenchmarkAppendChatCompletion(b *testing.B) {
	body := fixture(b, "messages-nonstream.json")
	var rec call.Record
	dst := make([]byte, 0, 4096)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rec.Reset()
		dst, _ = AppendChatCompletion(dst[:0], body, &rec)
	}
}

func TestAppendChatCompletion_CompatibleServerWithoutType_IsRead(t *testing.T) {
	var rec call.Record
	cc := chatCompletion(t, []byte(`{"id":"m","model":"c","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"}`), &rec)
	if cc.Choices[0].Message.Content != "hi" {
		t.Fatalf("completion %+v", cc)
	}
}
