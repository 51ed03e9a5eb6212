package devstack

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// Environment variables that choose where the demo models go.
const (
	EnvOpenAIKey   = "OPENAI_API_KEY"
	EnvUpstreamURL = "LOOM_UPSTREAM_URL"
	EnvUpstreamKey = "LOOM_UPSTREAM_KEY"
	// The same for the Claude models: Anthropic itself, or any server that
	// speaks its Messages API.
	EnvAnthropicKey         = "ANTHROPIC_API_KEY"
	EnvAnthropicURL         = "LOOM_ANTHROPIC_URL"
	EnvAnthropicUpstreamKey = "LOOM_ANTHROPIC_KEY"
)

// OpenAIBaseURL is the real OpenAI API root; AnthropicBaseURL Anthropic's.
const (
	OpenAIBaseURL    = "https://api.openai.com/v1"
	AnthropicBaseURL = "https://api.anthropic.com/v1"
)

// mockAnthropicKey is what Loom sends the mock's Anthropic API, which wants
// an x-api-key as Anthropic does and takes any. It is not a secret.
const mockAnthropicKey = "sk-ant-mock-not-a-secret"

// Demo tenant, key id and models that the generated configuration holds.
const (
	DemoTenant = "demo"
	DemoKeyID  = "demo-key"
)

// DemoModels are the public model names the demo tenant may call on the
// OpenAI-compatible upstream; DemoClaudeModels those on the Anthropic one.
var (
	DemoModels       = []string{"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}
	DemoClaudeModels = []string{"claude-sonnet-4-5", "claude-haiku-4-5"}
)

// Upstream is the deployment a group of demo models route to.
type Upstream struct {
	// Deployment is the deployment's name in the configuration. The mock
	// serves every model from a second deployment too (Standby), so that
	// failover can be seen locally.
	Deployment string
	// Provider is the deployment's provider (config.ProviderOpenAI or
	// config.ProviderAnthropic).
	Provider string
	// Models are the public model names it serves.
	Models []string
	// BaseURL is the OpenAI-compatible API root, ending in /v1. For the mock
	// it is set once the mock's port is known.
	BaseURL string
	// APIKeyEnv names the variable that holds the upstream credential; empty
	// sends none. The secret itself is never written to the file.
	APIKeyEnv string
	// Mock means the local mock upstream, which devstack starts.
	Mock bool
	// Note explains the choice, or a variable that was ignored.
	Note string
}

// Standby is the mock's second deployment of the same models, tried when
// the first fails; "" for a real upstream.
func (u Upstream) Standby() string {
	if !u.Mock {
		return ""
	}
	return u.Deployment + "-b"
}

// ChooseUpstream picks the upstream from the environment: LOOM_UPSTREAM_URL
// (with LOOM_UPSTREAM_KEY if set) wins, then OPENAI_API_KEY for the real
// OpenAI, else the mock.
func ChooseUpstream(getenv func(string) string) Upstream {
	up := openaiChoice.choose(getenv)
	up.Provider, up.Models = config.ProviderOpenAI, DemoModels
	return up
}

// ChooseAnthropic picks where the Claude models go, as ChooseUpstream does
// for the others: LOOM_ANTHROPIC_URL (with LOOM_ANTHROPIC_KEY if set) wins,
// then ANTHROPIC_API_KEY for Anthropic itself, else the mock's Anthropic
// API.
func ChooseAnthropic(getenv func(string) string) Upstream {
	up := anthropicChoice.choose(getenv)
	up.Provider, up.Models = config.ProviderAnthropic, DemoClaudeModels
	return up
}

// choice is one provider's variables and names for choose.
type choice struct {
	urlEnv, urlKeyEnv, keyEnv string // LOOM_..._URL, LOOM_..._KEY, the provider's own key variable
	baseURL                   string // the provider's real API
	provider                  string // for people: "the real OpenAI", "Anthropic"
	keyOf                     string // for people: whose key it is, "an OpenAI"
	models                    string // for people: "the demo models"
	// The deployment's name for each choice.
	urlDeployment, mockDeployment, realDeployment string
}

var (
	openaiChoice = choice{urlEnv: EnvUpstreamURL, urlKeyEnv: EnvUpstreamKey, keyEnv: EnvOpenAIKey,
		baseURL: OpenAIBaseURL, provider: "the real OpenAI", keyOf: "an OpenAI", models: "the demo models",
		urlDeployment: "upstream", mockDeployment: "mock", realDeployment: "openai"}
	anthropicChoice = choice{urlEnv: EnvAnthropicURL, urlKeyEnv: EnvAnthropicUpstreamKey, keyEnv: EnvAnthropicKey,
		baseURL: AnthropicBaseURL, provider: "Anthropic", keyOf: "an Anthropic", models: "the Claude models",
		urlDeployment: "anthropic-upstream", mockDeployment: "mock-anthropic", realDeployment: "anthropic"}
)

func (c choice) choose(getenv func(string) string) Upstream {
	if u := strings.TrimSpace(getenv(c.urlEnv)); u != "" {
		up := Upstream{Deployment: c.urlDeployment, BaseURL: strings.TrimRight(u, "/"),
			Note: c.urlEnv + " is set: " + c.models + " go to " + strings.TrimRight(u, "/")}
		if getenv(c.urlKeyEnv) != "" {
			up.APIKeyEnv = c.urlKeyEnv
			up.Note += " with the key in " + c.urlKeyEnv
		}
		return up
	}
	mock := Upstream{Deployment: c.mockDeployment, Mock: true,
		Note: c.models + " go to the mock upstream (set " + c.keyEnv + " or " + c.urlEnv + " for a real one)"}
	key := getenv(c.keyEnv)
	switch {
	case key == "":
		return mock
	case strings.HasPrefix(key, tenant.KeyPrefix):
		// A pasted `export OPENAI_API_KEY=sk-loom-...` (the banner's
		// line) from an earlier run: a Loom key, not the provider's, so
		// routing to the provider with it would fail.
		mock.Note = c.keyEnv + " holds a Loom key (" + tenant.KeyPrefix + "...), not " + c.keyOf + " one, so it is ignored; " + mock.Note
		return mock
	}
	return Upstream{Deployment: c.realDeployment, BaseURL: c.baseURL, APIKeyEnv: c.keyEnv,
		Note: c.keyEnv + " is set: " + c.models + " go to " + c.provider + " (" + c.baseURL + ")"}
}

// Describe names the upstream for people.
func (u Upstream) Describe() string {
	switch {
	case u.Mock:
		return "the mock upstream at " + u.BaseURL
	case u.BaseURL == OpenAIBaseURL:
		return "OpenAI at " + u.BaseURL
	case u.BaseURL == AnthropicBaseURL:
		return "Anthropic at " + u.BaseURL
	}
	return u.BaseURL
}

// RenderConfig writes Loom's configuration for the demo: the deployments of
// ups (a mock one twice, the second a lower priority, so failover shows),
// one tenant with one key (given by its SHA-256) and every upstream's
// models, and tracing to the OTLP gRPC endpoint otlp (http://host:port;
// empty turns tracing off) through the durable spool in spoolDir (empty: a
// temporary one). It is regenerated on every start.
func RenderConfig(listen string, ups []Upstream, keyHash, otlp, spoolDir string) []byte {
	return append(renderGateway(listen, ups, otlp, spoolDir), renderDemoTenant(ups, keyHash)...)
}

// renderGateway is loom.yaml without its tenants: what Loom serves with the
// tenant store on, where the demo tenant lives instead (see SeedStore).
func renderGateway(listen string, ups []Upstream, otlp, spoolDir string) []byte {
	var b strings.Builder
	q := strconv.Quote // a Go-quoted ASCII string is a valid YAML double-quoted scalar
	fmt.Fprintf(&b, "# Written by devstack (make run) on every start: edits here are overwritten.\n")
	for _, up := range ups {
		fmt.Fprintf(&b, "# Upstream of %s: %s.\n", strings.Join(up.Models, ", "), up.Describe())
	}
	fmt.Fprintf(&b, "listen: %s\n", q(listen))
	fmt.Fprintf(&b, "timeouts:\n  # devstack waits longer than this before it kills loom.\n  shutdown: 10s\n")
	if otlp != "" {
		fmt.Fprintf(&b, "tracing:\n  # Every call as spans to otelcol-loom (OTLP gRPC), which writes them into Postgres.\n  endpoint: %s\n", q(otlp))
		if spoolDir != "" {
			fmt.Fprintf(&b, "  # Calls wait here for the collector: they survive a crash of Loom or of the collector.\n  spool: {dir: %s}\n", q(spoolDir))
		}
	}
	fmt.Fprintf(&b, "deployments:\n")
	for _, up := range ups {
		for _, name := range []string{up.Deployment, up.Standby()} {
			if name != "" {
				renderDeployment(&b, up, name)
			}
		}
	}
	b.WriteString("# What the demo models cost, per million tokens in USD (the providers' list prices): each unary\n" +
		"# answer says what it cost (X-Loom-Cost), and each CLIENT span carries loom.cost.\nprices:\n")
	for _, up := range ups {
		for _, m := range up.Models {
			if p, ok := demoPrices[m]; ok {
				fmt.Fprintf(&b, "  - {model: %s, effective_from: 2025-01-01, %s}\n", q(m), p)
			}
		}
	}
	return []byte(b.String())
}

// renderDemoTenant is the demo tenant as a config's tenants section: the
// seed that SeedStore puts into the tenant store.
func renderDemoTenant(ups []Upstream, keyHash string) []byte {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "tenants:\n  - id: %s\n    # What is left shows on every answer (x-loom-budget-*); spent, calls get a 429 insufficient_quota.\n"+
		"    budgets: [{period: day, limit: \"10.00\"}]\n    keys:\n      - id: %s\n        sha256: %s\n    models:\n",
		DemoTenant, DemoKeyID, q(keyHash))
	for _, up := range ups {
		for _, m := range up.Models {
			if up.Standby() == "" {
				fmt.Fprintf(&b, "      - name: %s\n        deployment: %s\n", q(m), q(up.Deployment))
				continue
			}
			fmt.Fprintf(&b, "      - name: %s\n        deployments:\n", q(m))
			fmt.Fprintf(&b, "          - {name: %s, priority: 0}\n          - {name: %s, priority: 1}\n",
				q(up.Deployment), q(up.Standby()))
		}
	}
	return []byte(b.String())
}

// demoPrices are the demo models' list prices as their providers publish
// them (per million tokens, USD), as a config entry's price fields.
var demoPrices = map[string]string{
	"gpt-4o-mini":            `input: "0.15", cached_input: "0.075", output: "0.60"`,
	"gpt-4o":                 `input: "2.50", cached_input: "1.25", output: "10.00"`,
	"text-embedding-3-small": `input: "0.02", output: "0"`,
	"claude-sonnet-4-5":      `input: "3.00", cached_input: "0.30", cache_write: "3.75", output: "15.00"`,
	"claude-haiku-4-5":       `input: "1.00", cached_input: "0.10", cache_write: "1.25", output: "5.00"`,
}

func renderDeployment(b *strings.Builder, up Upstream, name string) {
	q := strconv.Quote
	fmt.Fprintf(b, "  - name: %s\n    provider: %s\n    base_url: %s\n", q(name), up.Provider, q(up.BaseURL))
	if up.APIKeyEnv != "" {
		fmt.Fprintf(b, "    api_key_env: %s\n", up.APIKeyEnv)
	}
	if !up.Mock {
		return
	}
	if up.Provider == config.ProviderAnthropic {
		fmt.Fprintf(b, "    # The mock wants an x-api-key, as Anthropic does, and takes any: not a secret.\n    api_key: %s\n",
			q(mockAnthropicKey))
	}
	if name == up.Standby() {
		fmt.Fprintf(b, "    # The same mock again, tried when %s fails (try x-mock-fail: 500 with x-mock-fail-count: 1).\n",
			up.Deployment)
	}
	fmt.Fprintf(b, "    # The mock's per-request controls (x-mock-latency-ms...) pass through Loom.\n")
	fmt.Fprintf(b, "    forward_headers: [\"x-mock-*\"]\n    forward_response_headers: [\"x-mock-*\"]\n")
}

// RenderStoreConfig is loom.yaml's store section: tenants, keys, models,
// budgets and credentials in Postgres (the console's Tenants and Keys pages
// change them there), credentials sealed with the key in secretKeyFile.
func RenderStoreConfig(secretKeyFile string) []byte {
	return fmt.Appendf(nil, "store:\n  # Tenants and keys live in Postgres: manage them in the console (Tenants) or with `loom tenants`.\n"+
		"  # devstack puts the demo tenant and key there once; what you change there stays.\n"+
		"  database_url_env: %s\n  # Encrypts the provider credentials kept in the store (.loom/%s).\n  secret_key_file: %s\n"+
		"  # A change reaches Loom at once (NOTIFY); this is the fallback.\n  poll: 10s\n",
		EnvDatabaseURL, StoreKeyFile, strconv.Quote(secretKeyFile))
}

// RenderConsoleConfig is loom.yaml's console section: the web console on
// listen, reading spans from the Postgres in EnvDatabaseURL (which devstack
// sets in Loom's environment, so the URL never lands in the file), its
// sessions signed with the key in sessionKeyFile; and the admin section:
// the admin API on adminListen (the tenant store's JSON API, which the
// console's Tenants and Keys pages call in process) and the admin token's
// hash, which both check.
func RenderConsoleConfig(listen, sessionKeyFile, adminListen, adminTokenSHA256 string) []byte {
	return fmt.Appendf(nil, "console:\n  # The web console: log in with the demo key, or as admin with .loom/%s.\n"+
		"  listen: %s\n  database_url_env: %s\n  session_key_file: %s\n"+
		"admin:\n  # The admin API: Authorization: Bearer <the admin token>.\n  listen: %s\n"+
		"  # The admin token's SHA-256 (the token is in .loom/%s): the admin API's and the console's admin login.\n  token_sha256: %s\n",
		AdminTokenFile, strconv.Quote(listen), EnvDatabaseURL, strconv.Quote(sessionKeyFile), strconv.Quote(adminListen),
		AdminTokenFile, adminTokenSHA256)
}
