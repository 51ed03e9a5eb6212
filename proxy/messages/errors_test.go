package messages_test

import (
	stdjson "encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/messages"
)

type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestAppendError_IsAnthropicsShape(t *testing.T) {
	// The recorded 401 is compact JSON as Anthropic sends it: byte for byte.
	want := readFixture(t, "anthropic/error-401-authentication.json")
	if got := messages.AppendError(nil, 401, "", "invalid x-api-key"); string(got) != string(want) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// The others were re-serialized by their recorder: same fields.
	for _, name := range []string{"anthropic/error-400-invalid-request.json", "anthropic/error-429-rate-limit.json"} {
		var rec anthropicError
		if err := stdjson.Unmarshal(readFixture(t, name), &rec); err != nil {
			t.Fatal(err)
		}
		status := 400
		if strings.Contains(name, "429") {
			status = 429
		}
		var got anthropicError
		if err := stdjson.Unmarshal(messages.AppendError(nil, status, "", rec.Error.Message), &got); err != nil || got != rec {
			t.Fatalf("%s: got %+v, want %+v (%v)", name, got, rec, err)
		}
	}
}

func TestTypeForStatus(t *testing.T) {
	want := map[int]string{
		400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
		404: "not_found_error", 413: "request_too_large", 422: "invalid_request_error", 429: "rate_limit_error",
		500: "api_error", 502: "api_error", 503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error",
	}
	for status, typ := range want {
		if got := messages.TypeForStatus(status); got != typ {
			t.Errorf("%d: got %s, want %s", status, got, typ)
		}
	}
}

func TestErrorFromOpenAI_StatusAndTypeMapping(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       []byte
		wantStatus int
		wantType   string
		wantMsg    string // a substring
	}{
		{"recorded 401 invalid key", 401, readFixture(t, "openai/error-401-invalid-api-key.json"), 401, "authentication_error", "Incorrect API key provided"},
		{"recorded 404 model", 404, readFixture(t, "openai/error-404-model-not-found.json"), 404, "not_found_error", "model"},
		{"recorded 400 image", 400, readFixture(t, "openai/error-400-invalid-image-url.json"), 400, "invalid_request_error", "Error while downloading"},
		{"recorded 400 unsupported parameter", 400, readFixture(t, "openai/error-400-unsupported-parameter.json"), 400, "invalid_request_error", "max_tokens"},
		{"recorded Azure 401 (code, no type)", 401, readFixture(t, "azure/error-401-access-denied.json"), 401, "authentication_error", "Access denied"},
		{"recorded Azure 404 deployment", 404, readFixture(t, "azure/error-404-deployment-not-found.json"), 404, "not_found_error", "deployment"},
		{"recorded insufficient_quota is billing", 429, readFixture(t, "openai-responses/error-insufficient-quota.json"), 402, "billing_error", "quota"},
		{"429 rate limit", 429, []byte(`{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}`), 429, "rate_limit_error", "Rate limit reached"},
		{"413", 413, []byte(`{"error":{"message":"too big","type":"invalid_request_error"}}`), 413, "request_too_large", "too big"},
		{"500", 500, []byte(`{"error":{"message":"The server had an error","type":"server_error"}}`), 500, "api_error", "server had an error"},
		{"503 overloaded becomes 529", 503, []byte(`{"error":{"message":"The engine is currently overloaded","type":"server_error"}}`), 529, "overloaded_error", "overloaded"},
		{"504", 504, []byte(`{"error":{"message":"timed out","type":"timeout"}}`), 504, "timeout_error", "timed out"},
		{"HTML from a proxy", 502, []byte(`<html>Bad Gateway</html>`), 502, "api_error", "upstream failed"},
		{"error body with a 200", 200, []byte(`{"error":{"message":"odd"}}`), 502, "api_error", "odd"},
		{"string error", 400, []byte(`{"error":"bad thing"}`), 400, "invalid_request_error", "bad thing"},
		{"Loom's own apierror", 429, apierror.New(429, "rate_limit_exceeded", "rate_limit_exceeded", "", "Tenant limit: 60 requests per minute").AppendJSON(nil), 429, "rate_limit_error", "60 requests"},
		{"invalid UTF-8 message", 400, []byte("{\"error\":{\"message\":\"bad \xff byte\"}}"), 400, "invalid_request_error", "bad \ufffd byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := messages.ErrorFromOpenAI(nil, tt.status, tt.body)
			var got anthropicError
			if err := stdjson.Unmarshal(body, &got); err != nil {
				t.Fatalf("not JSON: %s", body)
			}
			if status != tt.wantStatus || got.Type != "error" || got.Error.Type != tt.wantType || !strings.Contains(got.Error.Message, tt.wantMsg) {
				t.Fatalf("got %d %s", status, body)
			}
			// An Anthropic SDK raises it as its typed API error.
			_, err := sdkMessage(t, status, body)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != status || string(apiErr.Type()) != tt.wantType {
				t.Fatalf("sdk error %v", err)
			}
		})
	}
}

func TestErrorFromOpenAI_HugeMessage_Bounded(t *testing.T) {
	body := []byte(`{"error":{"message":"` + strings.Repeat("x", 1<<20) + `"}}`)
	_, out := messages.ErrorFromOpenAI(nil, 400, body)
	if len(out) > 8<<10 {
		t.Fatalf("%d bytes", len(out))
	}
}

func TestErrorFromAPIError_LoomErrors(t *testing.T) {
	tests := []struct {
		err        *apierror.Error
		wantStatus int
		wantType   string
	}{
		{apierror.New(401, "invalid_request_error", "invalid_api_key", "", "Incorrect API key provided."), 401, "authentication_error"},
		{apierror.New(403, "invalid_request_error", "model_not_allowed", "model", "not allowed"), 403, "permission_error"},
		{apierror.New(404, "invalid_request_error", "model_not_found", "model", "The model does not exist"), 404, "not_found_error"},
		{apierror.New(413, "invalid_request_error", "", "", "Request body too large"), 413, "request_too_large"},
		{apierror.New(502, "server_error", "", "", "upstream unreachable"), 502, "api_error"},
		{apierror.New(503, "server_error", "", "", "no healthy deployment"), 529, "overloaded_error"},
	}
	for _, tt := range tests {
		status, body := messages.ErrorFromAPIError(nil, tt.err)
		var got anthropicError
		if err := stdjson.Unmarshal(body, &got); err != nil || status != tt.wantStatus || got.Error.Type != tt.wantType || got.Error.Message != tt.err.Message {
			t.Errorf("%v: got %d %s", tt.err, status, body)
		}
	}
}
