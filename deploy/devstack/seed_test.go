package devstack

import (
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// Every start seeds again: the first puts the demo tenant and key into the
// store, later ones change nothing the admin changed, and only models
// routed to a deployment that is gone (the upstream changed) are reset.
func TestSeedStore_SeedsOnce_KeepsTheAdminsChanges_ResetsModelsOnGoneDeployments(t *testing.T) {
	dbURL := pgtest.Database(t, pgtest.Start(t))
	dir := t.TempDir()
	env := map[string]string{EnvDatabaseURL: dbURL}
	prepare := func() *Plan {
		t.Helper()
		p, err := Prepare(Options{Dir: dir, Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
			OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", Getenv: func(k string) string { return env[k] }})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := prepare()
	ctx := t.Context()
	if _, err := p.SeedStore(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	demo := func() tenancy.Tenant {
		t.Helper()
		all, err := st.Load(ctx)
		if err != nil || len(all) != 1 || all[0].ID != DemoTenant {
			t.Fatalf("store tenants = %+v, %v; want the demo tenant alone", all, err)
		}
		return all[0]
	}
	got := demo()
	if len(got.Keys) != 1 || got.Keys[0].ID != DemoKeyID || got.Keys[0].SHA256 != tenant.Hash(p.Key) {
		t.Errorf("demo keys = %+v, want %s with the hash of .loom/demo.key", got.Keys, DemoKeyID)
	}
	if len(got.Models) != len(p.seed.Models) || len(got.Budgets) != 1 || got.Budgets[0].Period != "day" {
		t.Errorf("demo tenant = %+v, want the models and budget of %+v", got, p.seed)
	}

	// The admin changes the demo tenant's budget; the next start keeps it.
	admin := store.WithActor(ctx, store.Actor{Kind: store.ActorAdminToken, ID: "test"})
	mine := []tenancy.Budget{{Period: "month", Limit: got.Budgets[0].Limit}}
	if err := st.SetTenantBudgets(admin, DemoTenant, mine); err != nil {
		t.Fatal(err)
	}
	p = prepare()
	notes, err := p.SeedStore(ctx)
	if err != nil || len(notes) != 0 {
		t.Fatalf("second seed = %q, %v; want nothing to say", notes, err)
	}
	if b := demo().Budgets; len(b) != 1 || b[0].Period != "month" {
		t.Errorf("budgets after a restart = %+v, want the admin's", b)
	}
	entries, err := st.Audit(ctx, store.AuditQuery{Tenant: DemoTenant})
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for _, e := range entries {
		if e.Action == store.ActionKeyCreate {
			keys++
			if e.Actor.Kind != SeedActor.Kind || e.Actor.ID != SeedActor.ID {
				t.Errorf("key.create by %+v, want %+v", e.Actor, SeedActor)
			}
		}
	}
	if keys != 1 {
		t.Errorf("%d key.create entries after two starts, want 1", keys)
	}

	// A real OpenAI instead of the mock: the demo models' deployments are
	// gone, so the models are set to this run's.
	env[EnvOpenAIKey] = "sk-test-not-real"
	t.Setenv(EnvOpenAIKey, env[EnvOpenAIKey]) // the generated config is parsed against the real environment
	p = prepare()
	notes, err = p.SeedStore(ctx)
	if err != nil || len(notes) != 1 || !strings.Contains(notes[0], "mock") {
		t.Fatalf("seed after the upstream changed = %q, %v; want one note naming the mock", notes, err)
	}
	if gone := p.missingDeployments(demo().Models); gone != "" {
		t.Errorf("the demo models still name %s", gone)
	}
}

// A demo key that another tenant holds is refused, not moved.
func TestSeedStore_DemoKeyOfAnotherTenant_Refused(t *testing.T) {
	dbURL := pgtest.Database(t, pgtest.Start(t))
	p, err := Prepare(Options{Dir: t.TempDir(), Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
		OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0",
		Getenv: func(k string) string { return map[string]string{EnvDatabaseURL: dbURL}[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SeedStore(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.seed.ID = "other"
	if _, err := p.SeedStore(t.Context()); !errors.Is(err, store.ErrKeyElsewhere) || !strings.Contains(err.Error(), "demo.key") {
		t.Errorf("seeding the demo key for another tenant = %v, want ErrKeyElsewhere naming the file", err)
	}
}

// adminSeesNewTenant makes a tenant through the banner's admin API and
// finds it on the console's Tenants page, logged in with the banner's
// admin token.
func adminSeesNewTenant(t *testing.T, p *Plan) {
	t.Helper()
	resp, b, err := postJSON(p.AdminURL+"/admin/tenants", `{"id":"acme-made-in-store"}`, map[string]string{"Authorization": "Bearer " + p.AdminToken})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("admin API create tenant: %s %s", resp.Status, b)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	loginURL := strings.TrimSuffix(p.ConsoleURL, "/") + "/login"
	if resp, err = browser.Get(loginURL); err != nil {
		t.Fatal(err)
	}
	form, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(form)
	if m == nil {
		t.Fatalf("console login form has no CSRF token:\n%s", form)
	}
	if resp, err = browser.PostForm(loginURL, url.Values{"key": {p.AdminToken}, "csrf": {string(m[1])}}); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, err = browser.Get(p.ConsoleURL + "tenants"); err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "acme-made-in-store") || !strings.Contains(page, DemoTenant) ||
		strings.Contains(page, "not configured") {
		t.Errorf("console tenants as admin: %s\n%s", resp.Status, b)
	}
}
