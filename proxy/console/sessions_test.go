package console_test

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/console"
)

func TestConsole_RevokedKeyOrDeletedTenant_SessionGets401AtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newClient(t, f.URL)
	if code := c.login(keyA2); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	if code, _, _ := c.do("GET", "/console/calls/"+f.ContentTraceID, nil); code != http.StatusOK {
		t.Fatalf("before the revocation: %d", code)
	}
	stolen := *c.cookie
	f.live.revoke("acme-key-2")
	code, body, _ := c.do("GET", "/console/calls/"+f.ContentTraceID, nil)
	if code != http.StatusUnauthorized || strings.Contains(body, "A device for weaving cloth.") {
		t.Fatalf("a revoked key's session reading a call: %d; want 401 and no content", code)
	}
	if c.cookie != nil {
		t.Error("the dead session's cookie was not cleared")
	}
	// A copy of the cookie kept elsewhere is just as dead.
	c.cookie = &stolen
	for _, p := range []string{"/console/", "/console/calls", "/console/d/tenant"} {
		if code, _, _ := c.do("GET", p, nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a revoked key's cookie: %d, want 401", p, code)
		}
		c.cookie = &stolen
	}
	// Another key of the same tenant is unaffected.
	other := newClient(t, f.URL)
	other.login(keyA)
	if code, _, _ := other.do("GET", "/console/calls", nil); code != http.StatusOK {
		t.Errorf("acme's other key's session: %d", code)
	}
	// A deleted tenant takes every key with it.
	f.live.revoke("acme-key")
	if code, _, _ := other.do("GET", "/console/calls", nil); code != http.StatusUnauthorized {
		t.Errorf("a deleted tenant's session: %d, want 401", code)
	}
}

// bare is a console without a database: enough for logins, logouts and
// refused sessions, none of which read spans.
func bare(t *testing.T, o console.Options) *httptest.Server {
	t.Helper()
	if o.SessionKey == nil {
		o.SessionKey = []byte("0123456789abcdef0123456789abcdef")
	}
	srv := httptest.NewServer(console.New(o))
	t.Cleanup(srv.Close)
	return srv
}

func TestConsole_AdminSession_DiesWhenTheAdminTokenChanges(t *testing.T) {
	t.Parallel()
	key := []byte("shared-session-key-0123456789abc")
	before := bare(t, console.Options{SessionKey: key, AdminTokenSHA256: sha256.Sum256([]byte(adminToken))})
	c := newClient(t, before.URL)
	if code := c.login(adminToken); code != http.StatusSeeOther || c.cookie == nil {
		t.Fatalf("admin login: %d", code)
	}
	// The same signing key, a new admin token: the old session is not one.
	after := bare(t, console.Options{SessionKey: key, AdminTokenSHA256: sha256.Sum256([]byte("the-next-admin-token"))})
	c.base = after.URL
	if code, _, _ := c.do("GET", "/console/calls", nil); code != http.StatusUnauthorized {
		t.Errorf("an admin session under the old token: %d, want 401", code)
	}
	off := bare(t, console.Options{SessionKey: key})
	c.base = off.URL
	c.cookie = nil
	c.login(adminToken)
	if c.cookie != nil {
		t.Error("admin login works with the admin login off")
	}
}

func TestConsole_Logout_OnlyByPostWithTheSessionsToken(t *testing.T) {
	t.Parallel()
	srv := bare(t, console.Options{AdminTokenSHA256: sha256.Sum256([]byte(adminToken))})
	c := newClient(t, srv.URL)
	c.login(adminToken)
	session := c.cookie
	if session == nil {
		t.Fatal("no session")
	}
	code, _, resp := c.do("GET", "/console/logout", nil)
	if c.cookie == nil || code == http.StatusSeeOther && resp.Header.Get("Location") == "/console/login" {
		t.Errorf("GET /console/logout logged out (%d)", code)
	}
	for name, form := range map[string]url.Values{"no token": {}, "wrong token": {"csrf": {"forged"}}} {
		if code, _, _ := c.do("POST", "/console/logout", form); code != http.StatusForbidden || c.cookie == nil {
			t.Errorf("logout with %s: %d, session kept %v; want 403 and the session kept", name, code, c.cookie != nil)
		}
	}
	// Another session's token does not fit this one.
	other := newClient(t, srv.URL)
	other.login(adminToken)
	// (The login page shows no logout form; take the token off the error
	// page that a logged-in admin sees for an unknown dashboard.)
	_, body, _ := other.do("GET", "/console/d/nope", nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no logout token on a logged-in page:\n%s", body)
	}
	if code, _, _ := c.do("POST", "/console/logout", url.Values{"csrf": {m[1]}}); code != http.StatusForbidden {
		t.Errorf("logout with another session's token: %d, want 403", code)
	}
	if code, _, _ := other.do("POST", "/console/logout", url.Values{"csrf": {m[1]}}); code != http.StatusSeeOther || other.cookie != nil {
		t.Errorf("logout with the session's own token: %d, session cleared %v", code, other.cookie == nil)
	}
}

func TestConsole_Login_WithoutTheFormsToken_Refused(t *testing.T) {
	t.Parallel()
	srv := bare(t, console.Options{AdminTokenSHA256: sha256.Sum256([]byte(adminToken))})
	c := newClient(t, srv.URL)
	// A cross-site form: no nonce cookie, no token.
	if code, _, _ := c.do("POST", "/console/login", url.Values{"key": {adminToken}}); code != http.StatusForbidden || c.cookie != nil {
		t.Errorf("login without a token: %d, session %v; want 403 and none", code, c.cookie != nil)
	}
	token := c.csrf("/console/login")
	// The nonce cookie without the token, and a token for another nonce.
	if code, _, _ := c.do("POST", "/console/login", url.Values{"key": {adminToken}}); code != http.StatusForbidden {
		t.Errorf("login with the cookie but no token: %d, want 403", code)
	}
	other := newClient(t, srv.URL)
	if code, _, _ := other.do("POST", "/console/login", url.Values{"key": {adminToken}, "csrf": {token}}); code != http.StatusForbidden {
		t.Errorf("login with another browser's token: %d, want 403", code)
	}
	if code, _, _ := c.do("POST", "/console/login", url.Values{"key": {adminToken}, "csrf": {token}}); code != http.StatusSeeOther || c.cookie == nil {
		t.Errorf("login with the form's token: %d", code)
	}
}

func TestConsole_Login_ThrottledPerAddressAndInTotal(t *testing.T) {
	t.Parallel()
	srv := bare(t, console.Options{AdminTokenSHA256: sha256.Sum256([]byte(adminToken)), LoginsPerIP: 3, Logins: 100})
	c := newClient(t, srv.URL)
	token := c.csrf("/console/login")
	for i := range 3 {
		if code, _, _ := c.do("POST", "/console/login", url.Values{"key": {"guess"}, "csrf": {token}}); code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, code)
		}
	}
	code, body, resp := c.do("POST", "/console/login", url.Values{"key": {adminToken}, "csrf": {token}})
	if code != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || c.cookie != nil {
		t.Fatalf("fourth attempt in a minute: %d, Retry-After %q; want 429 and no session\n%s", code, resp.Header.Get("Retry-After"), body)
	}
	if !strings.Contains(body, "Too many login attempts") {
		t.Errorf("429 page: %s", body)
	}
}
