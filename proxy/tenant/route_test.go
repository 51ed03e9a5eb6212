package tenant

import (
	"math/rand/v2"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// routed builds one tenant "t" from a models: block over deployments a..e.
func routed(t *testing.T, models string) *Tenant {
	t.Helper()
	cfg, err := config.Parse([]byte(`
deployments:
  - {name: a, provider: openai, base_url: "http://127.0.0.1:1/v1"}
  - {name: b, provider: openai, base_url: "http://127.0.0.1:2/v1"}
  - {name: c, provider: openai, base_url: "http://127.0.0.1:3/v1"}
  - {name: d, provider: azure_openai, base_url: "https://d.openai.azure.com", api_key: k}
  - {name: e, provider: openai, base_url: "http://127.0.0.1:5/v1"}
tenants:
  - id: t
    keys: [{id: k1, sha256: ce37a696b098c90b35058c8eaae60cd2d14fe9a9662b6d1f37279b0191e204e4}]
    models:
` + models))
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string]*upstream.Deployment{}
	for _, dc := range cfg.Deployments {
		d, err := upstream.New(dc, cfg.Timeouts, nil)
		if err != nil {
			t.Fatal(err)
		}
		deps[dc.Name] = d
	}
	dir, err := Build(cfg.ResolveTenants(), deps)
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := dir.Tenant("t")
	return tn
}

func names(ts []*Target) string {
	s := ""
	for _, t := range ts {
		s += t.Upstream.Name
		if t.Fallback {
			s += "*"
		}
	}
	return s
}

func TestCandidates_LowerPriorityTierFirst_ThenFallbacksOwnDeployments(t *testing.T) {
	tn := routed(t, `
      - name: gpt
        deployments: [{name: c, priority: 2}, {name: a}, {name: b, priority: 1}]
        fallbacks: [backup]
      - {name: backup, deployments: [{name: e, priority: 1}, {name: d, upstream_model: az-dep}], fallbacks: [gpt]}
`)
	r, _ := tn.Route([]byte("gpt"))
	for range 50 {
		got := r.Candidates(nil, rand.IntN)
		if names(got) != "abcd*e*" {
			t.Fatalf("order %s, want abcd*e*", names(got))
		}
		if got[3].Model != "backup" || got[3].UpstreamModel != "az-dep" || got[0].Model != "gpt" || got[0].Fallback {
			t.Fatalf("targets %+v", got)
		}
	}
	// A fallback's own fallbacks are not followed, and the route it falls
	// back to is not changed by serving as one.
	b, _ := tn.Route([]byte("backup"))
	if got := names(b.Candidates(nil, rand.IntN)); got != "dea*b*c*" {
		t.Fatalf("backup's candidates %s, want dea*b*c*", got)
	}
}

func TestCandidates_WeightsSplitFirstChoiceRoughlyByWeight(t *testing.T) {
	tn := routed(t, `
      - name: gpt
        deployments: [{name: a, weight: 6}, {name: b, weight: 3}, {name: c}]
`)
	r, _ := tn.Route([]byte("gpt"))
	first := map[string]int{}
	const n = 20000
	buf := make([]*Target, 0, 8)
	for range n {
		got := r.Candidates(buf[:0], rand.IntN)
		if len(got) != 3 {
			t.Fatalf("%d candidates", len(got))
		}
		first[got[0].Upstream.Name]++
	}
	for name, want := range map[string]float64{"a": 0.6, "b": 0.3, "c": 0.1} {
		if got := float64(first[name]) / n; got < want-0.03 || got > want+0.03 {
			t.Errorf("%s first in %.3f of calls, want %.1f", name, got, want)
		}
	}
}

func TestCandidates_SingleDeploymentForm_AllocatesNothing(t *testing.T) {
	tn := routed(t, "      - {name: gpt, deployment: a, upstream_model: up}\n")
	r, _ := tn.Route([]byte("gpt"))
	buf := make([]*Target, 0, 8)
	if n := testing.AllocsPerRun(100, func() { buf = r.Candidates(buf[:0], rand.IntN) }); n != 0 {
		t.Fatalf("Candidates allocates %.0f times", n)
	}
	if len(buf) != 1 || buf[0].Upstream != r.Upstream || buf[0].UpstreamModel != "up" || r.UpstreamModel != "up" ||
		buf[0].Path(call.OpEmbeddings) != r.Path(call.OpEmbeddings) {
		t.Fatalf("single deployment: %+v vs route %+v", buf[0], r)
	}
}
