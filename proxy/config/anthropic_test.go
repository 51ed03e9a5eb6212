package config

import (
	"strings"
	"testing"
)

func TestParse_AnthropicDeployment(t *testing.T) {
	c, err := Parse([]byte(`
deployments:
  - {name: claude, provider: anthropic, base_url: "https://api.anthropic.com/v1", api_key: k, default_max_tokens: 8192}
`))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Deployments[0]; d.Provider != ProviderAnthropic || d.DefaultMaxTokens != 8192 {
		t.Fatalf("deployment %+v", d)
	}
}

func TestParse_AnthropicDeployment_BaseURLEndsInV1(t *testing.T) {
	_, err := Parse([]byte(`
deployments:
  - {name: claude, provider: anthropic, base_url: "https://api.anthropic.com", default_max_tokens: -1}
`))
	if err == nil || !strings.Contains(err.Error(), "deployments[0].base_url") || !strings.Contains(err.Error(), "deployments[0].default_max_tokens") {
		t.Fatalf("err %v", err)
	}
}
