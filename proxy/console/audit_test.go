package console_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// The audit log page: the admin sees every tenant's changes, a tenant's
// user only those whose target is its tenant (row-level security), and
// neither sees a secret.
func TestConsole_AuditLog_AdminSeesAllTenantSeesItsOwn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st, err := store.Open(t.Context(), f.pool.Config().ConnString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ctx := store.WithActor(t.Context(), store.Actor{Kind: store.ActorOperator, ID: "ops-carol"})
	for _, id := range []string{"acme", "globex"} {
		if err := st.CreateTenant(ctx, store.TenantSpec{ID: id, Limits: tenancy.Limits{RequestsPerMinute: 60}}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetModels(ctx, id, []tenancy.Model{{Name: id + "-model", Deployment: "mock"}}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := st.CreateKey(ctx, "globex", store.KeySpec{ID: "globex-audited"})
	if err != nil {
		t.Fatal(err)
	}

	admin := newClient(t, f.URL)
	if code := admin.login(adminToken); code != http.StatusSeeOther {
		t.Fatalf("admin login: %d", code)
	}
	code, body, _ := admin.do("GET", "/console/audit", nil)
	if code != http.StatusOK || strings.Count(body, `data-action="tenant.create"`) != 2 || !strings.Contains(body, "globex/keys/globex-audited") ||
		!strings.Contains(body, "operator ops-carol") || !strings.Contains(body, `href="/console/audit"`) {
		t.Fatalf("the admin's audit log: %d\n%s", code, body)
	}
	_, body, _ = admin.do("GET", "/console/audit?tenant=acme", nil)
	if strings.Count(body, "data-seq=") != 2 || strings.Contains(body, "globex") {
		t.Errorf("the admin's audit log for acme:\n%s", body)
	}

	tenant := newClient(t, f.URL)
	if code := tenant.login(keyA); code != http.StatusSeeOther {
		t.Fatalf("tenant login: %d", code)
	}
	// A tenant cannot widen its view with the admin's filter.
	_, body, _ = tenant.do("GET", "/console/audit?tenant=globex", nil)
	if strings.Count(body, "data-seq=") != 2 || !strings.Contains(body, "acme-model") || strings.Contains(body, "globex") {
		t.Errorf("acme's audit log:\n%s", body)
	}
	for _, c := range []*client{admin, tenant} {
		if s := c.seen.String(); strings.Contains(s, key) || strings.Contains(s, key[12:]) {
			t.Error("the console shows a key")
		}
	}
}
