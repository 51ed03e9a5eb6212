package messages_test

import (
	stdjson "encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/messages"
)

func decodeAny(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := stdjson.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// translate parses body and translates it, failing the test on an error.
func translate(t testing.TB, body, upstreamModel string) []byte {
	t.Helper()
	var r messages.Request
	if err := r.Parse([]byte(body)); err != nil {
		t.Fatalf("parse: %v", err)
	}
	out, err := messages.AppendChatRequest(nil, &r, []byte(body), upstreamModel)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const head = `"model":"claude-x","max_tokens":100,`

func TestAppendChatRequest_Features(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"minimal: string content, max_completion_tokens",
			`{` + head + `"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100}`},
		{"system string becomes a system message",
			`{` + head + `"system":"be brief","messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"gpt-up","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_completion_tokens":100}`},
		{"system text blocks joined, cache_control dropped",
			`{` + head + `"system":[{"type":"text","text":"You are Claude Code."},{"type":"text","text":"Be \"exact\".","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"gpt-up","messages":[{"role":"system","content":"You are Claude Code.\nBe \"exact\"."},{"role":"user","content":"hi"}],"max_completion_tokens":100}`},
		{"user text and images become content parts",
			`{` + head + `"messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},` +
				`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},` +
				`{"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}}]}]}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},` +
				`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},` +
				`{"type":"image_url","image_url":{"url":"https://example.com/a.jpg"}}]}],"max_completion_tokens":100}`},
		{"documents: text inline, PDF as a file part",
			`{` + head + `"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"notes"}},` +
				`{"type":"document","title":"spec.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}]}]}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":[{"type":"text","text":"notes"},` +
				`{"type":"file","file":{"filename":"spec.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}],"max_completion_tokens":100}`},
		{"assistant tool_use becomes tool_calls, thinking dropped",
			`{` + head + `"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":[` +
				`{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"Checking."},` +
				`{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris","days":[1, 2]}}]}]}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":"Checking.",` +
				`"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"days\":[1, 2]}"}}]}],"max_completion_tokens":100}`},
		{"assistant with only tool calls has null content",
			`{` + head + `"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":{}},{"type":"tool_use","id":"b","name":"g","input":{"x":1}}]}]}`,
			`{"model":"gpt-up","messages":[{"role":"assistant","content":null,"tool_calls":[` +
				`{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"b","type":"function","function":{"name":"g","arguments":"{\"x\":1}"}}]}],"max_completion_tokens":100}`},
		{"tool_result becomes tool messages before the rest of the turn",
			`{` + head + `"messages":[{"role":"user","content":[` +
				`{"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},` +
				`{"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"line 1"},{"type":"text","text":"line 2"}],"is_error":true},` +
				`{"type":"text","text":"thanks"}]}]}`,
			`{"model":"gpt-up","messages":[{"role":"tool","tool_call_id":"toolu_1","content":"18C"},` +
				`{"role":"tool","tool_call_id":"toolu_2","content":"line 1\nline 2"},` +
				`{"role":"user","content":[{"type":"text","text":"thanks"}]}],"max_completion_tokens":100}`},
		{"tool_result images and documents follow in a user message; empty result is empty text",
			`{` + head + `"messages":[{"role":"user","content":[` +
				`{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"screenshot:"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/"}}]},` +
				`{"type":"tool_result","tool_use_id":"t2"},` +
				`{"type":"tool_result","tool_use_id":"t3","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}]}]}]}`,
			`{"model":"gpt-up","messages":[{"role":"tool","tool_call_id":"t1","content":"screenshot:"},{"role":"tool","tool_call_id":"t2","content":""},{"role":"tool","tool_call_id":"t3","content":""},` +
				`{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}},` +
				`{"type":"file","file":{"filename":"document.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}],"max_completion_tokens":100}`},
		{"tools and tool_choice auto",
			`{` + head + `"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"cache_control":{"type":"ephemeral"}}],"tool_choice":{"type":"auto"}}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100,"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now",` +
				`"parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"auto"}`},
		{"tool_choice any is required, no parallel calls",
			`{` + head + `"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false}`},
		{"tool_choice tool names the function",
			`{` + head + `"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"}}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`},
		{"tool_choice none",
			`{` + head + `"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"none"}}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"none"}`},
		{"tool_choice without tools is left out (OpenAI refuses it)",
			`{` + head + `"messages":[{"role":"user","content":"hi"}],"tools":[],"tool_choice":{"type":"auto"}}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100}`},
		{"sampling, stop sequences, user; top_k dropped",
			`{` + head + `"messages":[{"role":"user","content":"hi"}],"temperature":0.2,"top_p":0.9,"top_k":40,"stop_sequences":["END","\n\nHuman:"],"metadata":{"user_id":"user-42"}}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100,"temperature":0.2,"top_p":0.9,"stop":["END","\n\nHuman:"],"user":"user-42"}`},
		{"stream asks for usage",
			`{` + head + `"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100,"stream":true,"stream_options":{"include_usage":true}}`},
		{"unknown fields and thinking config left out",
			`{` + head + `"thinking":{"type":"enabled","budget_tokens":2000},"service_tier":"auto","messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100}`},
		{"structured output and strict tools",
			`{` + head + `"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","strict":true,"input_schema":{"type":"object"}}],"output_config":{"effort":"high","format":{"type":"json_schema","schema":{"type":"object","properties":{"a":{"type":"string"}}}}}}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":100,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"},"strict":true}}],` +
				`"response_format":{"type":"json_schema","json_schema":{"name":"output","schema":{"type":"object","properties":{"a":{"type":"string"}}}}}}`},
		{"empty user content array stays a turn",
			`{` + head + `"messages":[{"role":"user","content":[]}]}`,
			`{"model":"gpt-up","messages":[{"role":"user","content":""}],"max_completion_tokens":100}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(t, tt.in, "gpt-up")
			if !reflect.DeepEqual(decodeAny(t, got), decodeAny(t, []byte(tt.want))) {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAppendChatRequest_EmptyUpstreamModel_KeepsClientModel(t *testing.T) {
	got := translate(t, `{"model":"claude-\u0078","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`, "")
	if !strings.HasPrefix(string(got), `{"model":"claude-x",`) {
		t.Fatalf("got %s", got)
	}
}

func TestAppendChatRequestWith_LegacyMaxTokens(t *testing.T) {
	body := []byte(`{"model":"m","max_tokens":7,"messages":[{"role":"user","content":"hi"}]}`)
	var r messages.Request
	if err := r.Parse(body); err != nil {
		t.Fatal(err)
	}
	got, err := messages.AppendChatRequestWith(nil, &r, body, "up", messages.ChatOptions{LegacyMaxTokens: true})
	if err != nil || !strings.Contains(string(got), `"max_tokens":7`) || strings.Contains(string(got), "max_completion_tokens") {
		t.Fatalf("got %s (%v)", got, err)
	}
}

func TestAppendChatRequestWith_MaxTokensCap(t *testing.T) {
	body := []byte(`{"model":"m","max_tokens":32000,"messages":[{"role":"user","content":"hi"}]}`)
	var r messages.Request
	if err := r.Parse(body); err != nil {
		t.Fatal(err)
	}
	for cap, want := range map[int64]string{16384: `"max_completion_tokens":16384`, 64000: `"max_completion_tokens":32000`, 0: `"max_completion_tokens":32000`} {
		got, err := messages.AppendChatRequestWith(nil, &r, body, "up", messages.ChatOptions{MaxTokensCap: cap})
		if err != nil || !strings.Contains(string(got), want) {
			t.Errorf("cap %d: got %s (%v), want %s", cap, got, err, want)
		}
	}
}

func TestAppendChatRequest_OtherBody_ErrNotParsed(t *testing.T) {
	body := []byte(`{"model":"m","max_tokens":7,"messages":[{"role":"user","content":"hi"}]}`)
	var r messages.Request
	if _, err := messages.AppendChatRequest(nil, &r, body, ""); !errors.Is(err, messages.ErrNotParsed) {
		t.Fatalf("unparsed: %v", err)
	}
	if err := r.Parse(body); err != nil {
		t.Fatal(err)
	}
	if _, err := messages.AppendChatRequest(nil, &r, body[:10], ""); !errors.Is(err, messages.ErrNotParsed) {
		t.Fatalf("other body: %v", err)
	}
}

func TestParse_ReadsWhatTheServerNeeds(t *testing.T) {
	var r messages.Request
	body := `{"model":"claude-sonnet-4-5","max_tokens":2048,"stream":true,"temperature":0.5,"top_p":1,"messages":[{"role":"user","content":"hi"}]}`
	if err := r.Parse([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if string(r.Model) != "claude-sonnet-4-5" || !r.Stream || r.MaxTokens != 2048 ||
		*r.Params.MaxTokens != 2048 || *r.Params.Temperature != 0.5 || *r.Params.TopP != 1 || r.Params.RequestBodyBytes != len(body) {
		t.Fatalf("%+v", r)
	}
	// Reuse: nothing of the last body survives.
	if err := r.Parse([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`)); err != nil {
		t.Fatal(err)
	}
	if string(r.Model) != "m" || r.Stream || r.Params.Temperature != nil {
		t.Fatalf("%+v", r)
	}
}

// TestParse_RefusesWhatAnthropicRefuses: each error is a 400
// invalid_request_error whose message names the field as Anthropic does.
func TestParse_RefusesWhatAnthropicRefuses(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct{ name, body, field string }{
		{"not JSON", `{"model":`, "not valid JSON"},
		{"not an object", `[1]`, "JSON object"},
		{"model missing", `{"max_tokens":1,` + msgs + `}`, "model: Field required"},
		{"model not a string", `{"model":1,"max_tokens":1,` + msgs + `}`, "model:"},
		{"model empty", `{"model":"","max_tokens":1,` + msgs + `}`, "model:"},
		{"max_tokens missing", `{"model":"m",` + msgs + `}`, "max_tokens: Field required"},
		{"max_tokens zero", `{"model":"m","max_tokens":0,` + msgs + `}`, "max_tokens:"},
		{"max_tokens float", `{"model":"m","max_tokens":1.5,` + msgs + `}`, "max_tokens:"},
		{"max_tokens string", `{"model":"m","max_tokens":"9",` + msgs + `}`, "max_tokens:"},
		{"messages missing", `{"model":"m","max_tokens":1}`, "messages: Field required"},
		{"messages not a list", `{"model":"m","max_tokens":1,"messages":{}}`, "messages:"},
		{"messages empty", `{"model":"m","max_tokens":1,"messages":[]}`, "messages:"},
		{"message not an object", `{"model":"m","max_tokens":1,"messages":["hi"]}`, "messages.0:"},
		{"role system", `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}`, "messages.0.role:"},
		{"role missing", `{"model":"m","max_tokens":1,"messages":[{"content":"x"}]}`, "messages.0.role:"},
		{"content missing", `{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}`, "messages.0.content:"},
		{"content a number", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":1}]}`, "messages.0.content:"},
		{"block without type", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"text":"x"}]}]}`, "messages.0.content.0.type:"},
		{"text block without text", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages.0.content.0.text:"},
		{"tool_use in a user turn", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"f","input":{}}]}]}`, "messages.0.content.0.type:"},
		{"tool_use input not an object", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":"x"}]}]}`, "messages.0.content.0.input:"},
		{"tool_result without id", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]}`, "messages.0.content.0.tool_use_id:"},
		{"image bad media type", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"x"}}]}]}`, "messages.0.content.0.source.media_type:"},
		{"image from a file id", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`, "messages.0.content.0.source.type:"},
		{"server tool result block", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"server_tool_use","id":"a","name":"web_search","input":{}}]}]}`, "messages.0.content.0.type:"},
		{"system a number", `{"model":"m","max_tokens":1,"system":1,` + msgs + `}`, "system:"},
		{"system block not text", `{"model":"m","max_tokens":1,"system":[{"type":"image"}],` + msgs + `}`, "system.0.type:"},
		{"temperature above 1", `{"model":"m","max_tokens":1,"temperature":1.5,` + msgs + `}`, "temperature:"},
		{"top_p a string", `{"model":"m","max_tokens":1,"top_p":"x",` + msgs + `}`, "top_p:"},
		{"top_k negative", `{"model":"m","max_tokens":1,"top_k":-1,` + msgs + `}`, "top_k:"},
		{"stream a string", `{"model":"m","max_tokens":1,"stream":"yes",` + msgs + `}`, "stream:"},
		{"stop_sequences of numbers", `{"model":"m","max_tokens":1,"stop_sequences":[1],` + msgs + `}`, "stop_sequences.0:"},
		{"server tool", `{"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search"}],` + msgs + `}`, "tools.0.type:"},
		{"tool without schema", `{"model":"m","max_tokens":1,"tools":[{"name":"f"}],` + msgs + `}`, "tools.0.input_schema:"},
		{"tool without name", `{"model":"m","max_tokens":1,"tools":[{"input_schema":{}}],` + msgs + `}`, "tools.0.name:"},
		{"tool_choice unknown", `{"model":"m","max_tokens":1,"tool_choice":{"type":"maybe"},` + msgs + `}`, "tool_choice.type:"},
		{"tool_choice tool without name", `{"model":"m","max_tokens":1,"tool_choice":{"type":"tool"},` + msgs + `}`, "tool_choice.name:"},
		{"output format not a schema", `{"model":"m","max_tokens":1,"output_config":{"format":{"type":"text"}},` + msgs + `}`, "output_config.format.type:"},
		{"output schema missing", `{"model":"m","max_tokens":1,"output_config":{"format":{"type":"json_schema"}},` + msgs + `}`, "output_config.format.schema:"},
		{"MCP servers", `{"model":"m","max_tokens":1,"mcp_servers":[{"type":"url","url":"https://mcp.example.com","name":"x"}],` + msgs + `}`, "mcp_servers:"},
		{"metadata user_id a number", `{"model":"m","max_tokens":1,"metadata":{"user_id":1},` + msgs + `}`, "metadata.user_id:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r messages.Request
			err := r.Parse([]byte(tt.body))
			var ae *apierror.Error
			if !errors.As(err, &ae) {
				t.Fatalf("accepted or untyped: %v", err)
			}
			if ae.Status != 400 || ae.Type != messages.TypeInvalidRequest || !strings.Contains(ae.Message, tt.field) {
				t.Fatalf("got %d %s %q, want a 400 naming %q", ae.Status, ae.Type, ae.Message, tt.field)
			}
			status, body := messages.ErrorFromAPIError(nil, ae)
			var shape struct {
				Type  string
				Error struct{ Type, Message string }
			}
			if err := stdjson.Unmarshal(body, &shape); err != nil || status != 400 || shape.Type != "error" ||
				shape.Error.Type != "invalid_request_error" || shape.Error.Message != ae.Message {
				t.Fatalf("rendered %d %s (%v)", status, body, err)
			}
		})
	}
}
