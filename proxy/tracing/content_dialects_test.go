package tracing

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

func wireFixture(t *testing.T, dialect, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", dialect, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decoded(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func str(s string) *string { return &s }

// An Anthropic Messages request keeps its system prompt (beside the turns,
// as blocks here), its text, and its tool use and results as the
// conventions' tool_call and tool_call_response parts.
func TestContent_AnthropicRequest_SystemTurnsAndToolsCaptured(t *testing.T) {
	req := decoded(t, `{"model":"claude-sonnet-4-5","max_tokens":100,
		"system":[{"type":"text","text":"Be terse."}],
		"messages":[
		 {"role":"user","content":[{"type":"text","text":"Weather in Paris?"},{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]},
		 {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris","unit":"c"}}]},
		 {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"18C"}]}]}]}`)
	want := []message{
		{Role: "system", Parts: []part{{Type: "text", Content: str("Be terse.")}}},
		{Role: "user", Parts: []part{{Type: "text", Content: str("Weather in Paris?")}, {Type: "image"}}},
		{Role: "assistant", Parts: []part{{Type: "tool_call", ID: "toolu_1", Name: "get_weather", Arguments: `{"city":"Paris","unit":"c"}`}}},
		{Role: "user", Parts: []part{{Type: "tool_call_response", ID: "toolu_1", Response: "18C"}}},
	}
	if got := inputMessages(req); !reflect.DeepEqual(got, want) {
		t.Errorf("inputMessages =\n%+v\nwant\n%+v", got, want)
	}
}

// A Responses API request: instructions, then its input items (a message,
// a function call and its output); a plain string input is the user's turn.
func TestContent_ResponsesRequest_InstructionsAndItemsCaptured(t *testing.T) {
	req := decoded(t, `{"model":"gpt-5-mini","instructions":"Answer in French.","input":[
		{"role":"user","content":[{"type":"input_text","text":"Weather?"}]},
		{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
		{"type":"function_call_output","call_id":"call_1","output":"18C"}]}`)
	want := []message{
		{Role: "system", Parts: []part{{Type: "text", Content: str("Answer in French.")}}},
		{Role: "user", Parts: []part{{Type: "text", Content: str("Weather?")}}},
		{Role: "assistant", Parts: []part{{Type: "tool_call", ID: "call_1", Name: "get_weather", Arguments: `{"city":"Paris"}`}}},
		{Role: "tool", Parts: []part{{Type: "tool_call_response", ID: "call_1", Response: "18C"}}},
	}
	if got := inputMessages(req); !reflect.DeepEqual(got, want) {
		t.Errorf("inputMessages =\n%+v\nwant\n%+v", got, want)
	}
	plain := inputMessages(decoded(t, `{"model":"gpt-5-mini","input":"Hello"}`))
	if len(plain) != 1 || plain[0].Role != "user" || *plain[0].Parts[0].Content != "Hello" {
		t.Errorf("string input = %+v", plain)
	}
	// Embeddings' input list is still the user's text, not items.
	emb := inputMessages(decoded(t, `{"model":"text-embedding-3-small","input":["a","b"]}`))
	if len(emb) != 1 || len(emb[0].Parts) != 2 || *emb[0].Parts[1].Content != "b" {
		t.Errorf("embeddings input = %+v", emb)
	}
}

// The recorded answers of both dialects come out as one assistant message
// with their text and the reason they stopped.
func TestContent_RecordedAnthropicAndResponsesAnswers_Captured(t *testing.T) {
	r := &call.Record{}
	r.Content.Response = wireFixture(t, "anthropic", "messages-nonstream.json")
	got := outputMessages(r)
	if len(got) != 1 || got[0].Role != "assistant" || got[0].FinishReason != "end_turn" || len(got[0].Parts) != 1 ||
		*got[0].Parts[0].Content != `{"product_name": "Green Tea", "price": 5.50, "quantity": 2}` {
		t.Errorf("anthropic answer = %+v", got)
	}
	r.Content.Response = wireFixture(t, "openai-responses", "nonstream-reasoning-tokens.json")
	got = outputMessages(r)
	if len(got) != 1 || got[0].Role != "assistant" || got[0].FinishReason != "completed" || len(got[0].Parts) != 1 ||
		got[0].Parts[0].Content == nil || len(*got[0].Parts[0].Content) < 50 {
		t.Errorf("responses answer = %+v", got)
	}
}
