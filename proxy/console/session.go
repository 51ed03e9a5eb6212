package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cookieName is the console's session cookie. It holds who is logged in,
// with which key, and until when, signed: never the key or token that
// logged in.
const cookieName = "loom_console"

// loginCookie holds the login form's nonce: the form carries an HMAC of
// it, so only a page the console served can post a login (a cross-site
// form cannot read the cookie to forge the token).
const loginCookie = "loom_console_login"

// sessionTTL is how long a login lasts, at most: a tenant's session ends
// sooner, on the first request after its key stops working.
const sessionTTL = 12 * time.Hour

// Session subjects: the administrator is "a:" + a fingerprint of the
// admin token's hash; a tenant is "t:" + tenant id + NUL + key id (ids
// never hold a NUL: Postgres text cannot).
const (
	adminPrefix  = "a:"
	tenantPrefix = "t:"
)

// session is a login whose signature and expiry verified. Whether it is
// still live (its key, the admin token) is checked apart, on every request.
type session struct {
	admin  bool
	tenant string // "" for the administrator
	key    string // the key id a tenant logged in with
	// fingerprint is the admin token's, as it was at login.
	fingerprint string
	// csrf is the logout form's token, bound to this cookie.
	csrf string
}

// Who names the session for people.
func (s session) Who() string {
	if s.admin {
		return "admin"
	}
	return "tenant " + s.tenant
}

// CSRF is the token the logout form posts.
func (s session) CSRF() string { return s.csrf }

// Admin reports an administrator's session (templates show tenants then).
func (s session) Admin() bool { return s.admin }

// adminFingerprint names the admin token without revealing its hash: a
// session made under one admin token is not one under the next.
func adminFingerprint(tokenSHA256 [32]byte) string {
	sum := sha256.Sum256(append([]byte("loom-console-admin\x00"), tokenSHA256[:]...))
	return hex.EncodeToString(sum[:16])
}

func tenantSubject(tenantID, keyID string) string { return tenantPrefix + tenantID + "\x00" + keyID }

// mac is HMAC-SHA256(key, purpose NUL msg), base64url: one key signs
// cookies and form tokens, and the purpose keeps them apart.
func mac(key []byte, purpose, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose + "\x00" + msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sign returns the cookie value for subject until exp:
// base64(exp "|" nonce "|" subject) "." base64(HMAC-SHA256(key, that)).
// The random nonce makes each login's cookie (and so its logout token) its
// own, even for the same subject in the same second.
func sign(key []byte, subject string, exp time.Time) string {
	var n [9]byte
	rand.Read(n[:])
	payload := strconv.FormatInt(exp.Unix(), 10) + "|" + base64.RawURLEncoding.EncodeToString(n[:]) + "|" + subject
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(m.Sum(nil))
}

// verify checks a cookie value's signature and expiry.
func verify(key []byte, value string, now time.Time) (session, bool) {
	p64, mac64, ok := strings.Cut(value, ".")
	if !ok {
		return session{}, false
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	got, err2 := enc.DecodeString(mac64)
	if err1 != nil || err2 != nil {
		return session{}, false
	}
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	if !hmac.Equal(got, m.Sum(nil)) {
		return session{}, false
	}
	expS, rest, ok1 := strings.Cut(string(payload), "|")
	_, subject, ok2 := strings.Cut(rest, "|")
	exp, err := strconv.ParseInt(expS, 10, 64)
	if !ok1 || !ok2 || err != nil || now.Unix() >= exp {
		return session{}, false
	}
	if fp, ok := strings.CutPrefix(subject, adminPrefix); ok && fp != "" {
		return session{admin: true, fingerprint: fp}, true
	}
	if rest, ok := strings.CutPrefix(subject, tenantPrefix); ok {
		t, k, ok := strings.Cut(rest, "\x00")
		if ok && t != "" && k != "" {
			return session{tenant: t, key: k}, true
		}
	}
	return session{}, false
}

func (h *handler) setSession(w http.ResponseWriter, r *http.Request, subject string) {
	exp := time.Now().Add(sessionTTL)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: sign(h.opts.SessionKey, subject, exp), Path: "/console/",
		Expires: exp, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func (h *handler) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: "/console/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// sessionState is what a request's cookie amounts to.
type sessionState int

const (
	noSession   sessionState = iota // none, forged or expired: log in
	liveSession                     // signed and still backed by its key or token
	deadSession                     // signed, but its key was revoked or expired, its tenant deleted, or the admin token changed
)

// session reads the request's session and checks it against what is true
// now: a tenant's key must still authenticate in the gateway's live
// snapshot, the administrator's token must still be the configured one.
func (h *handler) session(r *http.Request) (session, sessionState) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, noSession
	}
	s, ok := verify(h.opts.SessionKey, c.Value, time.Now())
	if !ok {
		return session{}, noSession
	}
	s.csrf = mac(h.opts.SessionKey, "logout", c.Value)
	switch {
	case s.admin && h.adminOn() && hmac.Equal([]byte(s.fingerprint), []byte(adminFingerprint(h.opts.AdminTokenSHA256))):
		return s, liveSession
	case !s.admin && h.opts.KeyLive != nil && h.opts.KeyLive(s.tenant, s.key):
		return s, liveSession
	}
	return s, deadSession
}

// loginToken returns the login form's CSRF token, setting the nonce
// cookie it is bound to when the browser has none.
func (h *handler) loginToken(w http.ResponseWriter, r *http.Request) string {
	nonce := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) == 22 {
		nonce = c.Value
	} else {
		var b [16]byte
		rand.Read(b[:])
		nonce = base64.RawURLEncoding.EncodeToString(b[:])
		http.SetCookie(w, &http.Cookie{
			Name: loginCookie, Value: nonce, Path: "/console/", MaxAge: int(sessionTTL / time.Second),
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
		})
	}
	return mac(h.opts.SessionKey, "login", nonce)
}

// loginTokenOK checks a posted login form's CSRF token against its cookie.
func (h *handler) loginTokenOK(r *http.Request) bool {
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(mac(h.opts.SessionKey, "login", c.Value)))
}
