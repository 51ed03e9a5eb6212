package admin_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/tenant"
)

type tenantBody struct {
	ID      string `json:"id"`
	Content struct {
		Capture  bool `json:"capture"`
		MaxBytes int  `json:"max_bytes"`
	} `json:"content"`
	Limits struct {
		RequestsPerMinute int `json:"requests_per_minute"`
		TokensPerMinute   int `json:"tokens_per_minute"`
		ConcurrentStreams int `json:"concurrent_streams"`
	} `json:"limits"`
	Models []struct {
		Name, Deployment string
		UpstreamModel    string `json:"upstream_model"`
	} `json:"models"`
	Credentials []string `json:"credentials"`
}

type keyBody struct {
	ID        string     `json:"id"`
	TenantID  string     `json:"tenant_id"`
	Prefix    string     `json:"prefix"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	Models    []string   `json:"models"`
	Key       string     `json:"key"`
}

type list[T any] struct {
	Object string `json:"object"`
	Data   []T    `json:"data"`
}

// One administrator's session, start to end, and then the scan: no key,
// token or credential in any answer or log line.
func TestAdmin_TenantModelsCredentialKeys_NothingSecretLeaks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const credential = "sk-upstream-credential-of-acme"

	var tb tenantBody
	f.call("POST", "/admin/tenants", `{"id":"acme","content":{"capture":true},"limits":{"requests_per_minute":60}}`, http.StatusCreated, &tb)
	if tb.ID != "acme" || !tb.Content.Capture || tb.Limits.RequestsPerMinute != 60 || tb.Models == nil {
		t.Errorf("created %+v", tb)
	}
	openAIError(t, f.call("POST", "/admin/tenants", `{"id":"acme"}`, http.StatusConflict, nil), "already_exists")
	openAIError(t, f.call("POST", "/admin/tenants", `{"id":"x","limit":{}}`, http.StatusBadRequest, nil), "unknown_parameter")
	openAIError(t, f.call("POST", "/admin/tenants", `{"id":"bad id"}`, http.StatusBadRequest, nil), "invalid_value")
	openAIError(t, f.call("POST", "/admin/tenants", `{"id":`, http.StatusBadRequest, nil), "invalid_json")
	f.call("PATCH", "/admin/tenants/acme", `{"limits":{"tokens_per_minute":1000},"content":{"max_bytes":2048}}`, http.StatusOK, &tb)
	if tb.Limits.RequestsPerMinute != 60 || tb.Limits.TokensPerMinute != 1000 || tb.Content.MaxBytes != 2048 || !tb.Content.Capture {
		t.Errorf("patched %+v: want tpm and max_bytes changed, the rest kept", tb)
	}
	openAIError(t, f.call("PATCH", "/admin/tenants/nope", `{}`, http.StatusNotFound, nil), "not_found")

	f.call("PUT", "/admin/tenants/acme/models", `{"models":[{"name":"gpt-4o","deployment":"azure","upstream_model":"my-4o"},{"name":"mini","deployment":"openai"}]}`, http.StatusOK, &tb)
	if len(tb.Models) != 2 || tb.Models[0].UpstreamModel != "my-4o" {
		t.Errorf("models %+v", tb.Models)
	}
	b := f.call("PUT", "/admin/tenants/acme/models", `{"models":[{"name":"a","deploymnt":"x"}]}`, http.StatusBadRequest, nil)
	if !strings.Contains(string(b), `"param":"models[0].deploymnt"`) {
		t.Errorf("misspelt model field: %s", b)
	}
	if b := f.call("PUT", "/admin/tenants/acme/credentials/openai", `{"api_key":"`+credential+`"}`, http.StatusNoContent, nil); len(b) != 0 {
		t.Errorf("credential answer has a body: %s", b)
	}
	f.call("GET", "/admin/tenants/acme", "", http.StatusOK, &tb)
	if !slices.Equal(tb.Credentials, []string{"openai"}) {
		t.Errorf("credentials listed as %v, want the deployment name", tb.Credentials)
	}

	var kb keyBody
	f.call("POST", "/admin/tenants/acme/keys", `{"id":"acme-ci","models":["mini"],"expires_at":"2099-01-01T00:00:00Z","limits":{"requests_per_minute":5}}`, http.StatusCreated, &kb)
	key := kb.Key
	if !strings.HasPrefix(key, tenant.KeyPrefix) || kb.ID != "acme-ci" || kb.Prefix != key[:12] || kb.ExpiresAt == nil || !slices.Equal(kb.Models, []string{"mini"}) {
		t.Fatalf("created key %+v", kb)
	}
	var other keyBody
	f.call("POST", "/admin/tenants/acme/keys", `{}`, http.StatusCreated, &other)
	openAIError(t, f.call("POST", "/admin/tenants/acme/keys", `{"models":["nope"]}`, http.StatusBadRequest, nil), "invalid_value")
	openAIError(t, f.call("PUT", "/admin/tenants/acme/models", `{"models":[{"name":"gpt-4o","deployment":"azure"}]}`, http.StatusConflict, nil), "in_use")

	var keys list[keyBody]
	raw := f.call("GET", "/admin/tenants/acme/keys", "", http.StatusOK, &keys)
	if keys.Object != "list" || len(keys.Data) != 2 || strings.Contains(string(raw), `"key"`) || strings.Contains(string(raw), "sha256") {
		t.Errorf("keys list %s: want two keys, no key, no hash", raw)
	}
	f.call("POST", "/admin/keys/acme-ci/revoke", "", http.StatusNoContent, nil)
	openAIError(t, f.call("POST", "/admin/keys/nope/revoke", "", http.StatusNotFound, nil), "not_found")
	f.call("GET", "/admin/tenants/acme/keys", "", http.StatusOK, &keys)
	if i := slices.IndexFunc(keys.Data, func(k keyBody) bool { return k.ID == "acme-ci" }); i < 0 || keys.Data[i].RevokedAt == nil {
		t.Errorf("after revoke: %+v", keys.Data)
	}

	// What the proxy loads: the key's hash, the credential opened.
	loaded, err := f.st.Load(t.Context())
	if err != nil || len(loaded) != 1 || len(loaded[0].Credentials) != 1 || loaded[0].Credentials[0].APIKey != credential {
		t.Fatalf("Load = %+v, %v", loaded, err)
	}
	for _, k := range loaded[0].Keys {
		if k.ID == "acme-ci" && (k.SHA256 != tenant.Hash(key) || !k.Revoked) || k.ID == other.ID && k.SHA256 != tenant.Hash(other.Key) {
			t.Errorf("loaded key %+v", k)
		}
	}

	var tenants list[tenantBody]
	f.call("GET", "/admin/tenants", "", http.StatusOK, &tenants)
	if len(tenants.Data) != 1 || tenants.Data[0].ID != "acme" {
		t.Errorf("tenants %+v", tenants)
	}
	openAIError(t, f.call("GET", "/admin/nope", "", http.StatusNotFound, nil), "unknown_url")
	f.call("DELETE", "/admin/tenants/acme/credentials/openai", "", http.StatusNoContent, nil)
	openAIError(t, f.call("DELETE", "/admin/tenants/acme/credentials/openai", "", http.StatusNotFound, nil), "not_found")
	f.call("DELETE", "/admin/tenants/acme", "", http.StatusNoContent, nil)
	openAIError(t, f.call("GET", "/admin/tenants/acme", "", http.StatusNotFound, nil), "not_found")

	// Keys are in their one answer (counted below); nothing else secret
	// is in any answer, and nothing secret at all is in the log.
	inAnswers := map[string]string{"admin token": token, "credential": credential, "key hash": tenant.Hash(key)}
	inLog := map[string]string{"API key": key, "random part of a key": key[12:], "other API key": other.Key}
	for what, s := range inAnswers {
		if strings.Contains(f.bodies.String(), s) {
			t.Errorf("an answer shows the %s", what)
		}
		inLog[what] = s
	}
	for what, s := range inLog {
		if strings.Contains(f.logs.String(), s) {
			t.Errorf("the log shows the %s", what)
		}
	}
	// Each key is in exactly one answer: the one that made it.
	for _, k := range []string{key, other.Key} {
		if n := strings.Count(f.bodies.String(), k); n != 1 {
			t.Errorf("a key appears in %d answers, want 1", n)
		}
	}
	if !strings.Contains(f.logs.String(), "path=/admin/tenants/acme/keys") {
		t.Errorf("requests are not logged:\n%s", f.logs.String())
	}

	// Every change above is in the audit log, the admin token's, in order,
	// and the ledger holds no secret.
	var audit list[auditBody]
	f.call("GET", "/admin/audit", "", http.StatusOK, &audit)
	var got []string
	for _, e := range slices.Backward(audit.Data) {
		if e.Actor.Kind != "admin_token" || e.Actor.ID == "" || e.RequestID == "" {
			t.Errorf("entry %s %s: actor %+v, request id %q", e.Action, e.Target, e.Actor, e.RequestID)
		}
		got = append(got, e.Action+" "+e.Target)
	}
	want := []string{"tenant.create acme", "tenant.update acme", "models.set acme/models", "credential.set acme/credentials/openai",
		"key.create acme/keys/acme-ci", "key.create acme/keys/" + other.ID, "key.revoke acme/keys/acme-ci",
		"credential.delete acme/credentials/openai", "tenant.delete acme"}
	if !slices.Equal(got, want) {
		t.Errorf("audit log, oldest first:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ledger := f.ledgerBytes()
	for what, s := range inLog {
		if strings.Contains(ledger, s) {
			t.Errorf("the ledger holds the %s", what)
		}
	}
}
