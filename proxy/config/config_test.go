package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

const validHash = "ce37a696b098c90b35058c8eaae60cd2d14fe9a9662b6d1f37279b0191e204e4"

func TestParse_AppliesDefaults(t *testing.T) {
	c, err := Parse([]byte(`
deployments:
  - {name: oa, provider: openai, base_url: "https://api.openai.com/v1", api_key: sk-x}
  - {name: az, provider: azure_openai, base_url: "https://r.openai.azure.com", api_key: k}
tenants:
  - id: t
    keys: [{id: k1, sha256: ` + validHash + `}]
    models: [{name: m, deployment: oa}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.MaxBodyBytes != DefaultMaxBodyBytes || c.Timeouts.Drain != 5*time.Second {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if c.Deployments[1].APIVersion == "" {
		t.Fatal("azure api_version default missing")
	}
}

func TestParse_ReportsEveryProblemByField(t *testing.T) {
	_, err := Parse([]byte(`
max_body_bytes: 10
timeouts: {drain: -1s}
deployments:
  - {name: a, provider: bedrock, base_url: "ftp://x"}
  - {name: a, provider: azure_openai, base_url: "https://x?y=1"}
  - {name: e, provider: openai, base_url: "http://x", api_key_env: LOOM_TEST_SURELY_UNSET}
tenants:
  - id: t
    keys:
      - {id: k1, sha256: nothex}
      - {id: k1, sha256: ` + validHash + `}
      - {id: k2, sha256: ` + validHash + `}
    models: [{name: m, deployment: nope}, {name: m, deployment: a}]
  - id: t
`))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{
		"max_body_bytes", "timeouts.drain", "deployments[0].provider", "deployments[0].base_url", "deployments[1].name",
		"deployments[1].base_url", "deployments[1]: azure_openai needs api_key", "deployments[2].api_key_env",
		"tenants[0].keys[0].sha256", "tenants[0].keys[1].id", "tenants[0].keys[2].sha256", "tenants[0].models[0].deployment",
		"tenants[0].models[1].name", "tenants[1].id",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestParse_RejectsUnknownFields(t *testing.T) {
	if _, err := Parse([]byte("listne: 127.0.0.1:1\n")); err == nil || !strings.Contains(err.Error(), "listne") {
		t.Fatalf("typo accepted: %v", err)
	}
}

func TestParse_TracingDefaultsAndProblems(t *testing.T) {
	c, err := Parse([]byte("tracing: {endpoint: \"http://127.0.0.1:4317\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Tracing
	if tr.Protocol != TracingGRPC || tr.QueueSize != DefaultTracing.QueueSize || tr.BatchSize != DefaultTracing.BatchSize ||
		tr.ExportTimeout != DefaultTracing.ExportTimeout || tr.Spool != DefaultTracing.Spool {
		t.Fatalf("tracing defaults: %+v", tr)
	}
	_, err = Parse([]byte(`
tracing: {endpoint: "127.0.0.1:4317", protocol: thrift, queue_size: -1, batch_size: -5, export_timeout: -10s,
  spool: {max_bytes: 1024, commit_interval: 2s, when_full: block}}
tenants:
  - {id: t, content: {capture: true, max_bytes: -1}}
`))
	if err == nil {
		t.Fatal("invalid tracing accepted")
	}
	for _, want := range []string{"tracing.endpoint", "tracing.protocol", "tracing.queue_size", "tracing.batch_size",
		"tracing.export_timeout", "tracing.spool.max_bytes", "tracing.spool.commit_interval", "tracing.spool.when_full",
		"tenants[0].content.max_bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestParse_TenancyProblemsNamedByField(t *testing.T) {
	_, err := Parse([]byte(`
deployments:
  - {name: oa, provider: openai, base_url: "http://x/v1"}
store: {database_url_env: LOOM_TEST_SURELY_UNSET}
redis: {url_env: LOOM_TEST_SURELY_UNSET}
admin: {listen: "127.0.0.1:0", token_sha256: nothex}
tenants:
  - id: t
    limits: {requests_per_minute: -1}
    credentials: [{deployment: nope, api_key: x}, {deployment: oa}]
    models: [{name: m, deployment: oa}]
    keys: [{id: k, sha256: ` + validHash + `, models: [other], limits: {tokens_per_minute: -5}}]
`))
	for _, want := range []string{"store.database_url_env", "redis.url_env", "admin.token_sha256", "tenants[0].limits",
		"tenants[0].credentials[0].deployment", "tenants[0].credentials[1]: set exactly one", "tenants[0].keys[0].models",
		"tenants[0].keys[0].limits"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestParse_Console(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr []string
	}{
		{name: "off", yaml: "listen: \"127.0.0.1:8080\""},
		{name: "on", yaml: "console: {listen: \"127.0.0.1:8082\", database_url_env: LOOM_DATABASE_URL}"},
		{name: "listen without database", yaml: "console: {listen: \"127.0.0.1:8082\"}",
			wantErr: []string{"console.database_url_env"}},
		{name: "database without listen", yaml: "console: {database_url_env: X}", wantErr: []string{"console.listen"}},
		{name: "bad listen", yaml: "console: {listen: nohostport, database_url_env: X}",
			wantErr: []string{"console.listen: must be host:port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if tt.name != "off" && (c.Console.Listen != "127.0.0.1:8082" || c.Console.DatabaseURLEnv != "LOOM_DATABASE_URL") {
					t.Errorf("console = %+v", c.Console)
				}
				return
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to name %q", err, w)
				}
			}
		})
	}
}

// Validate reads neither the environment nor a file: the tenant store's
// path and SetTenants rely on it. What the file names outside itself is
// CheckEnvironment's, and Parse reports both.
func TestValidate_IsPure_EnvironmentAndFilesAreCheckEnvironments(t *testing.T) {
	yaml := `
deployments:
  - {name: oa, provider: openai, base_url: "http://x/v1", api_key_env: LOOM_TEST_SURELY_UNSET, ca_file: /surely/not/here.pem}
  - {name: az, provider: azure_openai, base_url: "https://r.openai.azure.com", api_key_env: LOOM_TEST_SURELY_UNSET}
store: {database_url_env: LOOM_TEST_SURELY_UNSET}
redis: {url_env: LOOM_TEST_SURELY_UNSET}
admin: {listen: "127.0.0.1:0", token_env: LOOM_TEST_SURELY_UNSET}
tenants:
  - id: t
    credentials: [{deployment: oa, api_key_env: LOOM_TEST_SURELY_UNSET}]
`
	_, err := Parse([]byte(yaml))
	want := []string{
		"store.database_url_env: environment variable LOOM_TEST_SURELY_UNSET is empty or unset",
		"redis.url_env: environment variable LOOM_TEST_SURELY_UNSET is empty or unset",
		"admin.token_env: environment variable LOOM_TEST_SURELY_UNSET is empty or unset",
		"deployments[0].api_key_env: environment variable LOOM_TEST_SURELY_UNSET is empty or unset",
		"deployments[0].ca_file: stat /surely/not/here.pem: no such file or directory",
		"deployments[1].api_key_env: environment variable LOOM_TEST_SURELY_UNSET is empty or unset",
		"tenants[0].credentials[0].api_key_env: environment variable LOOM_TEST_SURELY_UNSET is empty or unset",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("Parse =\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}

	var c Config
	if err := yamlDecode(yaml, &c); err != nil {
		t.Fatal(err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("Validate looked at the environment or a file: %v", err)
	}
	if err := c.CheckEnvironment(); err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("CheckEnvironment =\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
}

func TestResolveTenants_ReadsEachCredentialFromTheFileOrTheEnvironment(t *testing.T) {
	t.Setenv("LOOM_TEST_TENANT_KEY", "sk-from-env")
	c, err := Parse([]byte(`
deployments:
  - {name: oa, provider: openai, base_url: "http://x/v1"}
  - {name: ob, provider: openai, base_url: "http://y/v1"}
tenants:
  - id: t
    content: {capture: true}
    keys: [{id: k, sha256: ` + validHash + `, limits: {requests_per_minute: 5}}]
    models: [{name: m, deployment: oa, upstream_model: u}]
    credentials: [{deployment: oa, api_key: sk-in-file}, {deployment: ob, api_key_env: LOOM_TEST_TENANT_KEY}]
`))
	if err != nil {
		t.Fatal(err)
	}
	ts := c.ResolveTenants()
	if len(ts) != 1 {
		t.Fatalf("tenants = %+v", ts)
	}
	got := ts[0]
	if got.ID != "t" || !got.Content.Capture || got.Content.MaxBytes != tenancy.DefaultContentMaxBytes ||
		len(got.Keys) != 1 || got.Keys[0].Limits.RequestsPerMinute != 5 || len(got.Models) != 1 || got.Models[0].UpstreamModel != "u" {
		t.Errorf("tenant = %+v", got)
	}
	want := []tenancy.Credential{{Deployment: "oa", APIKey: "sk-in-file"}, {Deployment: "ob", APIKey: "sk-from-env"}}
	if !slices.Equal(got.Credentials, want) {
		t.Errorf("credentials = %+v, want %+v", got.Credentials, want)
	}
}

func yamlDecode(s string, c *Config) error {
	dec := yaml.NewDecoder(strings.NewReader(s))
	dec.KnownFields(true)
	return dec.Decode(c)
}

func TestParse_Budgets_LimitsAsWrittenAndProblemsNamedByField(t *testing.T) {
	c, err := Parse([]byte(`
deployments:
  - {name: oa, provider: openai, base_url: "http://x/v1"}
tenants:
  - id: t
    budgets: [{period: day, limit: 25.00}, {period: month, limit: "500", alert_at: 0.9}]
    models: [{name: m, deployment: oa}]
    keys: [{id: k, sha256: ` + validHash + `, budgets: [{period: day, limit: "2.50"}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	got := c.ResolveTenants()[0]
	want := []tenancy.Budget{{Period: "day", Limit: "25.00"}, {Period: "month", Limit: "500", AlertAt: 0.9}}
	if !slices.Equal(got.Budgets, want) || got.Keys[0].Budgets[0] != (tenancy.Budget{Period: "day", Limit: "2.50"}) {
		t.Fatalf("budgets = %+v, key's %+v", got.Budgets, got.Keys[0].Budgets)
	}
	_, err = Parse([]byte(`
deployments:
  - {name: oa, provider: openai, base_url: "http://x/v1"}
tenants:
  - id: t
    budgets: [{period: weekly, limit: "1"}]
    keys: [{id: k, sha256: ` + validHash + `, budgets: [{period: day, limit: 1e3}]}]
`))
	for _, want := range []string{`tenants[0].budgets[0].period: must be "day" or "month"`, `tenants[0].keys[0].budgets[0].limit: "1e3"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}
