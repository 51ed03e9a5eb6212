package mockupstream

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const azureChat = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"

// errorKeys returns the keys of body["error"], to check a shape without pinning messages.
func errorKeys(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var v struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Error == nil {
		t.Fatalf("not an error body: %v: %s", err, body)
	}
	return v.Error
}

func TestErrors_RealShapes(t *testing.T) {
	m := startMock(t, Config{APIKey: "sk-test-key-123456"})
	auth := []string{"Authorization", "Bearer sk-test-key-123456"}
	azureAuth := []string{"api-key", "sk-test-key-123456"}
	with := func(base []string, more ...string) []string { return append(slices.Clone(base), more...) }
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		headers    []string
		wantStatus int
		wantType   any // nil: key must be JSON null; "-": key absent (Azure gateway shape)
		wantCode   any
		retryAfter bool
	}{
		{name: "openai missing key", method: "POST", path: "/v1/chat/completions", body: chatBody,
			wantStatus: 401, wantType: "invalid_request_error", wantCode: nil},
		{name: "openai wrong key", method: "POST", path: "/v1/chat/completions", body: chatBody,
			headers: []string{"Authorization", "Bearer sk-wrong"}, wantStatus: 401,
			wantType: "invalid_request_error", wantCode: "invalid_api_key"},
		{name: "openai key in azure header is not accepted", method: "POST", path: "/v1/chat/completions",
			body: chatBody, headers: azureAuth, wantStatus: 401, wantType: "invalid_request_error", wantCode: nil},
		{name: "azure wrong key", method: "POST", path: azureChat, body: chatBody,
			headers: []string{"api-key", "nope"}, wantStatus: 401, wantType: "-", wantCode: "401"},
		{name: "azure bearer is not api-key", method: "POST", path: azureChat, body: chatBody, headers: auth,
			wantStatus: 401, wantType: "-", wantCode: "401"},
		{name: "status 400", method: "POST", path: "/v1/chat/completions", body: chatBody,
			headers: with(auth, HeaderStatus, "400"), wantStatus: 400, wantType: "invalid_request_error", wantCode: "invalid_value"},
		{name: "status 404", method: "POST", path: "/v1/chat/completions", body: chatBody,
			headers: with(auth, HeaderStatus, "404"), wantStatus: 404, wantType: "invalid_request_error", wantCode: "model_not_found"},
		{name: "status 429", method: "POST", path: "/v1/chat/completions", body: chatBody,
			headers: with(auth, HeaderStatus, "429"), wantStatus: 429, wantType: "requests",
			wantCode: "rate_limit_exceeded", retryAfter: true},
		{name: "status 500", method: "POST", path: "/v1/chat/completions", body: chatBody,
			headers: with(auth, HeaderStatus, "500"), wantStatus: 500, wantType: "server_error", wantCode: nil},
		{name: "status 503", method: "POST", path: "/v1/chat/completions", body: streamBody,
			headers: with(auth, HeaderStatus, "503"), wantStatus: 503, wantType: "server_error",
			wantCode: "overloaded", retryAfter: true},
		{name: "azure status 400 content filter", method: "POST", path: azureChat, body: chatBody,
			headers: with(azureAuth, HeaderStatus, "400"), wantStatus: 400, wantType: nil, wantCode: "content_filter"},
		{name: "azure status 404 deployment", method: "POST", path: azureChat, body: chatBody,
			headers: with(azureAuth, HeaderStatus, "404"), wantStatus: 404, wantType: "invalid_request_error",
			wantCode: "DeploymentNotFound"},
		{name: "azure status 429", method: "POST", path: azureChat, body: chatBody,
			headers: with(azureAuth, HeaderStatus, "429"), wantStatus: 429, wantType: "-", wantCode: "429", retryAfter: true},
		{name: "azure missing api-version", method: "POST", path: "/openai/deployments/gpt-4o/chat/completions",
			body: chatBody, headers: azureAuth, wantStatus: 404, wantType: "-", wantCode: "404"},
		{name: "unknown path", method: "POST", path: "/v1/nope", body: chatBody, headers: auth,
			wantStatus: 404, wantType: "invalid_request_error", wantCode: nil},
		{name: "wrong method", method: "GET", path: "/v1/chat/completions", headers: auth,
			wantStatus: 404, wantType: "invalid_request_error", wantCode: nil},
		{name: "malformed JSON", method: "POST", path: "/v1/chat/completions", body: `{"model":`, headers: auth,
			wantStatus: 400, wantType: "invalid_request_error", wantCode: nil},
		{name: "wrong field type", method: "POST", path: "/v1/chat/completions", headers: auth,
			body:       `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}`,
			wantStatus: 400, wantType: "invalid_request_error", wantCode: "invalid_type"},
		{name: "missing messages", method: "POST", path: "/v1/chat/completions", body: `{"model":"m"}`,
			headers: auth, wantStatus: 400, wantType: "invalid_request_error", wantCode: "missing_required_parameter"},
		{name: "stream_options without stream", method: "POST", path: "/v1/chat/completions", headers: auth,
			body:       `{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}`,
			wantStatus: 400, wantType: "invalid_request_error", wantCode: nil},
		{name: "bad control header", method: "POST", path: "/v1/chat/completions", body: chatBody,
			headers: with(auth, HeaderLatencyMS, "soon"), wantStatus: 400, wantType: "invalid_request_error",
			wantCode: "invalid_mock_header"},
		{name: "control status out of range", method: "POST", path: "/v1/chat/completions", body: chatBody,
			headers: with(auth, HeaderStatus, "302"), wantStatus: 400, wantType: "invalid_request_error",
			wantCode: "invalid_mock_header"},
		{name: "unknown model", method: "GET", path: "/v1/models/gpt-0", headers: auth,
			wantStatus: 404, wantType: "invalid_request_error", wantCode: "model_not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := m.mustDo(t, tc.method, tc.path, tc.body, tc.headers...)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			e := errorKeys(t, r.body)
			if msg, _ := e["message"].(string); msg == "" {
				t.Errorf("no message: %s", r.body)
			}
			for key, want := range map[string]any{"type": tc.wantType, "code": tc.wantCode} {
				got, present := e[key]
				if want == "-" {
					if present {
						t.Errorf("%s present in Azure gateway body: %s", key, r.body)
					}
					continue
				}
				if !present || got != want {
					t.Errorf("%s = %v (present %v), want %v", key, got, present, want)
				}
			}
			// OpenAI always sends param, null or not; Azure's own bodies may omit it.
			if _, ok := e["param"]; !ok && !strings.HasPrefix(tc.path, "/openai/") {
				t.Errorf("param key missing: %s", r.body)
			}
			if tc.retryAfter != (r.header["retry-after"] != "") {
				t.Errorf("retry-after %q", r.header["retry-after"])
			}
			if r.header["x-request-id"] == "" {
				t.Errorf("error without x-request-id")
			}
		})
	}
}
