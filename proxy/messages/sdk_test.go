package messages_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/loom-gateway/loom/proxy/messages"
)

// sdkRequestBody is the body anthropic-sdk-go sends for params.
func sdkRequestBody(t *testing.T, params anthropic.MessageNewParams, stream bool) []byte {
	t.Helper()
	client, got := serve(t, 200, readFixture(t, "anthropic/messages-nonstream.json"), false)
	if stream {
		s := client.Messages.NewStreaming(context.Background(), params)
		for s.Next() {
		}
		s.Close()
	} else {
		// The answer does not matter; the request does.
		_, _ = client.Messages.New(context.Background(), params)
	}
	if len(*got) == 0 {
		t.Fatal("no request body captured")
	}
	return *got
}

// chatRequest is the part of an OpenAI chat request the tests read.
type chatRequest struct {
	Model               string `json:"model"`
	MaxCompletionTokens int64  `json:"max_completion_tokens"`
	Stream              bool   `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Stop     []string `json:"stop"`
	User     string   `json:"user"`
	Messages []struct {
		Role       string `json:"role"`
		Content    any    `json:"content"`
		ToolCallID string `json:"tool_call_id"`
		ToolCalls  []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string         `json:"name"`
			Description string         `json:"description"`
			Parameters  map[string]any `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice        any   `json:"tool_choice"`
	ParallelToolCalls *bool `json:"parallel_tool_calls"`
}

func translateSDK(t *testing.T, body []byte) (messages.Request, chatRequest) {
	t.Helper()
	var r messages.Request
	if err := r.Parse(body); err != nil {
		t.Fatalf("parse %s: %v", body, err)
	}
	out, err := messages.AppendChatRequest(nil, &r, body, "gpt-4o")
	if err != nil {
		t.Fatal(err)
	}
	var c chatRequest
	if err := unmarshalStrict(out, &c); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return r, c
}

func TestAppendChatRequest_AnthropicSDKRequest_TextSystemStop(t *testing.T) {
	body := sdkRequestBody(t, anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 512,
		System: []anthropic.TextBlockParam{
			{Text: "You are terse."},
			{Text: "Answer in French.", CacheControl: anthropic.NewCacheControlEphemeralParam()},
		},
		StopSequences: []string{"###"},
		Metadata:      anthropic.MetadataParam{UserID: anthropic.String("user-7")},
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("Bonjour?")),
			anthropic.NewAssistantMessage(anthropic.NewTextBlock("Oui.")),
			anthropic.NewUserMessage(anthropic.NewTextBlock("Et alors?"), anthropic.NewImageBlockBase64("image/png", "iVBORw0KGgo=")),
		},
	}, false)
	r, c := translateSDK(t, body)
	if string(r.Model) != "claude-sonnet-4-5" || r.MaxTokens != 512 || r.Stream {
		t.Fatalf("parsed %+v", r)
	}
	if c.Model != "gpt-4o" || c.MaxCompletionTokens != 512 || c.Stream || len(c.Stop) != 1 || c.Stop[0] != "###" || c.User != "user-7" {
		t.Fatalf("chat %+v", c)
	}
	if len(c.Messages) != 4 || c.Messages[0].Role != "system" || c.Messages[0].Content != "You are terse.\nAnswer in French." {
		t.Fatalf("messages %+v", c.Messages)
	}
	parts, _ := c.Messages[3].Content.([]any)
	if c.Messages[1].Role != "user" || c.Messages[2].Role != "assistant" || c.Messages[2].Content != "Oui." || len(parts) != 2 {
		t.Fatalf("messages %+v", c.Messages)
	}
	img, _ := parts[1].(map[string]any)["image_url"].(map[string]any)
	if img["url"] != "data:image/png;base64,iVBORw0KGgo=" {
		t.Fatalf("image part %+v", parts[1])
	}
}

func TestAppendChatRequest_AnthropicSDKRequest_ToolLoop(t *testing.T) {
	weather := anthropic.ToolParam{
		Name:        "get_weather",
		Description: anthropic.String("Current weather"),
		InputSchema: anthropic.ToolInputSchemaParam{
			Properties: map[string]any{"city": map[string]any{"type": "string"}},
			Required:   []string{"city"},
		},
	}
	body := sdkRequestBody(t, anthropic.MessageNewParams{
		Model:      "claude-sonnet-4-5",
		MaxTokens:  1024,
		Tools:      []anthropic.ToolUnionParam{{OfTool: &weather}},
		ToolChoice: anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{DisableParallelToolUse: anthropic.Bool(true)}},
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?")),
			anthropic.NewAssistantMessage(
				anthropic.NewTextBlock("Let me check."),
				anthropic.NewToolUseBlock("toolu_01", map[string]any{"city": "Paris"}, "get_weather"),
			),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock("toolu_01", "18C and sunny", false)),
		},
	}, true)
	r, c := translateSDK(t, body)
	if !r.Stream || !c.Stream || c.StreamOptions == nil || !c.StreamOptions.IncludeUsage {
		t.Fatalf("stream: %+v / %+v", r, c)
	}
	if len(c.Tools) != 1 || c.Tools[0].Type != "function" || c.Tools[0].Function.Name != "get_weather" ||
		c.Tools[0].Function.Description != "Current weather" || c.Tools[0].Function.Parameters["type"] != "object" {
		t.Fatalf("tools %+v", c.Tools)
	}
	if c.ToolChoice != "required" || c.ParallelToolCalls == nil || *c.ParallelToolCalls {
		t.Fatalf("tool_choice %v parallel %v", c.ToolChoice, c.ParallelToolCalls)
	}
	if len(c.Messages) != 3 {
		t.Fatalf("messages %+v", c.Messages)
	}
	call := c.Messages[1]
	if call.Role != "assistant" || call.Content != "Let me check." || len(call.ToolCalls) != 1 ||
		call.ToolCalls[0].ID != "toolu_01" || call.ToolCalls[0].Function.Name != "get_weather" ||
		call.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("assistant %+v", call)
	}
	if res := c.Messages[2]; res.Role != "tool" || res.ToolCallID != "toolu_01" {
		t.Fatalf("tool result %+v", res)
	}
	// The tool result's content, string or blocks as the SDK sent it, is text.
	if res := c.Messages[2]; res.Content != "18C and sunny" {
		t.Fatalf("tool result content %#v", res.Content)
	}
}

// TestToolLoop_AnthropicSDKRoundTrip runs one turn of an agent loop as
// Claude Code does: the recorded OpenAI tool-call stream reaches the SDK as
// tool_use blocks, the SDK turns the message back into a param and adds the
// tool results, and that next request reaches the upstream as tool_calls
// and tool messages with the same ids and arguments.
func TestToolLoop_AnthropicSDKRoundTrip(t *testing.T) {
	payloads := streamPayloads(t, "openai/chat-stream-parallel-tool-calls.sse")
	want := recordedStream(t, payloads)
	msg, _, err := sdkStream(t, translateStream(t, payloads, nil, "claude-via-loom"))
	if err != nil {
		t.Fatal(err)
	}
	var results []anthropic.ContentBlockParamUnion
	for _, b := range msg.Content {
		if b.Type == "tool_use" {
			results = append(results, anthropic.NewToolResultBlock(b.ID, "result of "+b.Name, false))
		}
	}
	body := sdkRequestBody(t, anthropic.MessageNewParams{
		Model:     "claude-via-loom",
		MaxTokens: 256,
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("weather and stock?")),
			msg.ToParam(),
			anthropic.NewUserMessage(results...),
		},
	}, false)
	_, c := translateSDK(t, body)
	if len(c.Messages) != 2+len(want.tools) {
		t.Fatalf("messages %+v", c.Messages)
	}
	calls := c.Messages[1].ToolCalls
	if len(calls) != len(want.tools) {
		t.Fatalf("tool calls %+v", calls)
	}
	for i, w := range want.tools {
		if calls[i].ID != w.id || calls[i].Function.Name != w.name || !sameJSON(t, calls[i].Function.Arguments, w.args) {
			t.Errorf("call %d: %+v, want %+v", i, calls[i], w)
		}
		res := c.Messages[2+i]
		if res.Role != "tool" || res.ToolCallID != w.id || res.Content != "result of "+w.name {
			t.Errorf("result %d: %+v", i, res)
		}
	}
}

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	return reflect.DeepEqual(decodeAny(t, []byte(a)), decodeAny(t, []byte(b)))
}
