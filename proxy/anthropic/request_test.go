package anthropic

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/apierror"
)

// messagesRequest translates body and decodes the result for comparison.
func messagesRequest(tb testing.TB, body string, o RequestOptions) (map[string]any, error) {
	tb.Helper()
	out, err := AppendMessagesRequest([]byte("prefix"), []byte(body), o)
	if !strings.HasPrefix(string(out), "prefix") {
		tb.Fatalf("dst not appended to: %q", out)
	}
	if err != nil {
		if string(out) != "prefix" {
			tb.Fatalf("error %v but dst grew: %q", err, out)
		}
		return nil, err
	}
	var got map[string]any
	if err := json.Unmarshal(out[len("prefix"):], &got); err != nil {
		tb.Fatalf("not JSON: %s: %v", out, err)
	}
	return got, nil
}

func decode(tb testing.TB, s string) map[string]any {
	tb.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		tb.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

var user = `{"role":"user","content":"Hi"}`
var userHi = `{"role":"user","content":[{"type":"text","text":"Hi"}]}`

func TestAppendMessagesRequest_Translates(t *testing.T) {
	tests := []struct {
		name string
		body string
		opts RequestOptions
		want string
	}{
		{
			name: "minimal: upstream model and the default max_tokens",
			body: `{"model":"claude","messages":[` + user + `]}`,
			opts: RequestOptions{UpstreamModel: "claude-sonnet-4-5", DefaultMaxTokens: 1000},
			want: `{"model":"claude-sonnet-4-5","max_tokens":1000,"messages":[` + userHi + `]}`,
		},
		{
			name: "no default: FallbackMaxTokens, client model kept",
			body: `{"model":"claude","messages":[` + user + `]}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[` + userHi + `]}`,
		},
		{
			name: "max_completion_tokens and max_tokens: the larger",
			body: `{"model":"c","max_tokens":10,"max_completion_tokens":300,"messages":[` + user + `]}`,
			opts: RequestOptions{DefaultMaxTokens: 5},
			want: `{"model":"c","max_tokens":300,"messages":[` + userHi + `]}`,
		},
		{
			name: "system and developer messages join the system prompt, in order",
			body: `{"model":"c","messages":[{"role":"system","content":"Be brief."},` + user + `,{"role":"developer","content":[{"type":"text","text":"Use French."},{"type":"text","text":""}]},{"role":"system","content":""}]}`,
			want: `{"model":"c","max_tokens":4096,"system":[{"type":"text","text":"Be brief."},{"type":"text","text":"Use French."}],"messages":[` + userHi + `]}`,
		},
		{
			name: "consecutive turns of one role merge",
			body: `{"model":"c","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"assistant","content":"c"},{"role":"assistant","content":"d"},{"role":"user","content":"e"}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[
				{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
				{"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]},
				{"role":"user","content":[{"type":"text","text":"e"}]}]}`,
		},
		{
			name: "images: data URL to base64, http URL to url, cache_control kept",
			body: `{"model":"c","messages":[{"role":"user","content":[
				{"type":"text","text":"What is this?","cache_control":{"type":"ephemeral"}},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}},
				{"type":"image_url","image_url":{"url":"https:\/\/example.com\/cat.jpg"}}]}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[{"role":"user","content":[
				{"type":"text","text":"What is this?","cache_control":{"type":"ephemeral"}},
				{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
				{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]}`,
		},
		{
			name: "a PDF file part becomes a document",
			body: `{"model":"c","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}]}]}`,
		},
		{
			name: "tool calls and tool results round trip",
			body: `{"model":"c","messages":[` + user + `,
				{"role":"assistant","content":null,"tool_calls":[
					{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
					{"id":"call_2","type":"function","function":{"name":"now","arguments":""}}]},
				{"role":"tool","tool_call_id":"call_1","content":"18C"},
				{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"noon"}]},
				{"role":"user","content":"thanks"}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `,
				{"role":"assistant","content":[
					{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
					{"type":"tool_use","id":"call_2","name":"now","input":{}}]},
				{"role":"user","content":[
					{"type":"tool_result","tool_use_id":"call_1","content":[{"type":"text","text":"18C"}]},
					{"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"noon"}]},
					{"type":"text","text":"thanks"}]}]}`,
		},
		{
			name: "assistant text then tool calls; a tool result with empty content",
			body: `{"model":"c","messages":[` + user + `,{"role":"assistant","content":"Let me look.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":""}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `,
				{"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"call_1","name":"f","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1"}]}]}`,
		},
		{
			name: "function tools, tool_choice auto with parallel_tool_calls false",
			body: `{"model":"c","messages":[` + user + `],"parallel_tool_calls":false,"tools":[
				{"type":"function","function":{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},
				{"type":"function","function":{"name":"now"}}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"tools":[
				{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},
				{"name":"now","input_schema":{"type":"object","properties":{}}}],
				"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`,
		},
		{
			name: "tool_choice required becomes any",
			body: `{"model":"c","messages":[` + user + `],"tool_choice":"required","tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"any"}}`,
		},
		{
			name: "tool_choice none stays none, without disable_parallel_tool_use",
			body: `{"model":"c","messages":[` + user + `],"tool_choice":"none","parallel_tool_calls":false,"tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"none"}}`,
		},
		{
			name: "tool_choice naming a function becomes type tool",
			body: `{"model":"c","messages":[` + user + `],"tool_choice":{"type":"function","function":{"name":"f"}},"tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"tool","name":"f"}}`,
		},
		{
			name: "tool_choice without tools is dropped",
			body: `{"model":"c","messages":[` + user + `],"tool_choice":"auto","tools":[]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `]}`,
		},
		{
			name: "stop string",
			body: `{"model":"c","messages":[` + user + `],"stop":"END"}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"stop_sequences":["END"]}`,
		},
		{
			name: "stop array, empty strings left out",
			body: `{"model":"c","messages":[` + user + `],"stop":["a","","b"]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"stop_sequences":["a","b"]}`,
		},
		{
			name: "sampling, user, stream; harmless parameters dropped",
			body: `{"model":"c","messages":[` + user + `],"temperature":0.5,"top_p":0.9,"user":"u-42","stream":true,"stream_options":{"include_usage":true},
				"seed":7,"presence_penalty":0.1,"frequency_penalty":0.2,"n":1,"logprobs":false,"store":false,"metadata":{"a":"b"},"service_tier":"auto","reasoning_effort":"low","response_format":{"type":"text"},"modalities":["text"]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"temperature":0.5,"top_p":0.9,"metadata":{"user_id":"u-42"},"stream":true}`,
		},
		{
			name: "a JSON schema response format becomes structured output",
			body: `{"model":"c","messages":[` + user + `],"response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,"schema":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"],"additionalProperties":false}}}}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"output_config":{"format":{"type":"json_schema","schema":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"],"additionalProperties":false}}}}`,
		},
		{
			name: "a user tag longer than Anthropic's user_id allows is dropped",
			body: `{"model":"c","messages":[` + user + `],"user":"` + strings.Repeat("u", 257) + `"}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `]}`,
		},
		{
			name: "Anthropic's own top_k and thinking pass through",
			body: `{"model":"c","messages":[` + user + `],"top_k":40,"thinking":{"type":"enabled","budget_tokens":2048}}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"top_k":40,"thinking":{"type":"enabled","budget_tokens":2048}}`,
		},
		{
			name: "escaped keys read as decoders read them",
			body: `{"mod\u0065l":"c","messages":[` + user + `],"\u0073top":"x"}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `],"stop_sequences":["x"]}`,
		},
		{
			name: "a refusal part echoed back is dropped",
			body: `{"model":"c","messages":[` + user + `,{"role":"assistant","content":[{"type":"refusal","refusal":"no"},{"type":"text","text":"ok"}]}]}`,
			want: `{"model":"c","max_tokens":4096,"messages":[` + userHi + `,{"role":"assistant","content":[{"type":"text","text":"ok"}]}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := messagesRequest(t, tt.body, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if want := decode(t, tt.want); !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Fatalf("got  %s\nwant %s", g, w)
			}
		})
	}
}

func TestAppendMessagesRequest_Refuses(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	tests := []struct {
		name, body, param, code string
	}{
		{"not JSON", `{"model":`, "", ""},
		{"not an object", `[1]`, "", "invalid_type"},
		{"invalid UTF-8", "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", "", "invalid_encoding"},
		{"no model", `{"messages":[` + user + `]}`, "model", ""},
		{"model not a string", `{"model":1,"messages":[` + user + `]}`, "model", "invalid_type"},
		{"no messages", `{"model":"c"}`, "messages", "missing_required_parameter"},
		{"empty messages", `{"model":"c","messages":[]}`, "messages", "invalid_value"},
		{"only system messages", `{"model":"c","messages":[{"role":"system","content":"x"}]}`, "messages", "invalid_value"},
		{"messages not an array", `{"model":"c","messages":"hi"}`, "messages", "invalid_type"},
		{"message not an object", `{"model":"c","messages":[` + user + `,3]}`, "messages[1]", "invalid_type"},
		{"unknown role", `{"model":"c","messages":[{"role":"function","content":"x"}]}`, "messages[0].role", "invalid_value"},
		{"missing role", `{"model":"c","messages":[{"content":"x"}]}`, "messages[0].role", "missing_required_parameter"},
		{"content a number", `{"model":"c","messages":[{"role":"user","content":5}]}`, "messages[0].content", "invalid_type"},
		{"part without type", `{"model":"c","messages":[{"role":"user","content":[{"text":"x"}]}]}`, "messages[0].content[0].type", "missing_required_parameter"},
		{"text part text not a string", `{"model":"c","messages":[{"role":"user","content":[{"type":"text","text":1}]}]}`, "messages[0].content[0].text", "invalid_type"},
		{"image in a system message", `{"model":"c","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]},` + user + `]}`, "messages[0].content[0].type", "invalid_value"},
		{"audio input", `{"model":"c","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`, "messages[0].content[0]", "unsupported_parameter"},
		{"image type unknown", `{"model":"c","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/tiff;base64,AAAA"}}]}]}`, "messages[0].content[0].image_url.url", "invalid_value"},
		{"image data not base64", `{"model":"c","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,<script>"}}]}]}`, "messages[0].content[0].image_url.url", "invalid_value"},
		{"image URL scheme", `{"model":"c","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]}`, "messages[0].content[0].image_url.url", "invalid_value"},
		{"image_url wrong type", `{"model":"c","messages":[{"role":"user","content":[{"type":"image_url","image_url":7}]}]}`, "messages[0].content[0].image_url", "invalid_type"},
		{"file by id", `{"model":"c","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}`, "messages[0].content[0].file.file_id", "unsupported_parameter"},
		{"tool call arguments not JSON", `{"model":"c","messages":[` + user + `,{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{nope"}}]}]}`, "messages[1].tool_calls[0].function.arguments", "invalid_value"},
		{"tool call arguments not an object", `{"model":"c","messages":[` + user + `,{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[1].tool_calls[0].function.arguments", "invalid_value"},
		{"tool call without id", `{"model":"c","messages":[` + user + `,{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}`, "messages[1].tool_calls[0].id", "invalid_type"},
		{"tool message without tool_call_id", `{"model":"c","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id", "invalid_type"},
		{"n above 1", `{"model":"c","n":2,"messages":[` + user + `]}`, "n", "unsupported_parameter"},
		{"n a string", `{"model":"c","n":"2","messages":[` + user + `]}`, "n", "invalid_type"},
		{"logprobs", `{"model":"c","logprobs":true,"messages":[` + user + `]}`, "logprobs", "unsupported_parameter"},
		{"top_logprobs", `{"model":"c","top_logprobs":2,"messages":[` + user + `]}`, "top_logprobs", "unsupported_parameter"},
		{"logit_bias", `{"model":"c","logit_bias":{"1":2},"messages":[` + user + `]}`, "logit_bias", "unsupported_parameter"},
		{"audio output", `{"model":"c","audio":{"voice":"x"},"messages":[` + user + `]}`, "audio", "unsupported_parameter"},
		{"audio modality", `{"model":"c","modalities":["text","audio"],"messages":[` + user + `]}`, "modalities", "unsupported_parameter"},
		{"json_object response format", `{"model":"c","response_format":{"type":"json_object"},"messages":[` + user + `]}`, "response_format.type", "unsupported_parameter"},
		{"json_schema without schema", `{"model":"c","response_format":{"type":"json_schema","json_schema":{"name":"x"}},"messages":[` + user + `]}`, "response_format.json_schema.schema", "missing_required_parameter"},
		{"json_schema schema a string", `{"model":"c","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":"{}"}},"messages":[` + user + `]}`, "response_format.json_schema.schema", "invalid_type"},
		{"legacy functions", `{"model":"c","functions":[{"name":"f"}],"messages":[` + user + `]}`, "functions", "unsupported_parameter"},
		{"web search", `{"model":"c","web_search_options":{},"messages":[` + user + `]}`, "web_search_options", "unsupported_parameter"},
		{"temperature above Anthropic's 1", `{"model":"c","temperature":1.5,"messages":[` + user + `]}`, "temperature", "invalid_value"},
		{"temperature a string", `{"model":"c","temperature":"hot","messages":[` + user + `]}`, "temperature", "invalid_type"},
		{"top_p out of range", `{"model":"c","top_p":3,"messages":[` + user + `]}`, "top_p", "invalid_value"},
		{"max_tokens zero", `{"model":"c","max_tokens":0,"messages":[` + user + `]}`, "max_tokens", "invalid_value"},
		{"max_tokens fractional", `{"model":"c","max_tokens":1.5,"messages":[` + user + `]}`, "max_tokens", "invalid_type"},
		{"max_tokens huge", `{"model":"c","max_tokens":99999999999999999999,"messages":[` + user + `]}`, "max_tokens", "invalid_type"},
		{"stop an object", `{"model":"c","stop":{},"messages":[` + user + `]}`, "stop", "invalid_type"},
		{"stop element a number", `{"model":"c","stop":["a",1],"messages":[` + user + `]}`, "stop[1]", "invalid_type"},
		{"stop too many", `{"model":"c","stop":[` + strings.Repeat(`"a",`, 64) + `"b"],"messages":[` + user + `]}`, "stop", "invalid_value"},
		{"user a number", `{"model":"c","user":5,"messages":[` + user + `]}`, "user", "invalid_type"},
		{"stream a string", `{"model":"c","stream":"yes","messages":[` + user + `]}`, "stream", "invalid_type"},
		{"tools an object", `{"model":"c","tools":{},"messages":[` + user + `]}`, "tools", "invalid_type"},
		{"custom tool", `{"model":"c","tools":[{"type":"custom","custom":{"name":"x"}}],"messages":[` + user + `]}`, "tools[0].type", "unsupported_parameter"},
		{"tool without name", `{"model":"c","tools":[{"type":"function","function":{}}],"messages":[` + user + `]}`, "tools[0].function.name", "invalid_type"},
		{"tool name huge", `{"model":"c","tools":[{"type":"function","function":{"name":"` + big + `"}}],"messages":[` + user + `]}`, "tools[0].function.name", "invalid_value"},
		{"tool parameters an array", `{"model":"c","tools":[{"type":"function","function":{"name":"f","parameters":[]}}],"messages":[` + user + `]}`, "tools[0].function.parameters", "invalid_type"},
		{"tool_choice unknown", `{"model":"c","tool_choice":"sometimes","tools":[{"type":"function","function":{"name":"f"}}],"messages":[` + user + `]}`, "tool_choice", "invalid_value"},
		{"tool_choice a number", `{"model":"c","tool_choice":1,"messages":[` + user + `]}`, "tool_choice", "invalid_type"},
		{"tool_choice function without name", `{"model":"c","tool_choice":{"type":"function"},"tools":[{"type":"function","function":{"name":"f"}}],"messages":[` + user + `]}`, "tool_choice.function.name", "invalid_type"},
		{"duplicate model", `{"model":"c","model":"d","messages":[` + user + `]}`, "model", "duplicate_parameter"},
		{"duplicate escaped max_tokens", `{"max_tokens":1,"max_tok\u0065ns":100000,"model":"c","messages":[` + user + `]}`, "max_tokens", "duplicate_parameter"},
		{"thinking a string", `{"model":"c","thinking":"on","messages":[` + user + `]}`, "thinking", "invalid_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := messagesRequest(t, tt.body, RequestOptions{})
			var ae *apierror.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v, want an *apierror.Error", err)
			}
			if ae.Status != 400 || ae.Type != apierror.TypeInvalidRequest || ae.Param != tt.param || ae.Code != tt.code || ae.Message == "" {
				t.Fatalf("error %+v, want a 400 about %q (%q)", ae, tt.param, tt.code)
			}
		})
	}
}

func TestAppendMessagesRequest_HugeTextPassesThroughUnchanged(t *testing.T) {
	big := strings.Repeat("é\\n\\\"", 1<<18)
	got, err := messagesRequest(t, `{"model":"c","messages":[{"role":"user","content":"`+big+`"}]}`, RequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	text := got["messages"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)["text"].(string)
	if text != strings.Repeat("é\n\"", 1<<18) {
		t.Fatalf("text of %d bytes changed", len(text))
	}
}

// typicalRequest is an agent's turn: a system prompt, a conversation with
// a tool call and its result, two tools.
const typicalRequest = `{"model":"claude","stream":true,"stream_options":{"include_usage":true},"temperature":0.2,"max_tokens":1024,"user":"u-1",
"messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},
{"role":"user","content":"What is the weather in Paris, and what time is it there?"},
{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
{"role":"tool","tool_call_id":"call_1","content":"18C and sunny"},
{"role":"user","content":[{"type":"text","text":"And in Lyon?"}]}],
"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
{"type":"function","function":{"name":"get_time","description":"Local time","parameters":{"type":"object","properties":{"tz":{"type":"string"}}}}}],
"tool_choice":"auto","parallel_tool_calls":false}`

func TestAppendMessagesRequest_Allocations(t *testing.T) {
	body := []byte(typicalRequest)
	dst := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		dst, _ = AppendMessagesRequest(dst[:0], body, RequestOptions{UpstreamModel: "claude-sonnet-4-5"})
	}); n > 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

func BenchmarkAppendMessagesRequest(b *testing.B) {
	body := []byte(typicalRequest)
	dst := make([]byte, 0, 4096)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = AppendMessagesRequest(dst[:0], body, RequestOptions{UpstreamModel: "claude-sonnet-4-5"})
	}
}
