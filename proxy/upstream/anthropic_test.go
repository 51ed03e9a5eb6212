package upstream_test

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/upstream"
)

func TestAnthropicDeployment_MessagesPathXAPIKeyAndVersion(t *testing.T) {
	d, err := upstream.New(config.Deployment{Name: "claude", Provider: config.ProviderAnthropic,
		BaseURL: "https://api.anthropic.com/v1", APIKey: "sk-ant-secret", DefaultMaxTokens: 2048}, config.Timeouts{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Anthropic() || d.Provider != "anthropic" || d.DefaultMaxTokens != 2048 {
		t.Fatalf("deployment %+v", d)
	}
	if p := d.Path(call.OpChat, "claude-sonnet-4-5"); p != "/v1/messages" {
		t.Fatalf("path %s", p)
	}
	var req fasthttp.Request
	d.Prepare(&req, d.Path(call.OpChat, ""), upstream.Auth{})
	if string(req.Header.Peek("x-api-key")) != "sk-ant-secret" || string(req.Header.Peek("anthropic-version")) != upstream.AnthropicVersion ||
		len(req.Header.Peek("Authorization")) != 0 {
		t.Fatalf("headers %s", req.Header.String())
	}
	// A client's own x-api-key (its Loom key) never goes upstream,
	// whatever forward_headers says.
	if d.ForwardRequestHeader([]byte("X-Api-Key")) {
		t.Fatal("x-api-key would be forwarded")
	}
	if !d.ForwardRequestHeader([]byte("anthropic-beta")) || !d.ForwardResponseHeader([]byte("request-id")) {
		t.Fatal("anthropic-beta or request-id would be dropped")
	}
}
