package console_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// client is a browser without redirects, keeping its cookies: the
// session's in cookie (tests tamper with it), the rest in jar.
type client struct {
	t      *testing.T
	base   string
	cookie *http.Cookie
	jar    map[string]*http.Cookie
	seen   strings.Builder // every body and Set-Cookie, to look for secrets
}

func newClient(t *testing.T, base string) *client {
	return &client{t: t, base: base, jar: map[string]*http.Cookie{}}
}

func (c *client) do(method, path string, form url.Values) (int, string, *http.Response) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	for _, ck := range c.jar {
		req.AddCookie(ck)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, sc := range resp.Header.Values("Set-Cookie") {
		c.seen.WriteString(sc + "\n")
	}
	for _, ck := range resp.Cookies() {
		switch {
		case ck.Name == "loom_console" && ck.MaxAge >= 0:
			c.cookie = ck
		case ck.Name == "loom_console":
			c.cookie = nil
		default:
			c.jar[ck.Name] = ck
		}
	}
	c.seen.Write(b)
	return resp.StatusCode, string(b), resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the form token on the page at path.
func (c *client) csrf(path string) string {
	c.t.Helper()
	_, body, _ := c.do("GET", path, nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no csrf token on %s:\n%s", path, body)
	}
	return m[1]
}

// login posts the login form as a browser would: the page first.
func (c *client) login(key string) int {
	c.t.Helper()
	code, _, _ := c.do("POST", "/console/login", url.Values{"key": {key}, "csrf": {c.csrf("/console/login")}})
	return code
}

// logout presses the Log out button of the overview.
func (c *client) logout() int {
	c.t.Helper()
	code, _, _ := c.do("POST", "/console/logout", url.Values{"csrf": {c.csrf("/console/")}})
	return code
}

func TestConsole(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	t.Run("BadKey_Gets401AndNoSession", func(t *testing.T) {
		c := newClient(t, f.URL)
		code, body, _ := c.do("POST", "/console/login", url.Values{"key": {"sk-loom-wrong"}, "csrf": {c.csrf("/console/login")}})
		if code != http.StatusUnauthorized || !strings.Contains(body, "not valid") || c.cookie != nil {
			t.Fatalf("bad key: %d, session %v, body:\n%s", code, c.cookie, body)
		}
	})

	t.Run("NoSession_RedirectsToLogin", func(t *testing.T) {
		for _, p := range []string{"/console/", "/console/calls", "/console/calls/" + f.TracesA[0]} {
			code, _, resp := newClient(t, f.URL).do("GET", p, nil)
			if code != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
				t.Errorf("GET %s without a session: %d to %q", p, code, resp.Header.Get("Location"))
			}
		}
	})

	t.Run("TenantSession_SeesOnlyItsOwnCalls", func(t *testing.T) {
		c := newClient(t, f.URL)
		if code := c.login(keyA); code != http.StatusSeeOther {
			t.Fatalf("login A: %d", code)
		}
		ck := c.cookie
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
			t.Fatalf("session cookie = %+v; want HttpOnly, SameSite=Strict", ck)
		}
		code, body, _ := c.do("GET", "/console/calls", nil)
		if code != 200 {
			t.Fatalf("calls: %d\n%s", code, body)
		}
		for _, tr := range f.TracesA {
			if !strings.Contains(body, tr) {
				t.Errorf("A's call %s missing from A's calls", tr)
			}
		}
		for _, s := range append([]string{modelB, "globex"}, f.TracesB...) {
			if strings.Contains(body, s) {
				t.Errorf("A's calls page shows B's %q", s)
			}
		}
		// A filter on another tenant is not a way around RLS.
		if _, body, _ := c.do("GET", "/console/calls?tenant=globex&model="+modelB, nil); strings.Contains(body, f.TracesB[0]) {
			t.Error("A sees B's calls through the filters")
		}
		if code, body, _ := c.do("GET", "/console/calls/"+f.TracesB[0], nil); code != 404 || strings.Contains(body, modelB) {
			t.Errorf("A asking for B's call: %d", code)
		}
		code, body, _ = c.do("GET", "/console/calls/"+f.ContentTraceID, nil)
		if code != 200 || !strings.Contains(body, "A device for weaving cloth.") || !strings.Contains(body, "input_tokens") ||
			!strings.Contains(body, "attributes.http.route") {
			t.Errorf("A's call page: %d\n%s", code, body)
		}
		code, body, _ = c.do("GET", "/console/?range=day", nil)
		if code != 200 || colSum(t, body, "overview_tokens_by", "calls") != 3 {
			t.Errorf("A's overview: %d\n%s", code, body)
		}
	})

	t.Run("Admin_SeesEveryTenant", func(t *testing.T) {
		c := newClient(t, f.URL)
		if code := c.login(adminToken); code != http.StatusSeeOther {
			t.Fatalf("admin login: %d", code)
		}
		_, body, _ := c.do("GET", "/console/calls", nil)
		for _, tr := range append(append([]string{}, f.TracesA...), f.TracesB...) {
			if !strings.Contains(body, tr) {
				t.Errorf("admin misses %s", tr)
			}
		}
		_, body, _ = c.do("GET", "/console/calls?tenant=globex", nil)
		if strings.Contains(body, f.TracesA[0]) || !strings.Contains(body, f.TracesB[0]) {
			t.Error("admin's tenant filter does not filter")
		}
		_, body, _ = c.do("GET", "/console/calls?status=error", nil)
		if !strings.Contains(body, f.TracesA[2]) || strings.Contains(body, f.TracesA[0]) {
			t.Error("status=error does not list only the failed call")
		}
		if code, _, _ := c.do("GET", "/console/calls/"+f.TracesB[0], nil); code != 200 {
			t.Errorf("admin on B's call: %d", code)
		}
		code, body, _ := c.do("GET", "/console/", nil)
		if code != 200 || colSum(t, body, "overview_tokens_by", "calls") != 5 {
			t.Errorf("admin overview: %d\n%s", code, body)
		}
	})

	t.Run("TamperedCookie_RedirectsToLogin", func(t *testing.T) {
		c := newClient(t, f.URL)
		c.login(keyA)
		payload, mac, _ := strings.Cut(c.cookie.Value, ".")
		for name, v := range map[string]string{
			"flipped payload": flip(payload) + "." + mac,
			"flipped mac":     payload + "." + flip(mac),
			"no mac":          payload,
			"admin claim":     "OTk5OTk5OTk5OXxhZG1pbg." + mac, // "9999999999|admin"
		} {
			c.cookie.Value = v
			if code, _, resp := c.do("GET", "/console/calls", nil); code != http.StatusSeeOther ||
				resp.Header.Get("Location") != "/console/login" {
				t.Errorf("%s: %d", name, code)
			}
		}
	})

	t.Run("Keys_NeverInResponsesCookiesOrLogs", func(t *testing.T) {
		var seen strings.Builder
		for _, key := range []string{keyA, keyB, adminToken, "sk-loom-wrong-key-123"} {
			c := newClient(t, f.URL)
			c.login(key)
			for _, p := range []string{"/console/", "/console/calls", "/console/calls/" + f.ContentTraceID, "/console/login"} {
				c.do("GET", p, nil)
			}
			if c.cookie != nil {
				c.logout()
			}
			seen.WriteString(c.seen.String())
		}
		all := seen.String() + f.log.String()
		for _, key := range []string{keyA, keyB, adminToken, "sk-loom-wrong-key-123"} {
			if strings.Contains(all, key) {
				t.Errorf("%q appears in a response, cookie or log line", key)
			}
		}
		if !strings.Contains(f.log.String(), "console login") {
			t.Errorf("no login logged:\n%s", f.log.String())
		}
	})
}

// flip changes a base64url string's first character.
func flip(s string) string {
	if s == "" {
		return "A"
	}
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}
