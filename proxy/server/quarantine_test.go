package server_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// quarantineServer serves acme (keys a1, a2) and globex (key g1) on one
// deployment, oa.
func quarantineServer(t *testing.T) *server.Server {
	t.Helper()
	srv := newServer(t, `
deployments: [{name: oa, provider: openai, base_url: "https://api.openai.com/v1", api_key: sk-x}]
`)
	if err := srv.SetTenants([]tenancy.Tenant{acme(), globex()}); err != nil {
		t.Fatal(err)
	}
	return srv
}

func acme() tenancy.Tenant {
	return tenancy.Tenant{ID: "acme", Models: []tenancy.Model{{Name: "m", Deployment: "oa"}}, Keys: []tenancy.Key{
		{ID: "a1", SHA256: tenant.Hash("sk-loom-a1")}, {ID: "a2", SHA256: tenant.Hash("sk-loom-a2")}}}
}

func globex() tenancy.Tenant {
	return tenancy.Tenant{ID: "globex", Models: []tenancy.Model{{Name: "m", Deployment: "oa"}}, Keys: []tenancy.Key{
		{ID: "g1", SHA256: tenant.Hash("sk-loom-g1")}}}
}

func authenticates(srv *server.Server, key string) bool {
	_, _, ok := srv.Authenticate([]byte(key))
	return ok
}

func TestSetTenants_OneBadTenant_OthersStillApplyAndItKeepsItsLastGoodVersion(t *testing.T) {
	srv := quarantineServer(t)
	bad := globex()
	bad.Models[0].Deployment = "typo"
	bad.Keys = append(bad.Keys, tenancy.Key{ID: "g2", SHA256: tenant.Hash("sk-loom-g2")})
	revoked := acme()
	revoked.Keys[1].Revoked = true

	err := srv.SetTenants([]tenancy.Tenant{revoked, bad})
	var q *server.QuarantineError
	if !errors.As(err, &q) || q.Tenant != "globex" {
		t.Fatalf("SetTenants = %v; want globex quarantined", err)
	}
	want := `tenant globex quarantined: models[0].deployment: no deployment named "typo"`
	if err.Error() != want {
		t.Errorf("error = %q; want %q", err, want)
	}
	if authenticates(srv, "sk-loom-a2") {
		t.Error("acme's revoked key still works: one bad tenant held back another's revocation")
	}
	if !authenticates(srv, "sk-loom-a1") {
		t.Error("acme's live key stopped working")
	}
	if !authenticates(srv, "sk-loom-g1") {
		t.Error("quarantined globex lost its last good version")
	}
	if authenticates(srv, "sk-loom-g2") {
		t.Error("quarantined globex's new key is served")
	}
}

func TestSetTenants_QuarantinedTenant_StillLosesRevokedAndRemovedKeys(t *testing.T) {
	srv := quarantineServer(t)
	bad := acme()
	bad.Models[0].Deployment = "typo"
	bad.Keys = bad.Keys[:1]
	bad.Keys[0].Revoked = true
	if err := srv.SetTenants([]tenancy.Tenant{bad, globex()}); err == nil {
		t.Fatal("a tenant naming an unknown deployment was accepted")
	}
	if authenticates(srv, "sk-loom-a1") || authenticates(srv, "sk-loom-a2") {
		t.Error("a quarantined tenant's revoked or removed key still works")
	}
}

func TestSetTenants_NewBadTenant_IsNotServed(t *testing.T) {
	srv := quarantineServer(t)
	bad := tenancy.Tenant{ID: "initech", Models: []tenancy.Model{{Name: "m", Deployment: "typo"}},
		Keys: []tenancy.Key{{ID: "i1", SHA256: tenant.Hash("sk-loom-i1")}}}
	if err := srv.SetTenants([]tenancy.Tenant{acme(), globex(), bad}); err == nil {
		t.Fatal("want initech quarantined")
	}
	if authenticates(srv, "sk-loom-i1") {
		t.Error("a new tenant that never validated is served")
	}
	if !authenticates(srv, "sk-loom-g1") || !authenticates(srv, "sk-loom-a1") {
		t.Error("good tenants are not served")
	}
}

func TestSetTenants_KeyOfAnotherTenant_QuarantinesTheLaterTenant(t *testing.T) {
	srv := quarantineServer(t)
	thief := tenancy.Tenant{ID: "zeta", Keys: []tenancy.Key{{ID: "z1", SHA256: tenant.Hash("sk-loom-a1")}}}
	err := srv.SetTenants([]tenancy.Tenant{acme(), globex(), thief})
	if err == nil || !strings.Contains(err.Error(), "tenant zeta quarantined: keys[0].sha256") {
		t.Fatalf("SetTenants = %v; want zeta quarantined for acme's key", err)
	}
	if tid, _, _ := srv.Authenticate([]byte("sk-loom-a1")); tid != "acme" {
		t.Errorf("acme's key authenticates as %q", tid)
	}
}

func TestKeyLive_RevokedExpiredOrTenantGone_IsNotLive(t *testing.T) {
	srv := quarantineServer(t)
	if !srv.KeyLive("acme", "a1") {
		t.Fatal("a live key is not live")
	}
	if srv.KeyLive("globex", "a1") {
		t.Error("a key is live under another tenant")
	}
	a := acme()
	a.Keys[0].Revoked = true
	a.Keys[1].ExpiresAt = time.Now().Add(-time.Second)
	if err := srv.SetTenants([]tenancy.Tenant{a, globex()}); err != nil {
		t.Fatal(err)
	}
	if srv.KeyLive("acme", "a1") || srv.KeyLive("acme", "a2") {
		t.Error("a revoked or expired key is live")
	}
	if err := srv.SetTenants([]tenancy.Tenant{acme()}); err != nil {
		t.Fatal(err)
	}
	if srv.KeyLive("globex", "g1") {
		t.Error("a deleted tenant's key is live")
	}
}

// BenchmarkSetTenants is a snapshot reload of 1,000 tenants (2 keys, 2
// models each), all good and with one to quarantine: a reload must stay
// well inside the second a revocation has.
func BenchmarkSetTenants(b *testing.B) {
	srv := newServer(b, `
deployments: [{name: oa, provider: openai, base_url: "https://api.openai.com/v1", api_key: sk-x}]
`)
	tenants := make([]tenancy.Tenant, 1000)
	for i := range tenants {
		id := "t" + strconv.Itoa(i)
		tenants[i] = tenancy.Tenant{ID: id,
			Models: []tenancy.Model{{Name: "a", Deployment: "oa"}, {Name: "b", Deployment: "oa"}},
			Keys:   []tenancy.Key{{ID: id + "-1", SHA256: tenant.Hash(id + "-1")}, {ID: id + "-2", SHA256: tenant.Hash(id + "-2")}}}
	}
	b.Run("all_good", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := srv.SetTenants(tenants); err != nil {
				b.Fatal(err)
			}
		}
	})
	// One bad tenant: every tenant is then checked on its own.
	bad := append([]tenancy.Tenant(nil), tenants...)
	bad[500].Models = []tenancy.Model{{Name: "a", Deployment: "typo"}}
	b.Run("one_quarantined", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := srv.SetTenants(bad); err == nil {
				b.Fatal("no quarantine")
			}
		}
	})
}

// A snapshot is checked against what the gateway serves, never against the
// environment the file was loaded in: a variable the file named being unset
// since start (or a CA file gone) must not quarantine every tenant.
func TestSetTenants_EnvironmentChangedSinceStart_TenantsStillApply(t *testing.T) {
	t.Setenv("LOOM_TEST_DEPLOYMENT_KEY", "sk-x")
	t.Setenv("LOOM_TEST_REDIS_URL", "redis://127.0.0.1:1/0")
	srv := newServer(t, `
deployments: [{name: oa, provider: openai, base_url: "https://api.openai.com/v1", api_key_env: LOOM_TEST_DEPLOYMENT_KEY}]
redis: {url_env: LOOM_TEST_REDIS_URL}
`)
	os.Unsetenv("LOOM_TEST_DEPLOYMENT_KEY") // t.Setenv restores both after the test
	os.Unsetenv("LOOM_TEST_REDIS_URL")
	if err := srv.SetTenants([]tenancy.Tenant{acme(), globex()}); err != nil {
		t.Fatalf("SetTenants = %v; want every tenant served", err)
	}
	if !authenticates(srv, "sk-loom-a1") || !authenticates(srv, "sk-loom-g1") {
		t.Error("good tenants are not served")
	}
}
