package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// openAIError is the error body every OpenAI SDK parses.
type openAIError struct {
	Error *struct {
		Message *string `json:"message"`
		Type    *string `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func assertError(t *testing.T, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %s", status, wantStatus, body)
	}
	var e openAIError
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Message == nil || e.Error.Type == nil || *e.Error.Message == "" {
		t.Fatalf("not an OpenAI-shaped error (%v): %s", err, body)
	}
	var raw map[string]map[string]json.RawMessage
	_ = json.Unmarshal(body, &raw)
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw["error"][k]; !ok {
			t.Fatalf("error body lacks %q: %s", k, body)
		}
	}
	if wantCode != "" && (e.Error.Code == nil || *e.Error.Code != wantCode) {
		t.Fatalf("code %v, want %q: %s", e.Error.Code, wantCode, body)
	}
}

// rawExchange writes bytes on a fresh TCP connection and reads one response.
func rawExchange(t *testing.T, addr string, raw string) (int, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	var proto string
	var status int
	fmt.Sscanf(line, "%s %d", &proto, &status)
	length := -1
	for {
		h, err := r.ReadString('\n')
		if err != nil || h == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "content-length") {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &length)
		}
	}
	body := make([]byte, max(length, 0))
	_, _ = io.ReadFull(r, body)
	return status, body
}

func TestHostileRequests_GetOpenAIErrorsAndServerKeepsServing(t *testing.T) {
	st := startStack(t, stackOptions{maxBody: 64 << 10})
	chat := func(extra string) string {
		return `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]` + extra + `}`
	}
	huge := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("a", 70<<10) + `"}]}`
	tests := []struct {
		name   string
		method string
		path   string
		key    string
		body   string
		header map[string]string
		status int
		code   string
	}{
		{name: "malformed json", body: `{"model":"gpt-4o",`, status: 400},
		{name: "empty body", body: ``, status: 400},
		{name: "body is an array", body: `[{"model":"gpt-4o"}]`, status: 400, code: "invalid_type"},
		{name: "body is a string", body: `"hello"`, status: 400, code: "invalid_type"},
		{name: "trailing garbage", body: chat("") + `}`, status: 400},
		{name: "stream as string", body: chat(`,"stream":"true"`), status: 400, code: "invalid_type"},
		{name: "stream as number", body: chat(`,"stream":1`), status: 400, code: "invalid_type"},
		{name: "model missing", body: `{"messages":[{"role":"user","content":"x"}]}`, status: 400},
		{name: "model null", body: `{"model":null,"messages":[{"role":"user","content":"x"}]}`, status: 400, code: "invalid_type"},
		{name: "model array", body: `{"model":["gpt-4o"],"messages":[{"role":"user","content":"x"}]}`, status: 400, code: "invalid_type"},
		{name: "messages missing", body: `{"model":"gpt-4o"}`, status: 400, code: "missing_required_parameter"},
		{name: "messages string", body: `{"model":"gpt-4o","messages":"hi"}`, status: 400, code: "invalid_type"},
		{name: "message not object", body: `{"model":"gpt-4o","messages":[1]}`, status: 400, code: "invalid_type"},
		{name: "temperature string", body: chat(`,"temperature":"1"`), status: 400, code: "invalid_type"},
		{name: "n negative", body: chat(`,"n":-1`), status: 400, code: "invalid_value"},
		{name: "max_tokens float", body: chat(`,"max_tokens":1.5`), status: 400, code: "invalid_type"},
		{name: "stream_options without stream", body: chat(`,"stream_options":{"include_usage":true}`), status: 400, code: "invalid_value"},
		{name: "include_usage string", body: chat(`,"stream":true,"stream_options":{"include_usage":"yes"}`), status: 400, code: "invalid_type"},
		{name: "duplicate model smuggling", body: `{"model":"gpt-4o","model":"globex-model","messages":[{}]}`, status: 400, code: "duplicate_parameter"},
		{name: "escaped duplicate model smuggling", body: `{"model":"gpt-4o","mod\u0065l":"globex-model","messages":[{}]}`, status: 400, code: "duplicate_parameter"},
		{name: "body over limit", body: huge, status: 413, code: "request_too_large"},
		{name: "unknown model", body: `{"model":"gpt-99","messages":[{}]}`, status: 404, code: "model_not_found"},
		{name: "other tenant's model", body: `{"model":"globex-model","messages":[{}]}`, status: 404, code: "model_not_found"},
		{name: "model with CRLF", body: `{"model":"gpt-4o\r\nX-Injected: 1","messages":[{}]}`, status: 404, code: "model_not_found"},
		{name: "missing key", key: "-", body: chat(""), status: 401, code: "missing_api_key"},
		{name: "bad key", key: "sk-loom-wrong", body: chat(""), status: 401, code: "invalid_api_key"},
		{name: "basic auth instead of bearer", key: "-", header: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, body: chat(""), status: 401, code: "invalid_api_key"},
		{name: "bearer without key", key: "-", header: map[string]string{"Authorization": "Bearer "}, body: chat(""), status: 401},
		{name: "bad api-key header", key: "-", header: map[string]string{"api-key": "nope"}, body: chat(""), status: 401, code: "invalid_api_key"},
		{name: "wrong method on chat", method: "GET", body: "", status: 405, code: "method_not_allowed"},
		{name: "wrong method on models", method: "DELETE", path: "/v1/models", status: 405, code: "method_not_allowed"},
		{name: "unknown path", path: "/v1/chat/completion", body: chat(""), status: 404, code: "unknown_url"},
		{name: "path traversal", path: "/v1/../admin", body: chat(""), status: 404, code: "unknown_url"},
		{name: "unknown model by id", method: "GET", path: "/v1/models/gpt-99", status: 404, code: "model_not_found"},
		{name: "embeddings without input", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small"}`, status: 400, code: "missing_required_parameter"},
		{name: "completions prompt object", path: "/v1/completions", body: `{"model":"gpt-4o","prompt":{}}`, status: 400, code: "invalid_type"},
		{name: "upstream 400 for a bad forwarded header is relayed", header: map[string]string{"X-Mock-Status": "abc"}, body: chat(""), status: 400, code: "invalid_mock_header"},
	}
	if len(tests) < 30 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, key := tt.method, tt.path, tt.key
			if method == "" {
				method = "POST"
			}
			if path == "" {
				path = "/v1/chat/completions"
			}
			switch key {
			case "":
				key = st.keyA
			case "-":
				key = ""
			}
			status, _, body := st.do(method, path, key, tt.body, tt.header)
			assertError(t, status, body, tt.status, tt.code)
			if bytes.Contains(body, []byte(upstreamSecret)) || bytes.Contains(body, []byte(st.keyA)) {
				t.Fatalf("error body leaks a credential: %s", body)
			}
			// The server keeps serving.
			if status, _, body := st.do("POST", "/v1/chat/completions", st.keyA, chat(""), nil); status != 200 {
				t.Fatalf("server broken after %s: %d %s", tt.name, status, body)
			}
		})
	}

	host := strings.TrimPrefix(st.url, "http://")
	rawTests := []struct {
		name   string
		raw    string
		status int
	}{
		{"header injection via bare LF in value", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + st.keyA + "\nX-Evil: 1\r\nContent-Length: 2\r\n\r\n{}", 400},
		{"content-length over the limit", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413},
		{"malformed request line", "POST\r\n\r\n", 400},
		{"huge header", "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20000) + "\r\n\r\n", 431},
	}
	for _, tt := range rawTests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawExchange(t, host, tt.raw)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if len(body) > 0 {
				assertError(t, status, body, tt.status, "")
			}
			if status, _, body := st.do("GET", "/v1/models", st.keyA, "", nil); status != 200 {
				t.Fatalf("server broken after %s: %d %s", tt.name, status, body)
			}
		})
	}
}

func TestRequestHeaders_OnlyAllowedOnesGoUpstream(t *testing.T) {
	st := startStack(t, stackOptions{})
	_, _, _ = st.do("POST", "/v1/chat/completions", st.keyA, `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`,
		map[string]string{"Cookie": "session=1", "X-Forwarded-For": "1.2.3.4", "Proxy-Authorization": "Basic x", "OpenAI-Organization": "org-client", "OpenAI-Beta": "assistants=v2"})
	up, _ := st.mock.Last()
	for _, h := range []string{"cookie", "x-forwarded-for", "proxy-authorization", "openai-organization", "connection", "keep-alive"} {
		if v, ok := up.Header[h]; ok && h != "connection" {
			t.Errorf("header %s=%q went upstream", h, v)
		}
	}
	if up.Header["authorization"] != "Bearer "+upstreamSecret {
		t.Errorf("client's authorization went upstream instead of the deployment's: %q", up.Header["authorization"])
	}
	if up.Header["openai-beta"] != "assistants=v2" {
		t.Errorf("openai-beta not forwarded: %v", up.Header)
	}
}
