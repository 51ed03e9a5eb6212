package admin_test

import (
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/admin"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/store"
)

// as sends one request to an in-process caller's handler; no token.
func as(t *testing.T, h http.Handler, method, path, body string) (int, []byte) {
	t.Helper()
	r := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, b
}

// A tenant's in-process caller (the console's tenant session) lists,
// makes and revokes its own tenant's keys and nothing else: another
// tenant's keys, the tenants, models, credentials and the audit log all
// answer 404 as an unknown URL does, and change nothing. Its changes are
// in the audit log under its key id; the administrator's caller is the
// admin token.
func TestInternal_TenantCaller_OnlyItsOwnKeys_OtherwiseNotFoundAndNothingChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, id := range []string{"acme", "globex"} {
		f.call("POST", "/admin/tenants", `{"id":"`+id+`"}`, http.StatusCreated, nil)
		f.call("PUT", "/admin/tenants/"+id+"/models", `{"models":[{"name":"m","deployment":"mock"}]}`, http.StatusOK, nil)
		f.call("POST", "/admin/tenants/"+id+"/keys", `{"id":"`+id+`-k"}`, http.StatusCreated, nil)
	}
	in := admin.NewInternal(f.st, sha256.Sum256([]byte(token)), slog.New(slog.NewTextHandler(f.logs, nil)))
	acme := in.As(admin.Caller{Tenant: "acme", KeyID: "acme-k"})

	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/admin/tenants/globex/keys", ""},
		{"POST", "/admin/tenants/globex/keys", `{"id":"planted"}`},
		{"POST", "/admin/keys/globex-k/revoke", ""},
		{"POST", "/admin/keys/no-such-key/revoke", ""},
		{"GET", "/admin/tenants", ""},
		{"GET", "/admin/tenants/acme", ""},
		{"PATCH", "/admin/tenants/acme", `{"limits":{"requests_per_minute":1000000}}`},
		{"PUT", "/admin/tenants/acme/models", `{"models":[]}`},
		{"PUT", "/admin/tenants/acme/credentials/mock", `{"api_key":"sk-x"}`},
		{"DELETE", "/admin/tenants/globex", ""},
		{"PUT", "/admin/keys/acme-k/budgets", `{"budgets":[]}`},
		{"GET", "/admin/audit", ""},
		{"POST", "/admin/prices", `{}`},
	} {
		code, b := as(t, acme, tc.method, tc.path, tc.body)
		if code != http.StatusNotFound {
			t.Errorf("tenant acme: %s %s = %d %s, want 404", tc.method, tc.path, code, b)
			continue
		}
		openAIError(t, b, "unknown_url")
	}
	var globex list[keyBody]
	f.call("GET", "/admin/tenants/globex/keys", "", http.StatusOK, &globex)
	if len(globex.Data) != 1 || globex.Data[0].RevokedAt != nil {
		t.Errorf("globex's keys after acme's tries: %+v, want its one key, live", globex.Data)
	}
	if entries, err := f.st.Audit(t.Context(), store.AuditQuery{}); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range entries {
			if e.Actor.Kind == store.ActorTenantKey {
				t.Errorf("a refused request was recorded: %+v", e)
			}
		}
	}

	// Its own keys: list, make (the API's validation applies), revoke.
	code, b := as(t, acme, "POST", "/admin/tenants/acme/keys", `{"id":"acme-new","models":["not-a-model"]}`)
	if code != http.StatusBadRequest || !strings.Contains(string(b), "not one of the tenant's models") {
		t.Errorf("a key for a model acme lacks: %d %s, want 400 in the API's words", code, b)
	}
	code, b = as(t, acme, "POST", "/admin/tenants/acme/keys", `{"id":"acme-new"}`)
	var made keyBody
	if code != http.StatusCreated || json.Unmarshal(b, &made) != nil || !strings.HasPrefix(made.Key, "sk-loom-") || made.TenantID != "acme" {
		t.Fatalf("acme makes a key: %d %s", code, b)
	}
	code, b = as(t, acme, "GET", "/admin/tenants/acme/keys", "")
	var mine list[keyBody]
	if code != http.StatusOK || json.Unmarshal(b, &mine) != nil || len(mine.Data) != 2 || strings.Contains(string(b), made.Key) {
		t.Errorf("acme lists its keys: %d %s, want its two, without the key", code, b)
	}
	if code, b = as(t, acme, "POST", "/admin/keys/acme-new/revoke", ""); code != http.StatusNoContent {
		t.Errorf("acme revokes its own key: %d %s, want 204", code, b)
	}

	code, b = as(t, in.As(admin.Caller{}), "POST", "/admin/tenants", `{"id":"initech"}`)
	if code != http.StatusCreated {
		t.Fatalf("the administrator's caller makes a tenant: %d %s", code, b)
	}
	entries, err := f.st.Audit(t.Context(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.Actor{
		"key.create acme/keys/acme-new": {Kind: store.ActorTenantKey, ID: "acme-k"},
		"key.revoke acme/keys/acme-new": {Kind: store.ActorTenantKey, ID: "acme-k"},
		"tenant.create initech":         {Kind: store.ActorAdminToken, ID: admin.TokenID(sha256.Sum256([]byte(token)))},
	}
	for _, e := range entries {
		k := e.Action + " " + e.Target
		if w, ok := want[k]; ok {
			if e.Actor.Kind != w.Kind || e.Actor.ID != w.ID || e.Actor.RequestID == "" {
				t.Errorf("%s recorded as %+v, want %+v with a request id", k, e.Actor, w)
			}
			delete(want, k)
		}
	}
	if len(want) > 0 {
		t.Errorf("not in the audit log: %v", want)
	}
	if strings.Contains(f.logs.String(), made.Key) {
		t.Error("the new key is in the log")
	}
}
