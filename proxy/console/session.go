package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cookieName is the console's session cookie. It holds who is logged in and
// until when, signed: never the key or token that logged in.
const cookieName = "loom_console"

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

// adminSubject is the session subject of the administrator; tenants are
// "t:" + their id, so no tenant id can pass for it.
const adminSubject = "admin"

// session is a verified login.
type session struct {
	admin  bool
	tenant string // "" for the administrator
}

// Who names the session for people.
func (s session) Who() string {
	if s.admin {
		return "admin"
	}
	return "tenant " + s.tenant
}

// sign returns the cookie value for subject until exp:
// base64(exp "|" subject) "." base64(HMAC-SHA256(key, that)).
func sign(key []byte, subject string, exp time.Time) string {
	payload := strconv.FormatInt(exp.Unix(), 10) + "|" + subject
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
	expS, subject, ok := strings.Cut(string(payload), "|")
	exp, err := strconv.ParseInt(expS, 10, 64)
	if !ok || err != nil || now.Unix() >= exp {
		return session{}, false
	}
	if subject == adminSubject {
		return session{admin: true}, true
	}
	if t, ok := strings.CutPrefix(subject, "t:"); ok && t != "" {
		return session{tenant: t}, true
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

func (h *handler) session(r *http.Request) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	return verify(h.opts.SessionKey, c.Value, time.Now())
}

// Admin reports an administrator's session (templates show tenants then).
func (s session) Admin() bool { return s.admin }
