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
)

// OpenAIBaseURL is the real OpenAI API root.
const OpenAIBaseURL = "https://api.openai.com/v1"

// Demo tenant, key id and models that the generated configuration holds.
const (
	DemoTenant = "demo"
	DemoKeyID  = "demo-key"
)

// DemoModels are the public model names the demo tenant may call.
var DemoModels = []string{"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}

// Upstream is the deployment the demo models route to.
type Upstream struct {
	// Deployment is the deployment's name in the configuration.
	Deployment string
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

// ChooseUpstream picks the upstream from the environment: LOOM_UPSTREAM_URL
// (with LOOM_UPSTREAM_KEY if set) wins, then OPENAI_API_KEY for the real
// OpenAI, else the mock.
func ChooseUpstream(getenv func(string) string) Upstream {
	if u := strings.TrimSpace(getenv(EnvUpstreamURL)); u != "" {
		up := Upstream{Deployment: "upstream", BaseURL: strings.TrimRight(u, "/"),
			Note: EnvUpstreamURL + " is set: the demo models go to " + strings.TrimRight(u, "/")}
		if getenv(EnvUpstreamKey) != "" {
			up.APIKeyEnv = EnvUpstreamKey
			up.Note += " with the key in " + EnvUpstreamKey
		}
		return up
	}
	mock := Upstream{Deployment: "mock", Mock: true,
		Note: "the demo models go to the mock upstream (set OPENAI_API_KEY or LOOM_UPSTREAM_URL for a real one)"}
	key := getenv(EnvOpenAIKey)
	switch {
	case key == "":
		return mock
	case strings.HasPrefix(key, tenant.KeyPrefix):
		// A pasted `export OPENAI_API_KEY=sk-loom-...` from an earlier run:
		// a Loom key, not OpenAI's, so routing to OpenAI with it would fail.
		mock.Note = "OPENAI_API_KEY holds a Loom key (" + tenant.KeyPrefix + "...), not an OpenAI one, so it is ignored; " + mock.Note
		return mock
	}
	return Upstream{Deployment: "openai", BaseURL: OpenAIBaseURL, APIKeyEnv: EnvOpenAIKey,
		Note: "OPENAI_API_KEY is set: the demo models go to the real OpenAI (" + OpenAIBaseURL + ")"}
}

// Describe names the upstream for people.
func (u Upstream) Describe() string {
	switch {
	case u.Mock:
		return "the mock upstream at " + u.BaseURL
	case u.BaseURL == OpenAIBaseURL:
		return "OpenAI at " + u.BaseURL
	}
	return u.BaseURL
}

// RenderConfig writes Loom's configuration for the demo: one deployment (up),
// one tenant with one key (given by its SHA-256), the demo models, and
// tracing to the OTLP gRPC endpoint otlp (http://host:port; empty turns
// tracing off) through the durable spool in spoolDir (empty: a temporary
// one). It is regenerated on every start.
func RenderConfig(listen string, up Upstream, keyHash, otlp, spoolDir string) []byte {
	var b strings.Builder
	q := strconv.Quote // a Go-quoted ASCII string is a valid YAML double-quoted scalar
	fmt.Fprintf(&b, "# Written by devstack (make run) on every start: edits here are overwritten.\n")
	fmt.Fprintf(&b, "# Upstream: %s.\n", up.Describe())
	fmt.Fprintf(&b, "listen: %s\n", q(listen))
	fmt.Fprintf(&b, "timeouts:\n  # devstack waits longer than this before it kills loom.\n  shutdown: 10s\n")
	if otlp != "" {
		fmt.Fprintf(&b, "tracing:\n  # Every call as spans to otelcol-loom (OTLP gRPC), which writes them into Postgres.\n  endpoint: %s\n", q(otlp))
		if spoolDir != "" {
			fmt.Fprintf(&b, "  # Calls wait here for the collector: they survive a crash of Loom or of the collector.\n  spool: {dir: %s}\n", q(spoolDir))
		}
	}
	fmt.Fprintf(&b, "deployments:\n")
	fmt.Fprintf(&b, "  - name: %s\n    provider: %s\n    base_url: %s\n", q(up.Deployment), config.ProviderOpenAI, q(up.BaseURL))
	if up.APIKeyEnv != "" {
		fmt.Fprintf(&b, "    api_key_env: %s\n", up.APIKeyEnv)
	}
	if up.Mock {
		fmt.Fprintf(&b, "    # The mock's per-request controls (x-mock-latency-ms...) pass through Loom.\n")
		fmt.Fprintf(&b, "    forward_headers: [\"x-mock-*\"]\n    forward_response_headers: [\"x-mock-*\"]\n")
	}
	fmt.Fprintf(&b, "tenants:\n  - id: %s\n    keys:\n      - id: %s\n        sha256: %s\n    models:\n",
		DemoTenant, DemoKeyID, q(keyHash))
	for _, m := range DemoModels {
		fmt.Fprintf(&b, "      - name: %s\n        deployment: %s\n", q(m), q(up.Deployment))
	}
	return []byte(b.String())
}

// RenderConsoleConfig is loom.yaml's console section: the web console on
// listen, reading spans from the Postgres in EnvDatabaseURL (which devstack
// sets in Loom's environment, so the URL never lands in the file).
func RenderConsoleConfig(listen string) []byte {
	return fmt.Appendf(nil, "console:\n  # The web console: log in with the demo key.\n  listen: %s\n  database_url_env: %s\n",
		strconv.Quote(listen), EnvDatabaseURL)
}
