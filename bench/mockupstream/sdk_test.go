package mockupstream

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// httpClient is a net/http client whose every connection goes to m's in-memory listener, for the official
// SDKs, which speak net/http.
func (m *testMock) httpClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return m.ln.Dial() }}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// tripArgs is what a client's tool takes; the SDK test fails unless the mock's arguments fill its required
// fields with values the schema allows.
type tripArgs struct {
	City  string   `json:"city"`
	Days  int      `json:"days"`
	Unit  string   `json:"unit"`
	Stops []string `json:"stops"`
}

var tripSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"city":  map[string]any{"type": "string", "minLength": 2},
		"days":  map[string]any{"type": "integer", "minimum": 3, "maximum": 14},
		"unit":  map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
		"stops": map[string]any{"type": "array", "minItems": 2, "items": map[string]any{"type": "string"}},
		"note":  map[string]any{"type": "string"},
	},
	"required":             []string{"city", "days", "unit", "stops"},
	"additionalProperties": false,
}

func TestChat_SDK_ToolCallRoundTrip_StreamedArgumentsFitTheSchema(t *testing.T) {
	m := startMock(t, Config{})
	client := m.openAIClient(t)
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Plan a trip to Paris")},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "plan_trip", Parameters: tripSchema})},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
	stream := client.Chat.Completions.NewStreaming(ctx, params, option.WithHeader(HeaderChunks, "40"))
	var acc openai.ChatCompletionAccumulator
	argDeltas := 0
	for stream.Next() {
		chunk := stream.Current()
		if !acc.AddChunk(chunk) {
			t.Fatalf("accumulator refused chunk %s", chunk.RawJSON())
		}
		if len(chunk.Choices) > 0 && len(chunk.Choices[0].Delta.ToolCalls) > 0 &&
			chunk.Choices[0].Delta.ToolCalls[0].Function.Arguments != "" {
			argDeltas++
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 || len(acc.Choices[0].Message.ToolCalls) != 1 || acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("accumulated %s", acc.RawJSON())
	}
	call := acc.Choices[0].Message.ToolCalls[0]
	dec := json.NewDecoder(strings.NewReader(call.Function.Arguments))
	dec.DisallowUnknownFields()
	var args tripArgs
	if err := dec.Decode(&args); err != nil {
		t.Fatalf("arguments %q: %v", call.Function.Arguments, err)
	}
	if len(args.City) < 2 || args.Days < 3 || args.Days > 14 || args.Unit != "celsius" || len(args.Stops) != 2 ||
		call.Function.Name != "plan_trip" || argDeltas < 2 {
		t.Errorf("arguments %+v from %d deltas, call %s", args, argDeltas, call.RawJSON())
	}
	unary, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: params.Model,
		Messages: params.Messages, Tools: params.Tools})
	if err != nil {
		t.Fatal(err)
	}
	if got := unary.Choices[0].Message.ToolCalls[0].Function.Arguments; got != call.Function.Arguments {
		t.Errorf("streamed arguments %q, unary %q", call.Function.Arguments, got)
	}
	if acc.Usage.CompletionTokens != int64(argDeltas) {
		t.Errorf("usage %d completion tokens for %d argument chunks", acc.Usage.CompletionTokens, argDeltas)
	}

	params.Messages = append(params.Messages, acc.Choices[0].Message.ToParam(),
		openai.ToolMessage(`{"forecast":"sunny"}`, call.ID))
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{} // only a stream may ask for usage
	final, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if c := final.Choices[0]; c.FinishReason != "stop" || c.Message.Content == "" || len(c.Message.ToolCalls) != 0 {
		t.Errorf("answer to the tool result %s", final.RawJSON())
	}
}
