package store_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// deployments is the configuration file the loaded tenants must fit.
const deployments = `
deployments:
  - {name: openai, provider: openai, base_url: "https://api.openai.com/v1"}
  - {name: azure, provider: azure_openai, base_url: "https://x.openai.azure.com", api_key: k}
`

func TestLoad_ReturnsExactlyWhatWasSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	acmeLimits := tenancy.Limits{RequestsPerMinute: 600, TokensPerMinute: 100000, ConcurrentStreams: 10}
	must(e.st.CreateTenant(ctx, store.TenantSpec{ID: "acme", Content: tenancy.ContentPolicy{Capture: true}, Limits: acmeLimits}))
	must(e.st.CreateTenant(ctx, store.TenantSpec{ID: "globex", Content: tenancy.ContentPolicy{MaxBytes: 100}}))
	acmeModels := []tenancy.Model{{Name: "gpt-4o", Deployment: "azure", UpstreamModel: "my-4o"}, {Name: "gpt-4o-mini", Deployment: "openai"}}
	must(e.st.SetModels(ctx, "acme", acmeModels))
	must(e.st.SetModels(ctx, "globex", []tenancy.Model{{Name: "gpt-4o-mini", Deployment: "openai"}}))
	must(e.st.SetCredential(ctx, "acme", "openai", "sk-acme-own"))
	must(e.st.SetCredential(ctx, "acme", "azure", "first"))
	must(e.st.SetCredential(ctx, "acme", "azure", "azure-acme-own")) // replaces

	expires := time.Now().Add(24 * time.Hour).Truncate(time.Microsecond)
	keyLimits := tenancy.Limits{RequestsPerMinute: 1}
	live, err := e.st.CreateKey(ctx, "acme", store.KeySpec{ID: "acme-live", Models: []string{"gpt-4o"}, ExpiresAt: expires, Limits: keyLimits})
	must(err)
	revoked, err := e.st.CreateKey(ctx, "acme", store.KeySpec{ID: "acme-revoked", Models: []string{"gpt-4o-mini"}})
	must(err)
	forever, err := e.st.CreateKey(ctx, "acme", store.KeySpec{ID: "acme-forever"})
	must(err)
	expired, err := e.st.CreateKey(ctx, "globex", store.KeySpec{ID: "globex-expired", Models: []string{"gpt-4o-mini"}})
	must(err)
	must(e.st.RevokeKey(ctx, "acme-revoked"))
	past := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	_, err = e.db.Exec(ctx, "UPDATE loom.api_keys SET expires_at = $1 WHERE id = 'globex-expired'", past)
	must(err)
	// With those keys dead, their models may go; Load cuts their
	// restrictions to what is left, so the snapshot still validates.
	must(e.st.SetModels(ctx, "acme", acmeModels[:1]))
	must(e.st.SetModels(ctx, "globex", []tenancy.Model{{Name: "o3", Deployment: "openai"}}))

	got, err := e.st.Load(ctx)
	must(err)
	key := func(id, k string, models []string) tenancy.Key {
		return tenancy.Key{ID: id, SHA256: tenant.Hash(k), Prefix: k[:store.PrefixLen], Models: models}
	}
	want := []tenancy.Tenant{
		{
			ID:      "acme",
			Content: tenancy.ContentPolicy{Capture: true, MaxBytes: tenancy.DefaultContentMaxBytes},
			Limits:  acmeLimits,
			Models:  acmeModels[:1],
			Keys: []tenancy.Key{
				key("acme-forever", forever, nil),
				{ID: "acme-live", SHA256: tenant.Hash(live), Prefix: live[:12], ExpiresAt: expires, Models: []string{"gpt-4o"}, Limits: keyLimits},
				{ID: "acme-revoked", SHA256: tenant.Hash(revoked), Prefix: revoked[:12], Revoked: true, Models: []string{}},
			},
			Credentials: []tenancy.Credential{{Deployment: "azure", APIKey: "azure-acme-own"}, {Deployment: "openai", APIKey: "sk-acme-own"}},
		},
		{
			ID:      "globex",
			Content: tenancy.ContentPolicy{MaxBytes: 100},
			Models:  []tenancy.Model{{Name: "o3", Deployment: "openai"}},
			Keys:    []tenancy.Key{key("globex-expired", expired, []string{})},
		},
	}
	want[1].Keys[0].ExpiresAt = past
	if len(got) != len(want) {
		t.Fatalf("Load = %+v", got)
	}
	for i := range want {
		// Times compare by instant; the rest exactly.
		for j := range got[i].Keys {
			if g, w := got[i].Keys[j].ExpiresAt, want[i].Keys[j].ExpiresAt; g.Equal(w) {
				got[i].Keys[j].ExpiresAt = w
			}
		}
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("tenant %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}

	cfg, err := config.Parse([]byte(deployments))
	must(err)
	names := map[string]bool{}
	for _, d := range cfg.Deployments {
		names[d.Name] = true
	}
	if err := tenancy.Validate(got, func(name string) bool { return names[name] }); err != nil {
		t.Errorf("the snapshot does not validate: %v", err)
	}
}

func TestLoad_CredentialNeedsItsKeyAndPlace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	for _, id := range []string{"acme", "globex"} {
		if err := e.st.CreateTenant(ctx, store.TenantSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.SetCredential(ctx, "acme", "openai", "sk-acme-own"); err != nil {
		t.Fatal(err)
	}

	other := newBox(t)
	_, err := open(t, e.url, other).Load(ctx)
	if !errors.Is(err, secret.ErrOpen) || !strings.Contains(err.Error(), e.box.KeyID()) || !strings.Contains(err.Error(), other.KeyID()) {
		t.Errorf("Load with another key = %v; want ErrOpen naming both key ids", err)
	}
	noKey := open(t, e.url, nil)
	if _, err := noKey.Load(ctx); !errors.Is(err, store.ErrNoSecretKey) {
		t.Errorf("Load without a key = %v, want ErrNoSecretKey", err)
	}
	if err := noKey.SetCredential(ctx, "acme", "azure", "x"); !errors.Is(err, store.ErrNoSecretKey) {
		t.Errorf("SetCredential without a key = %v, want ErrNoSecretKey", err)
	}

	// A row moved to another tenant (by hand, or by an attacker with write
	// access to the table) does not open there.
	if _, err := e.db.Exec(ctx, "UPDATE loom.tenant_credentials SET tenant_id = 'globex'"); err != nil {
		t.Fatal(err)
	}
	_, err = e.st.Load(ctx)
	if !errors.Is(err, secret.ErrOpen) {
		t.Errorf("Load of a moved credential = %v, want ErrOpen", err)
	}
	for _, leak := range []string{"sk-acme-own"} {
		if err != nil && strings.Contains(err.Error(), leak) {
			t.Errorf("error shows the credential: %v", err)
		}
	}
}

func TestLoad_Empty_NoTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	got, err := open(t, e.url, nil).Load(t.Context())
	if err != nil || len(got) != 0 {
		t.Errorf("Load = %+v, %v; want nothing", got, err)
	}
}
