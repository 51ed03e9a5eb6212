package config

import (
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

const routingDeployments = `
deployments:
  - {name: east, provider: openai, base_url: "http://127.0.0.1:1/v1"}
  - {name: west, provider: openai, base_url: "http://127.0.0.1:2/v1"}
  - {name: spare, provider: openai, base_url: "http://127.0.0.1:3/v1"}
`

func TestParse_ModelWithSeveralDeploymentsAndFallbacks(t *testing.T) {
	c, err := Parse([]byte(routingDeployments + `
routing: {max_attempts: 4, circuit_failures: 2, circuit_cooldown: 10s}
tenants:
  - id: t
    keys: [{id: k1, sha256: ` + validHash + `}]
    models:
      - name: gpt
        deployments:
          - {name: east, weight: 3}
          - {name: west, weight: 1, upstream_model: gpt-west}
          - {name: spare, priority: 1}
        fallbacks: [small]
        routing: {max_attempts: 2, budget: 20s}
      - {name: small, deployment: spare}
`))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Tenants[0].Models[0]
	if len(m.Targets()) != 3 || m.Targets()[1].UpstreamModel != "gpt-west" || m.Targets()[2].Priority != 1 ||
		m.Fallbacks[0] != "small" {
		t.Fatalf("model: %+v", m)
	}
	if got := c.Tenants[0].Models[1].Targets(); len(got) != 1 || got[0].Deployment != "spare" {
		t.Fatalf("the single-deployment form as targets: %+v", got)
	}
	r := c.Routing
	if r.MaxAttempts != 4 || r.CircuitFailures != 2 || r.CircuitCooldown != 10*time.Second || r.Budget != DefaultRouting.Budget {
		t.Fatalf("routing: %+v", r)
	}
	if p := r.Policy(m.Routing); p.MaxAttempts != 2 || p.Budget != 20*time.Second {
		t.Fatalf("model override not applied: %+v", p)
	}
	if p := r.Policy(tenancy.Routing{}); p.MaxAttempts != 4 || p.Budget != DefaultRouting.Budget {
		t.Fatalf("gateway policy not inherited: %+v", p)
	}
}

func TestParse_RoutingProblemsNameTheirFields(t *testing.T) {
	_, err := Parse([]byte(routingDeployments + `
routing: {max_attempts: 9, budget: -1s, circuit_failures: -1, circuit_cooldown: -1s}
tenants:
  - id: t
    keys: [{id: k1, sha256: ` + validHash + `}]
    models:
      - {name: ok, deployment: east}
      - name: gpt
        deployment: east
        deployments:
          - {name: east, weight: -1}
          - {name: nowhere, priority: -2}
          - {name: east}
        fallbacks: [gpt, missing, ok, ok]
        routing: {max_attempts: -1}
`))
	if err == nil {
		t.Fatal("invalid routing accepted")
	}
	for _, want := range []string{
		"routing.max_attempts: must be between 1 and 8, got 9",
		"routing.budget: must not be negative",
		"routing.circuit_failures: must be positive",
		"routing.circuit_cooldown: must not be negative",
		"tenants[0].models[1]: set deployment or deployments, not both",
		"tenants[0].models[1].deployments[0].weight: must not be negative, got -1",
		`tenants[0].models[1].deployments[1].name: no deployment named "nowhere"`,
		"tenants[0].models[1].deployments[1].priority: must not be negative, got -2",
		`tenants[0].models[1].deployments[2].name: "east" is listed twice`,
		"tenants[0].models[1].fallbacks[0]: a model cannot fall back to itself",
		`tenants[0].models[1].fallbacks[1]: "missing" is not one of the tenant's models`,
		`tenants[0].models[1].fallbacks[3]: "ok" is listed twice`,
		"tenants[0].models[1].routing.max_attempts: must be between 1 and 8, got -1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
