package config

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds any bytes to the loader. It never panics; it either
// refuses the file with an error or returns a configuration that passes
// Validate and CheckEnvironment, and that is a fixed point: written back
// out and loaded again, it is the same configuration (defaults applied
// once, nothing lost or invented on the way).
func FuzzParse(f *testing.F) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1) {
		f.Add(m[1])
	}
	for _, s := range []string{
		"", "{}", "listen: ':0'\n", "deployments: [{name: a, provider: openai, base_url: 'http://x', api_key: k}]\n",
		`
deployments:
  - {name: oa, provider: openai, base_url: "https://api.openai.com/v1", api_key: sk-x, max_conns: 4, tenant_share: 0.25}
  - {name: az, provider: azure_openai, base_url: "https://r.openai.azure.com", api_key: k}
tenants:
  - id: t
    keys: [{id: k1, sha256: ` + validHash + `, expires_at: 2030-01-02T03:04:05+02:00, models: [m]}]
    models: [{name: m, deployment: oa, upstream_model: gpt-4o}, {name: n, deployment: az}]
    limits: {requests_per_minute: 60, tokens_per_minute: 1000, concurrent_streams: 2}
    content: {capture: true, max_bytes: 100}
    credentials: [{deployment: oa, api_key: sk-tenant}]
timeouts: {connect: 1s, first_byte: 1m, drain: 0s}
tracing: {endpoint: "http://127.0.0.1:4317", protocol: grpc, spool: {dir: /tmp/spool, max_bytes: 4194304, segment_bytes: 1048576}}
`,
		"timeouts: {connect: -1s}\n", "max_body_bytes: 1e3\n", "tenants: [{id: t, keys: [{}]}]\n", "unknown: 1\n",
		"deployments: &a [*a]\n", "listen: !!binary aGk=\n", "max_body_bytes: 99999999999999999999\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if c != nil {
				t.Fatal("a refused file still returned a configuration")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that Validate refuses: %v", err)
		}
		if err := c.CheckEnvironment(); err != nil {
			t.Fatalf("Parse accepted a configuration that CheckEnvironment refuses: %v", err)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal the loaded configuration: %v", err)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("the loaded configuration, written out, is refused: %v\n%s", err, out)
		}
		out2, err := yaml.Marshal(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("loading is not a fixed point:\n%s\nbecame\n%s", out, out2)
		}
	})
}
