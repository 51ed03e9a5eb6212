package console_test

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/admin"
	"github.com/loom-gateway/loom/proxy/console"
	"github.com/loom-gateway/loom/proxy/logtest"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// adminFixture is a console with the admin API in process over a tenant
// store in the fixture's database: tenants acme and globex, a key each
// (AcmeKey, GlobexKey, ids acme-k and globex-k). Keys log in and stay live
// as the store says, as the gateway's snapshot would.
type adminFixture struct {
	*fixture
	st                 *store.Store
	URL                string
	AcmeKey, GlobexKey string
	log                *logtest.Buffer
}

func newAdminFixture(t *testing.T, withStore bool) *adminFixture {
	t.Helper()
	f := &adminFixture{fixture: newFixture(t), log: &logtest.Buffer{}}
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	if f.st, err = store.Open(t.Context(), f.pool.Config().ConnString(), box, store.WithDeployments([]string{"mock", "openai"})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.st.Close)
	ctx := store.WithActor(t.Context(), store.Actor{Kind: store.ActorOperator, ID: "setup"})
	for _, id := range []string{"acme", "globex"} {
		if err := f.st.CreateTenant(ctx, store.TenantSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
		if err := f.st.SetModels(ctx, id, []tenancy.Model{{Name: id + "-model", Deployment: "mock"}}); err != nil {
			t.Fatal(err)
		}
		k, err := f.st.CreateKey(ctx, id, store.KeySpec{ID: id + "-k"})
		if err != nil {
			t.Fatal(err)
		}
		if id == "acme" {
			f.AcmeKey = k
		} else {
			f.GlobexKey = k
		}
	}
	log := slog.New(slog.NewTextHandler(f.log, nil))
	o := console.Options{
		DB: f.pool, AdminTokenSHA256: sha256.Sum256([]byte(adminToken)), SessionKey: []byte(hexID(32)), Log: log,
		LoginsPerIP: 1000, Deployments: []string{"mock", "openai"},
		Authenticate: func(key string) (string, string, bool) {
			sum := sha256.Sum256([]byte(key))
			var tenant, id string
			err := f.pool.QueryRow(t.Context(), `SELECT tenant_id, id FROM loom.api_keys WHERE sha256 = $1 AND revoked_at IS NULL`,
				sum[:]).Scan(&tenant, &id)
			return tenant, id, err == nil
		},
		KeyLive: func(tenantID, keyID string) bool {
			var live bool
			err := f.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM loom.api_keys WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL)`,
				keyID, tenantID).Scan(&live)
			return err == nil && live
		},
	}
	if withStore {
		o.Admin = admin.NewInternal(f.st, o.AdminTokenSHA256, log).As
	}
	srv := httptest.NewServer(console.New(o))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *adminFixture) login(t *testing.T, key string) *client {
	t.Helper()
	c := newClient(t, f.URL)
	if code := c.login(key); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	return c
}

// actors are the audit log's entries as "action target kind id".
func (f *adminFixture) actors(t *testing.T) string {
	t.Helper()
	entries, err := f.st.Audit(t.Context(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Action + " " + e.Target + " " + e.Actor.Kind + " " + e.Actor.ID + "\n")
	}
	return b.String()
}

// A form posted without the session's token (a cross-site form), with
// another session's, or by GET changes nothing: 403, or 405 for the GET.
func TestConsoleAdmin_FormWithoutTheSessionsToken_403AndNothingChanges(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t, true)
	adm := f.login(t, adminToken)
	other := f.login(t, adminToken).csrf("/console/")
	acme := f.login(t, f.AcmeKey)
	for _, tc := range []struct {
		c    *client
		path string
		form url.Values
	}{
		{adm, "/console/tenants", url.Values{"id": {"planted"}}},
		{adm, "/console/tenants", url.Values{"id": {"planted"}, "csrf": {other}}},
		{adm, "/console/tenants/acme/credentials", url.Values{"deployment": {"mock"}, "api_key": {"sk-planted"}}},
		{adm, "/console/tenants/acme/models", url.Values{"models": {"x=mock"}}},
		{adm, "/console/keys/globex-k/revoke", url.Values{"tenant": {"globex"}}},
		{acme, "/console/keys", url.Values{"key_id": {"planted-key"}}},
		{acme, "/console/keys/acme-k/revoke", url.Values{}},
	} {
		if code, body, _ := tc.c.do("POST", tc.path, tc.form); code != http.StatusForbidden {
			t.Errorf("POST %s without the session's token: %d, want 403\n%s", tc.path, code, body)
		}
	}
	if code, _, _ := adm.do("GET", "/console/keys/globex-k/revoke", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of a revoke URL: %d, want 405", code)
	}
	if _, err := f.st.GetTenant(t.Context(), "planted"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tenant planted: %v, want not found", err)
	}
	if log := f.actors(t); strings.Contains(log, "admin_token") || strings.Contains(log, "tenant_key") {
		t.Errorf("refused forms changed something:\n%s", log)
	}
}

var newKeyValue = regexp.MustCompile(`<code id="new-key-value">(sk-loom-[^<]+)</code>`)

// The administrator makes a tenant, its models, a credential and a key in
// the browser: refusals show in the form in the admin API's words, the
// credential is only ever "set", the key shows once with a copy button,
// and each change is in the audit log as the admin token's.
func TestConsoleAdmin_TenantModelsCredentialKey_CredentialNeverShownKeyOnce(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t, true)
	const credential = "sk-provider-credential-0123456789"
	adm := f.login(t, adminToken)
	tok := adm.csrf("/console/tenants")

	code, body, _ := adm.do("POST", "/console/tenants", url.Values{"csrf": {tok}, "id": {"bad id"}, "rpm": {"60"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `data-error="tenant"`) || !strings.Contains(body, "letters, digits") ||
		!strings.Contains(body, `value="bad id"`) {
		t.Errorf("a bad tenant id: %d, want 400 with the API's words and what was typed:\n%s", code, body)
	}
	if code, body, _ = adm.do("POST", "/console/tenants", url.Values{"csrf": {tok}, "id": {"x"}, "rpm": {"lots"}}); code != http.StatusBadRequest ||
		!strings.Contains(body, "Requests per minute") {
		t.Errorf("a limit that is no number: %d, want 400 naming the field:\n%s", code, body)
	}
	code, _, resp := adm.do("POST", "/console/tenants", url.Values{"csrf": {tok}, "id": {"initech"}, "rpm": {"60"}, "capture": {"on"}})
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/console/tenants/initech" {
		t.Fatalf("create tenant: %d %s", code, resp.Header.Get("Location"))
	}
	if code, body, _ = adm.do("POST", "/console/tenants", url.Values{"csrf": {tok}, "id": {"initech"}}); code != http.StatusConflict ||
		!strings.Contains(body, "already exists") {
		t.Errorf("the same tenant again: %d, want 409 saying it exists:\n%s", code, body)
	}
	if code, body, _ = adm.do("POST", "/console/tenants/initech/models", url.Values{"csrf": {tok}, "models": {"m1=nowhere"}}); code != http.StatusBadRequest ||
		!strings.Contains(body, "no deployment named") {
		t.Errorf("a model on an unknown deployment: %d, want 400 naming it:\n%s", code, body)
	}
	if code, body, _ = adm.do("POST", "/console/tenants/initech/models", url.Values{"csrf": {tok}, "models": {"m1=mock\nm2=openai:gpt-4o\n"}}); code != http.StatusSeeOther {
		t.Errorf("set models: %d\n%s", code, body)
	}
	if code, body, _ = adm.do("POST", "/console/tenants/initech/credentials", url.Values{"csrf": {tok}, "deployment": {"openai"}, "api_key": {credential}}); code != http.StatusSeeOther {
		t.Errorf("set a credential: %d\n%s", code, body)
	}
	if code, body, _ = adm.do("POST", "/console/tenants/initech/limits", url.Values{"csrf": {tok}, "rpm": {"120"}, "tpm": {"5000"}}); code != http.StatusSeeOther {
		t.Errorf("set limits: %d\n%s", code, body)
	}
	_, page, _ := adm.do("GET", "/console/tenants/initech", nil)
	for _, want := range []string{`<tr data-deployment="openai">`, `<td class="cred">set</td>`, "m2=openai:gpt-4o", `name="rpm" inputmode="numeric" value="120"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the tenant page lacks %q:\n%s", want, page)
		}
	}

	code, body, _ = adm.do("POST", "/console/tenants/initech/keys", url.Values{"csrf": {tok}, "key_id": {"initech-web"}, "models": {"m1"}})
	m := newKeyValue.FindStringSubmatch(body)
	if code != http.StatusCreated || m == nil || !strings.Contains(body, `data-copy-target="#new-key-value"`) ||
		!strings.Contains(body, `src="/console/static/copy.js"`) {
		t.Fatalf("create key: %d, want 201 with the key once and a copy button:\n%s", code, body)
	}
	if c := newClient(t, f.URL); c.login(m[1]) != http.StatusSeeOther {
		t.Error("the new key does not log in")
	}
	_, page, _ = adm.do("GET", "/console/tenants/initech", nil)
	if strings.Contains(page, m[1]) || !strings.Contains(page, `data-key="initech-web"`) {
		t.Errorf("the key is shown again, or not listed:\n%s", page)
	}
	code, _, _ = adm.do("POST", "/console/keys/initech-web/revoke", url.Values{"csrf": {tok}, "tenant": {"initech"}})
	if code != http.StatusSeeOther {
		t.Errorf("revoke: %d", code)
	}
	_, page, _ = adm.do("GET", "/console/tenants/initech", nil)
	if !strings.Contains(page, `<td class="state">revoked</td>`) {
		t.Errorf("the revoked key does not say so:\n%s", page)
	}
	if strings.Contains(adm.seen.String(), credential) || strings.Contains(f.log.String(), credential) || strings.Contains(f.log.String(), m[1]) {
		t.Error("the credential was shown back or logged, or the key logged")
	}
	log := f.actors(t)
	for _, want := range []string{"tenant.create initech admin_token", "models.set initech/models admin_token",
		"credential.set initech/credentials/openai admin_token", "tenant.update initech admin_token",
		"key.create initech/keys/initech-web admin_token", "key.revoke initech/keys/initech-web admin_token"} {
		if !strings.Contains(log, want) {
			t.Errorf("the audit log lacks %q:\n%s", want, log)
		}
	}
}

// A tenant's session manages its own keys and nothing else: the tenants
// pages and forms are 404s, another tenant's key cannot be revoked (404,
// still live), and its changes are in the audit log as its key's.
func TestConsoleKeys_TenantSession_OwnKeysOnly_AdminPages404(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t, true)
	acme := f.login(t, f.AcmeKey)
	tok := acme.csrf("/console/keys")
	for _, path := range []string{"/console/tenants", "/console/tenants/acme", "/console/tenants/globex"} {
		if code, body, _ := acme.do("GET", path, nil); code != http.StatusNotFound || strings.Contains(body, "globex") {
			t.Errorf("tenant GET %s: %d, want a 404 that names nobody", path, code)
		}
	}
	for _, path := range []string{"/console/tenants", "/console/tenants/globex/keys", "/console/tenants/acme/credentials", "/console/tenants/acme/limits"} {
		if code, _, _ := acme.do("POST", path, url.Values{"csrf": {tok}, "id": {"planted"}, "deployment": {"mock"}, "api_key": {"x"}}); code != http.StatusNotFound {
			t.Errorf("tenant POST %s: %d, want 404", path, code)
		}
	}
	_, page, _ := acme.do("GET", "/console/keys", nil)
	if !strings.Contains(page, `data-key="acme-k"`) || strings.Contains(page, "globex") {
		t.Errorf("acme's keys page: want its key and nothing of globex's:\n%s", page)
	}
	code, body, _ := acme.do("POST", "/console/keys/globex-k/revoke", url.Values{"csrf": {tok}})
	if code != http.StatusNotFound || !strings.Contains(body, `data-error="keys"`) {
		t.Errorf("acme revokes globex's key: %d, want 404 in the form:\n%s", code, body)
	}
	if keys, err := f.st.ListKeys(t.Context(), "globex"); err != nil || len(keys) != 1 || !keys[0].RevokedAt.IsZero() {
		t.Errorf("globex's keys: %+v %v, want its key live", keys, err)
	}
	for _, expires := range []string{"2001-02-03", "someday"} {
		if code, body, _ = acme.do("POST", "/console/keys", url.Values{"csrf": {tok}, "key_id": {"acme-old"}, "expires": {expires}}); code != http.StatusBadRequest ||
			!strings.Contains(body, `data-error="keys"`) || newKeyValue.MatchString(body) {
			t.Errorf("a key expiring %s: %d, want 400 in the form and no key:\n%s", expires, code, body)
		}
	}
	code, body, _ = acme.do("POST", "/console/keys", url.Values{"csrf": {tok}, "key_id": {"acme-ci"}, "expires": {"2999-12-31"}})
	if code != http.StatusCreated || newKeyValue.FindStringSubmatch(body) == nil || !strings.Contains(body, "2999-12-31 00:00:00") {
		t.Fatalf("acme makes a key expiring 2999-12-31: %d\n%s", code, body)
	}
	if code, _, _ = acme.do("POST", "/console/keys/acme-ci/revoke", url.Values{"csrf": {tok}}); code != http.StatusSeeOther {
		t.Errorf("acme revokes its own key: %d, want 303", code)
	}
	log := f.actors(t)
	for _, want := range []string{"key.create acme/keys/acme-ci tenant_key acme-k", "key.revoke acme/keys/acme-ci tenant_key acme-k"} {
		if !strings.Contains(log, want) {
			t.Errorf("the audit log lacks %q:\n%s", want, log)
		}
	}
	// Revoking the key the session logged in with ends the session.
	if code, _, _ = acme.do("POST", "/console/keys/acme-k/revoke", url.Values{"csrf": {tok}}); code != http.StatusSeeOther {
		t.Errorf("acme revokes its session's key: %d, want 303", code)
	}
	if code, body, _ = acme.do("GET", "/console/keys", nil); code != http.StatusUnauthorized || !strings.Contains(body, "session has ended") {
		t.Errorf("after revoking its own session's key: %d, want 401 saying the session ended:\n%s", code, body)
	}
}

// Without a tenant store there is no admin API: the pages say so, and the
// forms change nothing.
func TestConsoleAdmin_WithoutTheStore_PagesSaySo(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t, false)
	adm := f.login(t, adminToken)
	if code, body, _ := adm.do("GET", "/console/tenants", nil); code != http.StatusOK || !strings.Contains(body, "tenant store is not configured") {
		t.Errorf("admin tenants without a store: %d\n%s", code, body)
	}
	if code, _, _ := adm.do("POST", "/console/tenants", url.Values{"csrf": {adm.csrf("/console/")}, "id": {"x"}}); code != http.StatusNotFound {
		t.Errorf("create tenant without a store: %d, want 404", code)
	}
	acme := f.login(t, f.AcmeKey)
	if code, body, _ := acme.do("GET", "/console/keys", nil); code != http.StatusOK || !strings.Contains(body, "tenant store is not configured") {
		t.Errorf("tenant keys without a store: %d\n%s", code, body)
	}
}

// A model the form's lines cannot say (several deployments) is shown, not
// offered for editing, so saving the form cannot drop its routing; a
// credential is removed by its own button, and the page then says "not
// set".
func TestConsoleAdmin_LongFormModelReadOnly_CredentialRemoved(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t, true)
	ctx := store.WithActor(t.Context(), store.Actor{Kind: store.ActorOperator, ID: "setup"})
	if err := f.st.SetModels(ctx, "acme", []tenancy.Model{{Name: "tiered", Deployments: []tenancy.Target{
		{Deployment: "mock"}, {Deployment: "openai", Priority: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetCredential(ctx, "acme", "openai", "sk-acme-own-openai-key"); err != nil {
		t.Fatal(err)
	}
	adm := f.login(t, adminToken)
	_, page, _ := adm.do("GET", "/console/tenants/acme", nil)
	if strings.Contains(page, `id="models-form"`) || !strings.Contains(page, "several deployments") || !strings.Contains(page, "<li>tiered</li>") {
		t.Errorf("a tenant with a several-deployment model: want it listed and no models form:\n%s", page)
	}
	code, _, _ := adm.do("POST", "/console/tenants/acme/credentials", url.Values{"csrf": {adm.csrf("/console/tenants/acme")},
		"deployment": {"openai"}, "remove": {"on"}})
	if code != http.StatusSeeOther {
		t.Fatalf("remove the credential: %d", code)
	}
	_, page, _ = adm.do("GET", "/console/tenants/acme", nil)
	if !strings.Contains(page, `<tr data-deployment="openai">`+"\n"+`<td>openai</td><td class="cred"><span class="muted">not set</span>`) {
		t.Errorf("after removing the credential the page does not say not set:\n%s", page)
	}
	if strings.Contains(adm.seen.String(), "sk-acme-own-openai-key") {
		t.Error("the credential was shown")
	}
	if log := f.actors(t); !strings.Contains(log, "credential.delete acme/credentials/openai admin_token") {
		t.Errorf("the audit log lacks the removal:\n%s", log)
	}
}
