package messages_test

import (
	"bytes"
	stdjson "encoding/json"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/messages"
)

var recordedStreams = []string{
	"openai/chat-stream-text-include-usage.sse",
	"openai/chat-stream-finish-length.sse",
	"openai/chat-stream-json-object-long.sse",
	"openai/chat-stream-logprobs-content.sse",
	"openai/chat-stream-logprobs-refusal.sse",
	"openai/chat-stream-n3-choices.sse",
	"openai/chat-stream-parallel-tool-calls.sse",
	"openai/chat-stream-refusal.sse",
	"openai/chat-stream-tool-call.sse",
	"openai/chat-stream-tool-call-recorded-headers.sse",
	"openai/chat-stream-long-300.chunks.jsonl",
	"azure/chat-stream-prompt-filter-results.sse",
	"azure/chat-stream-model-router.chunks.jsonl",
}

func wantStopReason(r recorded) anthropic.StopReason {
	switch {
	case r.refusal || r.finish == "content_filter":
		return "refusal"
	case r.finish == "length":
		return anthropic.StopReasonMaxTokens
	case r.finish == "tool_calls" || len(r.tools) > 0:
		return anthropic.StopReasonToolUse
	}
	return anthropic.StopReasonEndTurn
}

// checkMessage compares what an Anthropic client reassembled with what the
// recording said.
func checkMessage(t *testing.T, msg anthropic.Message, want recorded, model string) {
	t.Helper()
	var text, thinking string
	var tools []anthropic.ContentBlockUnion
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			text += b.Text
		case "thinking":
			thinking += b.Thinking
		case "tool_use":
			tools = append(tools, b)
		default:
			t.Errorf("unexpected block type %q", b.Type)
		}
	}
	if text != want.text {
		t.Errorf("text:\n got %q\nwant %q", text, want.text)
	}
	if thinking != want.reasoning {
		t.Errorf("thinking: got %q, want %q", thinking, want.reasoning)
	}
	if len(tools) != len(want.tools) {
		t.Fatalf("tool_use blocks: got %d, want %d", len(tools), len(want.tools))
	}
	for i, tool := range tools {
		w := want.tools[i]
		if tool.ID != w.id || tool.Name != w.name {
			t.Errorf("tool %d: got %s %s, want %s %s", i, tool.ID, tool.Name, w.id, w.name)
		}
		// Byte for byte: the input is the arguments the model streamed.
		if string(tool.Input) != w.args {
			t.Errorf("tool %d input:\n got %s\nwant %s", i, tool.Input, w.args)
		}
	}
	if msg.StopReason != wantStopReason(want) {
		t.Errorf("stop_reason: got %q, want %q (finish %q)", msg.StopReason, wantStopReason(want), want.finish)
	}
	if msg.Model != anthropic.Model(model) || msg.Role != "assistant" || !strings.HasPrefix(msg.ID, "msg_") {
		t.Errorf("message head: id %q model %q role %q", msg.ID, msg.Model, msg.Role)
	}
	if want.hasUsage {
		u := msg.Usage
		if u.InputTokens+u.CacheReadInputTokens+u.CacheCreationInputTokens != want.prompt ||
			u.CacheReadInputTokens != want.cached || u.OutputTokens != want.completion {
			t.Errorf("usage: got in %d cache_read %d cache_write %d out %d, want prompt %d cached %d completion %d",
				u.InputTokens, u.CacheReadInputTokens, u.CacheCreationInputTokens, u.OutputTokens,
				want.prompt, want.cached, want.completion)
		}
	}
}

func TestStream_RecordedChatStreams_ReassembleInAnthropicSDK(t *testing.T) {
	for _, name := range recordedStreams {
		t.Run(name, func(t *testing.T) {
			payloads := streamPayloads(t, name)
			want := recordedStream(t, payloads)
			var rec call.Record
			out := translateStream(t, payloads, &rec, "claude-via-loom")
			msg, events, err := sdkStream(t, out)
			if err != nil {
				t.Fatalf("sdk: %v\n%s", err, out)
			}
			checkMessage(t, msg, want, "claude-via-loom")
			checkEventOrder(t, events, false)
			if string(rec.ResponseID) != want.responseID {
				t.Errorf("record response id %q, want %q", rec.ResponseID, want.responseID)
			}
			if want.hasUsage && (rec.Usage.InputTokens != want.prompt || rec.Usage.OutputTokens != want.completion ||
				rec.UsageSource != call.UsageProvider) {
				t.Errorf("record usage %+v (%s), want %d/%d", rec.Usage, rec.UsageSource, want.prompt, want.completion)
			}
			if len(rec.FinishReasons) == 0 || rec.FinishReasons[0] != want.finish {
				t.Errorf("record finish reasons %q, want %q first", rec.FinishReasons, want.finish)
			}
		})
	}
}

// checkEventOrder checks the framing rules Anthropic's stream keeps and
// clients rely on: message_start first, message_stop last, one
// message_delta before it, each block started, then deltas, then stopped,
// indexes from 0 without gaps, one block open at a time. lateDeltas allows
// an argument fragment for a tool call whose block was closed (an upstream
// that interleaves tool calls; see Stream.toolCalls).
func checkEventOrder(t *testing.T, events []anthropic.MessageStreamEventUnion, lateDeltas bool) {
	t.Helper()
	if len(events) < 3 || events[0].Type != "message_start" || events[len(events)-1].Type != "message_stop" ||
		events[len(events)-2].Type != "message_delta" {
		t.Fatalf("framing: %d events, first %q", len(events), events[0].Type)
	}
	open, next := int64(-1), int64(0)
	for _, ev := range events[1 : len(events)-2] {
		switch ev.Type {
		case "content_block_start":
			if open >= 0 || ev.Index != next {
				t.Fatalf("block %d started while %d open (next %d)", ev.Index, open, next)
			}
			open, next = ev.Index, next+1
		case "content_block_delta":
			if lateDeltas && ev.Delta.Type == "input_json_delta" && ev.Index < next {
				continue
			}
			if ev.Index != open {
				t.Fatalf("delta for block %d while %d open", ev.Index, open)
			}
		case "content_block_stop":
			if ev.Index != open {
				t.Fatalf("stop for block %d while %d open", ev.Index, open)
			}
			open = -1
		default:
			t.Fatalf("unexpected %q inside the message", ev.Type)
		}
	}
	if open >= 0 {
		t.Fatalf("block %d never stopped", open)
	}
}

// TestStream_EventsAreAnthropicSSE checks the wire form itself: every event
// is "event: <type>\ndata: <json>\n\n" with the name equal to the JSON
// type, as Anthropic sends it (SDKs dispatch on either).
func TestStream_EventsAreAnthropicSSE(t *testing.T) {
	out := translateStream(t, streamPayloads(t, "openai/chat-stream-parallel-tool-calls.sse"), nil, "m")
	events := bytes.Split(bytes.TrimSuffix(out, []byte("\n\n")), []byte("\n\n"))
	for _, ev := range events {
		name, data, ok := bytes.Cut(ev, []byte("\ndata: "))
		if !ok || !bytes.HasPrefix(name, []byte("event: ")) || bytes.Contains(data, []byte("\n")) {
			t.Fatalf("malformed event %q", ev)
		}
		var v struct{ Type string }
		if err := stdjson.Unmarshal(data, &v); err != nil {
			t.Fatalf("event data %s: %v", data, err)
		}
		if v.Type != string(name[len("event: "):]) {
			t.Fatalf("event name %s, data type %s", name, v.Type)
		}
	}
}

func TestStream_UsageChunk_FillsMessageDeltaWithTotals(t *testing.T) {
	payloads := [][]byte{
		[]byte(`{"id":"chatcmpl-1","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}`),
		[]byte(`{"id":"chatcmpl-1","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`),
		[]byte(`{"id":"chatcmpl-1","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":7,"total_tokens":1207,"prompt_tokens_details":{"cached_tokens":1024}}}`),
		[]byte(`[DONE]`),
	}
	var s messages.Stream
	s.Reset(nil, []byte("m"))
	var out []byte
	for i, p := range payloads {
		var err error
		before := len(out)
		out, err = s.Chunk(out, p)
		if err != nil {
			t.Fatal(err)
		}
		// The finish reason alone must not close the message: usage follows.
		if i == 1 && bytes.Contains(out[before:], []byte("message_delta")) {
			t.Fatalf("message_delta before the usage chunk: %s", out[before:])
		}
		if i == 2 && !bytes.Contains(out[before:], []byte(`"usage":{"input_tokens":176,"cache_creation_input_tokens":0,"cache_read_input_tokens":1024,"output_tokens":7}`)) {
			t.Fatalf("usage chunk gave %s", out[before:])
		}
	}
	msg, _, err := sdkStream(t, out)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Usage.InputTokens != 176 || msg.Usage.CacheReadInputTokens != 1024 || msg.Usage.OutputTokens != 7 {
		t.Fatalf("usage %+v", msg.Usage)
	}
	if !s.Ended() || len(s.End(nil)) != 0 {
		t.Fatal("End after [DONE] appended more")
	}
}

func TestStream_UpstreamErrorChunk_BecomesErrorEventAndEnds(t *testing.T) {
	var s messages.Stream
	var rec call.Record
	s.Reset(&rec, []byte("m"))
	out, _ := s.Chunk(nil, []byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"par"}}]}`))
	out, err := s.Chunk(out, []byte(`{"error":{"message":"The server had an error while processing your request.","type":"server_error","code":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	out = s.End(out)
	if !bytes.HasSuffix(out, []byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"The server had an error while processing your request.\"}}\n\n")) {
		t.Fatalf("stream tail:\n%s", out)
	}
	_, _, sdkErr := sdkStream(t, out)
	var apiErr *anthropic.Error
	if sdkErr == nil || !asError(sdkErr, &apiErr) || apiErr.Type() != "api_error" {
		t.Fatalf("sdk error %v", sdkErr)
	}
	if rec.ErrorType != "server_error" || rec.Outcome != call.OutcomeUpstreamError {
		t.Fatalf("record error type %q outcome %q", rec.ErrorType, rec.Outcome)
	}
}

func TestStream_Fail_EndsWithOneErrorEvent(t *testing.T) {
	var s messages.Stream
	s.Reset(nil, []byte("m"))
	out, _ := s.Chunk(nil, []byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"par"}}]}`))
	out = s.Fail(out, messages.TypeOverloaded, "upstream reset")
	out = s.End(out)
	out = s.Fail(out, "", "again")
	if n := bytes.Count(out, []byte("event: error")); n != 1 || bytes.Contains(out, []byte("message_stop")) {
		t.Fatalf("got %d error events:\n%s", n, out)
	}
	if !bytes.HasSuffix(out, []byte(`{"type":"error","error":{"type":"overloaded_error","message":"upstream reset"}}`+"\n\n")) {
		t.Fatalf("tail %s", out)
	}
}

func TestStream_NoChunks_StillAValidEmptyMessage(t *testing.T) {
	var s messages.Stream
	s.Reset(nil, []byte("m"))
	msg, _, err := sdkStream(t, s.End(nil))
	if err != nil || len(msg.Content) != 0 || msg.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("msg %+v err %v", msg, err)
	}
}

func TestStream_AzurePromptFilterChunk_DoesNotStartTheMessage(t *testing.T) {
	var s messages.Stream
	s.Reset(nil, []byte("m"))
	out, err := s.Chunk(nil, []byte(`{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}`))
	if err != nil || len(out) != 0 || s.Started() {
		t.Fatalf("out %q err %v", out, err)
	}
	out, _ = s.Chunk(out, []byte(`{"id":"chatcmpl-9","choices":[{"index":0,"delta":{"content":"x"}}]}`))
	if !bytes.Contains(out, []byte(`"id":"msg_chatcmpl-9"`)) {
		t.Fatalf("message_start %s", out)
	}
}

func TestStream_ReasoningContent_BecomesThinkingBlock(t *testing.T) {
	payloads := [][]byte{
		[]byte(`{"id":"r1","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Let me"}}]}`),
		[]byte(`{"id":"r1","choices":[{"index":0,"delta":{"reasoning_content":" think."}}]}`),
		[]byte(`{"id":"r1","choices":[{"index":0,"delta":{"content":"42"}}]}`),
		[]byte(`{"id":"r1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":9}}`),
	}
	msg, events, err := sdkStream(t, translateStream(t, payloads, nil, "m"))
	if err != nil {
		t.Fatal(err)
	}
	checkEventOrder(t, events, false)
	if len(msg.Content) != 2 || msg.Content[0].Thinking != "Let me think." || msg.Content[1].Text != "42" {
		t.Fatalf("content %+v", msg.Content)
	}
}

func TestStream_FinishStopAfterToolCalls_IsToolUse(t *testing.T) {
	payloads := [][]byte{
		[]byte(`{"id":"t","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}`),
		[]byte(`{"id":"t","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`),
	}
	msg, _, err := sdkStream(t, translateStream(t, payloads, nil, "m"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonToolUse || string(msg.Content[0].Input) != `{"a":1}` {
		t.Fatalf("stop %q content %+v", msg.StopReason, msg.Content)
	}
}

func TestStream_HostileToolIndex_RefusedWithoutGrowth(t *testing.T) {
	var s messages.Stream
	s.Reset(nil, []byte("m"))
	out, err := s.Chunk(nil, []byte(`{"id":"t","choices":[{"index":0,"delta":{"tool_calls":[{"index":99999999999,"id":"x","function":{"name":"f"}}]}}]}`))
	if err == nil {
		t.Fatalf("accepted: %s", out)
	}
	if _, _, err := sdkStream(t, s.End(out)); err != nil {
		t.Fatal(err)
	}
}

func TestStream_InvalidUTF8AndControlBytes_ComeOutValidJSON(t *testing.T) {
	payloads := [][]byte{
		[]byte("{\"id\":\"x\\\"y\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\xff\x01b\\ud800c\"}}]}"),
	}
	out := translateStream(t, payloads, nil, "m\xff")
	msg, _, err := sdkStream(t, out)
	if err != nil {
		t.Fatalf("%v\n%q", err, out)
	}
	if msg.Content[0].Text != "a\ufffd\x01b\ufffdc" {
		t.Fatalf("text %q", msg.Content[0].Text)
	}
}

func TestStream_UsageBeforeFinish_WaitsForTheLastCount(t *testing.T) {
	payloads := [][]byte{
		[]byte(`{"id":"u","choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":10,"completion_tokens":1}}`),
		[]byte(`{"id":"u","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`),
		[]byte(`{"id":"u","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5}}`),
	}
	msg, _, err := sdkStream(t, translateStream(t, payloads, nil, "m"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Usage.InputTokens != 10 || msg.Usage.OutputTokens != 5 {
		t.Fatalf("usage %+v", msg.Usage)
	}
}
