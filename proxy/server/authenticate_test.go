package server_test

import (
	"testing"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

func TestAuthenticate_LiveSnapshot_NamesTenantAndKey(t *testing.T) {
	const key = "sk-loom-authenticate-test-key"
	srv := newServer(t, `
deployments: [{name: oa, provider: openai, base_url: "https://api.openai.com/v1", api_key: sk-x}]
tenants:
  - id: acme
    keys: [{id: acme-1, sha256: `+tenant.Hash(key)+`}]
    models: [{name: m, deployment: oa}]
`)
	if tid, kid, ok := srv.Authenticate([]byte(key)); !ok || tid != "acme" || kid != "acme-1" {
		t.Errorf("Authenticate(key) = %q, %q, %v; want acme, acme-1, true", tid, kid, ok)
	}
	if _, _, ok := srv.Authenticate([]byte("sk-loom-wrong")); ok {
		t.Error("a wrong key authenticates")
	}
	// A new snapshot without the key logs nobody in with it.
	if err := srv.SetTenants([]tenancy.Tenant{{ID: "other"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := srv.Authenticate([]byte(key)); ok {
		t.Error("a key removed from the snapshot still authenticates")
	}
}

// newServer is a gateway built from a configuration file's text, not
// serving: for tests of its snapshot and authentication.
func newServer(tb testing.TB, yaml string) *server.Server {
	tb.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := server.New(cfg, server.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}
