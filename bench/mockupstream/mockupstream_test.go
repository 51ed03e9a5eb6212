package mockupstream

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// testMock is a Server on an in-memory listener with a client dialling it.
type testMock struct {
	srv    *Server
	ln     *fasthttputil.InmemoryListener
	client *fasthttp.Client
}

func startMock(t *testing.T, cfg Config) *testMock {
	t.Helper()
	m := &testMock{srv: New(cfg), ln: fasthttputil.NewInmemoryListener()}
	m.client = &fasthttp.Client{Dial: func(string) (net.Conn, error) { return m.ln.Dial() }}
	served := make(chan error, 1)
	go func() { served <- m.srv.Serve(m.ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return m
}

type reply struct {
	status int
	header map[string]string
	body   []byte
}

// do sends one request; headers come as name, value pairs.
func (m *testMock) do(t *testing.T, method, uri, body string, headers ...string) (reply, error) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://mock" + uri)
	if body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if err := m.client.DoTimeout(req, resp, 10*time.Second); err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode(), header: map[string]string{}, body: bytes.Clone(resp.Body())}
	for k, v := range resp.Header.All() {
		r.header[strings.ToLower(string(k))] = string(v)
	}
	return r, nil
}

func (m *testMock) mustDo(t *testing.T, method, uri, body string, headers ...string) reply {
	t.Helper()
	r, err := m.do(t, method, uri, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	return r
}

// events splits an SSE body into data payloads.
func events(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.Split(string(body), "\n\n") {
		if ev == "" {
			continue
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok {
			t.Fatalf("event without data: %q", ev)
		}
		out = append(out, data)
	}
	return out
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	return v
}

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is the weather in Paris?"}]}`

func TestChat_NonStream_MatchesOpenAIShape(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got struct {
		SystemFingerprint string `json:"system_fingerprint"`
		Choices           []struct {
			Index   int
			Message struct {
				Role    string
				Content *string
				Refusal *string
			}
			Logprobs     any
			FinishReason string `json:"finish_reason"`
		}
		Usage chatUsage
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	raw := decode(t, string(r.body))
	if got.SystemFingerprint == "" {
		t.Errorf("no system_fingerprint")
	}
	if raw["id"] != "chatcmpl-mock1" || raw["object"] != "chat.completion" || raw["model"] != "gpt-4o-mini" {
		t.Errorf("id/object/model = %v %v %v", raw["id"], raw["object"], raw["model"])
	}
	if len(got.Choices) != 1 || *got.Choices[0].Message.Content != "tok1 tok2 tok3 tok4 tok5 " ||
		got.Choices[0].FinishReason != "stop" || got.Choices[0].Message.Role != "assistant" {
		t.Errorf("choices = %+v", got.Choices)
	}
	// "What is the weather in Paris?" is 29 bytes: 7 prompt tokens.
	if got.Usage.PromptTokens != 7 || got.Usage.CompletionTokens != 5 || got.Usage.TotalTokens != 12 {
		t.Errorf("usage = %+v", got.Usage)
	}
	usage := raw["usage"].(map[string]any)
	for _, k := range []string{"prompt_tokens_details", "completion_tokens_details"} {
		if _, ok := usage[k]; !ok {
			t.Errorf("usage lacks %s", k)
		}
	}
	for _, h := range []string{"x-request-id", "openai-processing-ms", HeaderServiceMS, "openai-organization",
		"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
		"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"} {
		if r.header[h] == "" {
			t.Errorf("missing header %s", h)
		}
	}
	if r.header["x-request-id"] != "req_mock_1" || r.header["openai-organization"] != "mock-org" {
		t.Errorf("x-request-id %q openai-organization %q", r.header["x-request-id"], r.header["openai-organization"])
	}
	rec, _ := m.srv.Last()
	if rec.UsageSent == nil || *rec.UsageSent != (Usage{7, 5, 12}) || rec.Done.IsZero() || rec.Stream {
		t.Errorf("recorded %+v", rec)
	}
}

// citySchema is a tool's parameters with one required string, and cityArgs what the mock generates for it.
const (
	citySchema = `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`
	cityArgs   = `{"city":"mock"}`
)

func TestChat_NonStream_NChoicesAndToolCall(t *testing.T) {
	m := startMock(t, Config{})
	body := `{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}],` +
		`"tools":[{"type":"function","function":{"name":"get_weather","parameters":` + citySchema + `}}]}`
	r := m.mustDo(t, "POST", "/v1/chat/completions", body)
	var got chatCompletion
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Choices) != 2 {
		t.Fatalf("%d choices", len(got.Choices))
	}
	for i, c := range got.Choices {
		if c.Index != i || c.FinishReason != "tool_calls" || c.Message.Content != nil || len(c.Message.ToolCalls) != 1 ||
			c.Message.ToolCalls[0].Function.Name != "get_weather" ||
			c.Message.ToolCalls[0].Function.Arguments != cityArgs ||
			!strings.HasPrefix(c.Message.ToolCalls[0].ID, "call_mock") {
			t.Errorf("choice %d = %+v", i, c)
		}
	}
}

// streamCase describes a chat stream and what must hold of it.
type streamCase struct {
	name         string
	body         string
	headers      []string
	wantN        int
	wantTool     bool
	wantUsage    bool
	wantNullKeys bool // every chunk but the usage chunk carries "usage":null
	wantTokens   int  // content or argument chunks per choice
}

func TestChat_Stream(t *testing.T) {
	msgs := `"messages":[{"role":"user","content":"What is the weather in Paris?"}]`
	tools := `"tools":[{"type":"function","function":{"name":"GetWeatherArgs","parameters":` + citySchema + `}}]`
	tests := []streamCase{
		{name: "plain, no usage requested", body: `{"model":"gpt-4o",` + msgs + `,"stream":true}`, wantN: 1, wantTokens: 5},
		{name: "include_usage adds usage chunk", body: `{"model":"gpt-4o",` + msgs +
			`,"stream":true,"stream_options":{"include_usage":true}}`, wantN: 1, wantUsage: true, wantTokens: 5},
		{name: "include_usage false", body: `{"model":"gpt-4o",` + msgs +
			`,"stream":true,"stream_options":{"include_usage":false}}`, wantN: 1, wantTokens: 5},
		{name: "n=2 interleaves", body: `{"model":"gpt-4o",` + msgs + `,"n":2,"stream":true,` +
			`"stream_options":{"include_usage":true}}`, headers: []string{HeaderChunks, "3"}, wantN: 2,
			wantUsage: true, wantTokens: 3},
		{name: "tool call deltas", body: `{"model":"gpt-4o",` + msgs + `,` + tools +
			`,"stream":true,"stream_options":{"include_usage":true}}`, wantN: 1, wantTool: true, wantUsage: true,
			wantTokens: 5},
		{name: "tool call, more chunks than argument bytes", body: `{"model":"gpt-4o",` + msgs + `,` + tools +
			`,"stream":true}`, headers: []string{HeaderChunks, "100"}, wantN: 1, wantTool: true, wantTokens: len(cityArgs)},
		{name: "tool_choice none answers text", body: `{"model":"gpt-4o",` + msgs + `,` + tools +
			`,"tool_choice":"none","stream":true}`, wantN: 1, wantTokens: 5},
		{name: "usage null on every other chunk", body: `{"model":"gpt-4o",` + msgs +
			`,"stream":true,"stream_options":{"include_usage":true}}`, headers: []string{HeaderUsageNull, "1"},
			wantN: 1, wantUsage: true, wantNullKeys: true, wantTokens: 5},
		{name: "usage null header without include_usage does nothing", body: `{"model":"gpt-4o",` + msgs +
			`,"stream":true}`, headers: []string{HeaderUsageNull, "1"}, wantN: 1, wantTokens: 5},
		{name: "zero chunks", body: `{"model":"gpt-4o",` + msgs + `,"stream":true}`,
			headers: []string{HeaderChunks, "0"}, wantN: 1, wantTokens: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := startMock(t, Config{})
			r := m.mustDo(t, "POST", "/v1/chat/completions", tc.body, tc.headers...)
			if r.status != 200 || r.header["content-type"] != "text/event-stream; charset=utf-8" {
				t.Fatalf("status %d content-type %q: %s", r.status, r.header["content-type"], r.body)
			}
			checkChatStream(t, m, tc, events(t, r.body))
		})
	}
}

func checkChatStream(t *testing.T, m *testMock, tc streamCase, evs []string) {
	t.Helper()
	if evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("last event %q", evs[len(evs)-1])
	}
	evs = evs[:len(evs)-1]
	content := make([]string, tc.wantN)
	args := make([]string, tc.wantN)
	finishes, deltas := 0, 0
	var usage map[string]any
	for i, ev := range evs {
		v := decode(t, ev)
		if v["object"] != "chat.completion.chunk" || v["id"] != "chatcmpl-mock1" {
			t.Errorf("event %d: object %v id %v", i, v["object"], v["id"])
		}
		u, hasUsage := v["usage"]
		choices := v["choices"].([]any)
		if len(choices) == 0 {
			usage = u.(map[string]any)
			if i != len(evs)-1 {
				t.Errorf("usage chunk at %d of %d", i, len(evs))
			}
			continue
		}
		if hasUsage != tc.wantNullKeys || (hasUsage && u != nil) {
			t.Errorf("event %d: usage key present %v value %v", i, hasUsage, u)
		}
		ch := choices[0].(map[string]any)
		idx := int(ch["index"].(float64))
		// Round-robin by choice: OpenAI's own n>1 order (fixtures chat-stream-n3-choices.sse).
		if idx != i%tc.wantN {
			t.Errorf("event %d is for choice %d", i, idx)
		}
		delta := ch["delta"].(map[string]any)
		if s, ok := delta["content"].(string); ok {
			content[idx] += s
		}
		if calls, ok := delta["tool_calls"].([]any); ok {
			call := calls[0].(map[string]any)
			fn := call["function"].(map[string]any)
			if name, ok := fn["name"]; ok && (name != "GetWeatherArgs" || !strings.HasPrefix(call["id"].(string), "call_mock")) {
				t.Errorf("tool call header %v", call)
			}
			if fn["arguments"] != "" {
				deltas++
			}
			args[idx] += fn["arguments"].(string)
		} else if delta["content"] != nil && delta["content"] != "" {
			deltas++
		}
		if fr := ch["finish_reason"]; fr != nil {
			finishes++
			want := "stop"
			if tc.wantTool {
				want = "tool_calls"
			}
			if fr != want {
				t.Errorf("finish_reason %v", fr)
			}
		}
	}
	if finishes != tc.wantN || deltas != tc.wantN*tc.wantTokens {
		t.Errorf("finishes %d deltas %d, want %d and %d", finishes, deltas, tc.wantN, tc.wantN*tc.wantTokens)
	}
	for i := range tc.wantN {
		if tc.wantTool {
			var a map[string]string
			if err := json.Unmarshal([]byte(args[i]), &a); err != nil || a["city"] != "mock" {
				t.Errorf("choice %d arguments %q: %v", i, args[i], err)
			}
		} else if strings.Count(content[i], "tok") != tc.wantTokens {
			t.Errorf("choice %d content %q", i, content[i])
		}
	}
	rec, _ := m.srv.Last()
	if (usage != nil) != tc.wantUsage || (rec.UsageSent != nil) != tc.wantUsage {
		t.Fatalf("usage chunk %v, recorded %v, want %v", usage, rec.UsageSent, tc.wantUsage)
	}
	if usage != nil {
		want := Usage{PromptTokens: 7, CompletionTokens: tc.wantN * tc.wantTokens}
		want.TotalTokens = want.PromptTokens + want.CompletionTokens
		if *rec.UsageSent != want || int(usage["completion_tokens"].(float64)) != want.CompletionTokens {
			t.Errorf("usage sent %v recorded %+v want %+v", usage, rec.UsageSent, want)
		}
	}
	if !rec.Stream || rec.IncludeUsage != tc.wantUsage || len(rec.ChunkSentAt) != len(evs)+1 || rec.Done.IsZero() {
		t.Errorf("recorded stream %v include_usage %v chunks %d done %v", rec.Stream, rec.IncludeUsage,
			len(rec.ChunkSentAt), rec.Done)
	}
}
