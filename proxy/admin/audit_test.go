package admin_test

import (
	"crypto/sha256"
	"encoding/hex"
	stdjson "encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/admin"
)

type auditBody struct {
	Object string    `json:"object"`
	Seq    int64     `json:"seq"`
	Time   time.Time `json:"time"`
	Actor  struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
	} `json:"actor"`
	RequestID string             `json:"request_id"`
	Action    string             `json:"action"`
	Tenant    string             `json:"tenant"`
	Target    string             `json:"target"`
	Before    stdjson.RawMessage `json:"before"`
	After     stdjson.RawMessage `json:"after"`
}

// doID sends a request with the admin token and X-Request-Id id (none
// when ""), and returns the status and the request id echoed.
func (f *fixture) doID(id, method, path, body string) (int, string) {
	f.t.Helper()
	r := httptest.NewRequestWithContext(f.t.Context(), method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+token)
	if id != "" {
		r.Header.Set(admin.RequestIDHeader, id)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	f.bodies.Write(w.Body.Bytes())
	return w.Code, w.Header().Get(admin.RequestIDHeader)
}

func TestAdmin_RequestID_ClientsEchoedElseMadeHostileReplaced(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, got := f.doID("client-req-42", "GET", "/admin/tenants", ""); got != "client-req-42" {
		t.Errorf("X-Request-Id sent client-req-42, echoed %q", got)
	}
	_, a := f.doID("", "GET", "/admin/tenants", "")
	_, b := f.doID("", "GET", "/admin/tenants", "")
	if len(a) != 16 || a == b {
		t.Errorf("made request ids %q and %q: want 16 hex digits, each its own", a, b)
	}
	for _, hostile := range []string{"has space", "new\nline", strings.Repeat("x", 129), "caf\xc3\xa9"} {
		if _, got := f.doID(hostile, "GET", "/admin/tenants", ""); got == hostile || len(got) != 16 {
			t.Errorf("X-Request-Id %q: echoed %q, want a new one", hostile, got)
		}
	}
	// A refused request says its id too, for the operator's log search.
	r := httptest.NewRequestWithContext(t.Context(), "GET", "/admin/tenants", nil)
	r.Header.Set(admin.RequestIDHeader, "unauthorized-1")
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || w.Header().Get(admin.RequestIDHeader) != "unauthorized-1" {
		t.Errorf("a refused request: %d, X-Request-Id %q", w.Code, w.Header().Get(admin.RequestIDHeader))
	}
}

// Every change through the admin API is in the audit log, newest first,
// with the admin token's id (never the token), the request id it was made
// under, its action and target, and its states with secrets redacted.
func TestAdmin_EveryChange_InTheAuditLogWithTokenIDRequestIDAndRedactedStates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const credential = "sk-upstream-credential-of-acme"
	type step struct{ method, path, body, action, target string }
	steps := []step{
		{"POST", "/admin/tenants", `{"id":"acme","limits":{"requests_per_minute":60}}`, "tenant.create", "acme"},
		{"POST", "/admin/tenants", `{"id":"globex"}`, "tenant.create", "globex"},
		{"PATCH", "/admin/tenants/acme", `{"content":{"capture":true}}`, "tenant.update", "acme"},
		{"PUT", "/admin/tenants/acme/models", `{"models":[{"name":"mini","deployment":"openai"}]}`, "models.set", "acme/models"},
		{"PUT", "/admin/tenants/acme/credentials/openai", `{"api_key":"` + credential + `"}`, "credential.set", "acme/credentials/openai"},
		{"POST", "/admin/tenants/acme/keys", `{"id":"acme-ci","models":["mini"]}`, "key.create", "acme/keys/acme-ci"},
		{"POST", "/admin/keys/acme-ci/revoke", "", "key.revoke", "acme/keys/acme-ci"},
		{"DELETE", "/admin/tenants/acme/credentials/openai", "", "credential.delete", "acme/credentials/openai"},
		{"DELETE", "/admin/tenants/globex", "", "tenant.delete", "globex"},
		{"POST", "/admin/prices", `{"id":"mini-next","model":"mini","effective_from":"2999-01-01","input":"1","output":"2"}`, "price.add", "/prices/mini-next"},
		{"DELETE", "/admin/prices/mini-next", "", "price.delete", "/prices/mini-next"},
	}
	ids := make([]string, len(steps))
	var key string
	for i, s := range steps {
		code, id := f.doID("", s.method, s.path, s.body)
		if code >= 300 {
			t.Fatalf("%s %s = %d", s.method, s.path, code)
		}
		ids[i] = id
	}
	var kb keyBody
	f.call("POST", "/admin/tenants/acme/keys", `{"id":"acme-2"}`, http.StatusCreated, &kb)
	key = kb.Key
	// Refused changes are not in the log.
	f.call("POST", "/admin/tenants", `{"id":"acme"}`, http.StatusConflict, nil)
	f.call("POST", "/admin/keys/nope/revoke", "", http.StatusNotFound, nil)

	var log list[auditBody]
	answer := f.call("GET", "/admin/audit", "", http.StatusOK, &log)
	if len(log.Data) != len(steps)+1 {
		t.Fatalf("%d entries, want %d: %+v", len(log.Data), len(steps)+1, log.Data)
	}
	sum := sha256.Sum256([]byte(token))
	tokenID := hex.EncodeToString(sum[:6])
	for i, s := range steps {
		e := log.Data[len(steps)-i] // newest first; the newest is acme-2's
		if e.Object != "audit_entry" || e.Actor.Kind != "admin_token" || e.Actor.ID != tokenID || e.RequestID != ids[i] ||
			e.Action != s.action || e.Target != s.target || e.Tenant != strings.Split(s.target, "/")[0] || e.Time.IsZero() {
			t.Errorf("entry for %s %s: %+v; want admin_token %s, request %s, %s %s", s.method, s.path, e, tokenID, ids[i], s.action, s.target)
		}
	}
	if e := log.Data[len(steps)]; string(e.Before) != "null" || !strings.Contains(string(e.After), `"id":"acme"`) {
		t.Errorf("tenant.create: before %s after %s", e.Before, e.After)
	}
	if e := log.Data[len(steps)-4]; string(e.After) != `{"deployment":"openai","set":true,"api_key":"[redacted]"}` {
		t.Errorf("credential.set's after = %s", e.After)
	}
	for i := 1; i < len(log.Data); i++ {
		if log.Data[i].Seq >= log.Data[i-1].Seq {
			t.Errorf("entries not newest first: seq %d after %d", log.Data[i].Seq, log.Data[i-1].Seq)
		}
	}

	// Filters: a tenant's entries; a time window; nonsense refused.
	var acme list[auditBody]
	f.call("GET", "/admin/audit?tenant=globex", "", http.StatusOK, &acme)
	if len(acme.Data) != 2 || acme.Data[0].Action != "tenant.delete" || acme.Data[1].Action != "tenant.create" {
		t.Errorf("?tenant=globex: %+v", acme.Data)
	}
	var none list[auditBody]
	f.call("GET", "/admin/audit?to="+log.Data[len(log.Data)-1].Time.Format(time.RFC3339Nano), "", http.StatusOK, &none)
	if len(none.Data) != 0 {
		t.Errorf("?to=the first entry's time: %d entries, want none (to is exclusive)", len(none.Data))
	}
	var one list[auditBody]
	f.call("GET", "/admin/audit?limit=1&from="+log.Data[len(log.Data)-1].Time.Format(time.RFC3339Nano), "", http.StatusOK, &one)
	if len(one.Data) != 1 || one.Data[0].Seq != log.Data[0].Seq {
		t.Errorf("?limit=1: %+v, want the newest", one.Data)
	}
	openAIError(t, f.call("GET", "/admin/audit?tennant=acme", "", http.StatusBadRequest, nil), "unknown_parameter")
	openAIError(t, f.call("GET", "/admin/audit?from=yesterday", "", http.StatusBadRequest, nil), "invalid_value")
	openAIError(t, f.call("GET", "/admin/audit?limit=0", "", http.StatusBadRequest, nil), "invalid_value")

	// No secret in the log's answer, nor in any byte of the ledger.
	ledger := f.ledgerBytes()
	if !strings.Contains(ledger, "credential.set") {
		t.Fatal("the ledger scan read no admin entry: it would prove nothing")
	}
	for what, s := range map[string]string{"admin token": token, "credential": credential, "key": key,
		"random part of the key": key[12:], "key hash": hex.EncodeToString(sha256Sum(key))} {
		if strings.Contains(string(answer), s) {
			t.Errorf("the audit log's answer shows the %s", what)
		}
		if strings.Contains(ledger, s) {
			t.Errorf("the ledger holds the %s", what)
		}
	}
}

// A client that sends one X-Request-Id for two changes of one kind gets
// the second refused (409): the ledger keeps one entry per action and
// request id, and a change without its entry must not happen.
func TestAdmin_RequestIDReusedForTheSameAction_409AndNothingChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, _ := f.doID("once", "POST", "/admin/tenants", `{"id":"acme"}`); code != http.StatusCreated {
		t.Fatalf("first create: %d", code)
	}
	code, _ := f.doID("once", "POST", "/admin/tenants", `{"id":"globex"}`)
	if code != http.StatusConflict {
		t.Errorf("second create under the same request id: %d, want 409", code)
	}
	f.call("GET", "/admin/tenants/globex", "", http.StatusNotFound, nil)
	// Another action under the same id is another entry.
	if code, _ := f.doID("once", "PATCH", "/admin/tenants/acme", `{"limits":{"requests_per_minute":5}}`); code != http.StatusOK {
		t.Errorf("an update under the create's request id: %d, want 200", code)
	}
}

func sha256Sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
