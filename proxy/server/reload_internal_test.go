package server

import (
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/config"
)

// A reload keeps each deployment whose specification (its entry, its
// credential, the timeouts, max_response_bytes) did not change, with its
// connection pool and pool slots, rebuilds a changed one, and drops a
// removed one; a credential read from the environment counts as changed
// when the variable did.
func TestReload_KeepsUnchangedDeployments_RebuildsChangedOnes(t *testing.T) {
	t.Setenv("LOOM_TEST_RELOAD_KEY", "sk-1")
	cfg, err := config.Parse([]byte(`
deployments:
  - {name: a, provider: openai, base_url: "http://127.0.0.1:1/v1", api_key: sk-a}
  - {name: b, provider: openai, base_url: "http://127.0.0.1:2/v1", api_key_env: LOOM_TEST_RELOAD_KEY}
  - {name: c, provider: openai, base_url: "http://127.0.0.1:3/v1"}
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := s.live.Load().deployments

	same := *cfg
	if err := s.Reload(&same, true); err != nil {
		t.Fatal(err)
	}
	for name, d := range s.live.Load().deployments {
		if before[name] != d {
			t.Errorf("unchanged deployment %s rebuilt", name)
		}
	}

	t.Setenv("LOOM_TEST_RELOAD_KEY", "sk-2")
	next := *cfg
	next.Deployments = []config.Deployment{cfg.Deployments[0], cfg.Deployments[1]} // c removed
	next.Deployments[0].MaxConns = 7
	if err := s.Reload(&next, true); err != nil {
		t.Fatal(err)
	}
	after := s.live.Load().deployments
	if len(after) != 2 || after["a"] == before["a"] || after["b"] == before["b"] {
		t.Fatalf("a (max_conns changed) and b (its key's variable changed) must be rebuilt, c dropped: %v -> %v", before, after)
	}

	timeouts := next
	timeouts.Timeouts.FirstByte = time.Minute
	if err := s.Reload(&timeouts, true); err != nil {
		t.Fatal(err)
	}
	if now := s.live.Load().deployments; now["a"] == after["a"] || now["a"].Timeouts.FirstByte != time.Minute {
		t.Fatal("a timeouts change did not rebuild the deployments with it")
	}
}
