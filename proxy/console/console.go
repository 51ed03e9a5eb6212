// Package console is Loom's built-in web console: the dashboards of
// dashboards/queries (the same SQL Grafana runs, so the same numbers), recent
// calls, and each call's spans, read from loom.spans; and the admin audit
// log, read from the ledger's system chain.
// It is server-rendered HTML (html/template, inline SVG charts, one
// embedded stylesheet); the little script it has (copy buttons) is served
// from the binary under a CSP that allows no other.
//
// A tenant logs in with one of its API keys and reads only through a
// transaction confined by row-level security to its own rows (SET LOCAL
// ROLE loom_tenant_reader); the administrator logs in with the admin token
// and reads as the connecting user. The console must never store, echo or
// log a key or token: the session cookie holds a signed tenant and key id,
// and every request re-checks that key against the gateway's live snapshot.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/proxy/admin"
	"github.com/loom-gateway/loom/proxy/schema"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/*
var staticFS embed.FS

// Options are what the console needs.
type Options struct {
	// DB holds loom.spans; its user must be able to SET ROLE
	// loom_tenant_reader (the schema migration grants that).
	DB *pgxpool.Pool
	// Authenticate maps an API key to its tenant and key id. It must not
	// keep or log the key.
	Authenticate func(key string) (tenantID, keyID string, ok bool)
	// KeyLive reports whether a tenant's key still authenticates now (not
	// revoked or expired, its tenant still served). Every request of a
	// tenant session is checked with it, so a revocation ends the session
	// at once. Nil refuses every tenant session.
	KeyLive func(tenantID, keyID string) bool
	// StatementTimeout bounds each console query (SET LOCAL
	// statement_timeout); 0 means DefaultStatementTimeout.
	StatementTimeout time.Duration
	// LoginsPerIP and Logins are the login attempts allowed a minute from
	// one client address and in total (bursts up to that many); 0 means
	// DefaultLoginsPerIP and DefaultLogins. More are answered 429.
	LoginsPerIP, Logins int
	// AdminTokenSHA256 is the SHA-256 of the admin token; zero turns the
	// admin login off.
	AdminTokenSHA256 [32]byte
	// SessionKey signs the session cookies: random per process, so a
	// restart logs everybody out.
	SessionKey []byte
	// Admin, when set, is the admin API in process (admin.Internal's As):
	// the Tenants and Keys pages make every change through it, as the
	// session's caller. Nil (no tenant store) leaves those pages saying so.
	Admin func(admin.Caller) http.Handler
	// Deployments are the configured deployments' names: a tenant's page
	// offers them for models and credentials.
	Deployments []string
	// Log gets logins and failures (never keys). Nil discards.
	Log *slog.Logger
}

// Defaults of Options.
const (
	DefaultStatementTimeout = 5 * time.Second
	DefaultLoginsPerIP      = 10
	DefaultLogins           = 300
	// maxThrottledIPs bounds the login throttle's memory (~100 bytes each).
	maxThrottledIPs = 10000
)

type handler struct {
	opts     Options
	log      *slog.Logger
	pages    map[string]*template.Template
	mux      *http.ServeMux
	throttle *throttle
}

var _ http.Handler = (*handler)(nil)

// New returns the console, serving everything under /console/.
func New(o Options) http.Handler {
	h := &handler{opts: o, log: o.Log, mux: http.NewServeMux()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if len(h.opts.SessionKey) == 0 {
		panic("console: Options.SessionKey is required")
	}
	if h.opts.StatementTimeout <= 0 {
		h.opts.StatementTimeout = DefaultStatementTimeout
	}
	if h.opts.LoginsPerIP <= 0 {
		h.opts.LoginsPerIP = DefaultLoginsPerIP
	}
	if h.opts.Logins <= 0 {
		h.opts.Logins = DefaultLogins
	}
	h.throttle = newThrottle(rate{float64(h.opts.LoginsPerIP), time.Minute}, rate{float64(h.opts.Logins), time.Minute}, maxThrottledIPs)
	h.pages = parsePages()
	h.pages["usage"] = usageTemplate()
	static, _ := fs.Sub(staticFS, "static")
	h.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /console/login", h.loginPage)
	h.mux.HandleFunc("POST /console/login", h.login)
	// Logout is POST only, with a token bound to the session: a link or a
	// cross-site form cannot log anybody out.
	h.mux.HandleFunc("POST /console/logout", h.logout)
	h.mux.HandleFunc("GET /console/{$}", h.auth(h.overview))
	h.mux.HandleFunc("GET /console/d/{dashboard}", h.auth(h.dashboardPage))
	h.mux.HandleFunc("GET /console/calls", h.auth(h.calls))
	h.mux.HandleFunc("GET /console/calls.csv", h.auth(h.callsCSV))
	h.mux.HandleFunc("GET /console/calls/{trace}", h.auth(h.call))
	h.mux.HandleFunc("GET /console/audit", h.auth(h.audit))
	h.mux.HandleFunc("GET /console/tenants", h.auth(h.tenants))
	h.mux.HandleFunc("POST /console/tenants", h.form(true, h.createTenant))
	h.mux.HandleFunc("GET /console/tenants/{id}", h.auth(h.tenant))
	h.mux.HandleFunc("POST /console/tenants/{id}/limits", h.form(true, h.setLimits))
	h.mux.HandleFunc("POST /console/tenants/{id}/models", h.form(true, h.setModels))
	h.mux.HandleFunc("POST /console/tenants/{id}/credentials", h.form(true, h.setCredential))
	h.mux.HandleFunc("POST /console/tenants/{id}/keys", h.form(true, h.createKey))
	h.mux.HandleFunc("GET /console/keys", h.auth(h.keys))
	h.mux.HandleFunc("POST /console/keys", h.form(false, h.createOwnKey))
	h.mux.HandleFunc("POST /console/keys/{id}/revoke", h.form(false, h.revokeKey))
	h.mux.HandleFunc("POST /console/tenants/{id}/budgets", h.form(true, h.setTenantBudgets))
	h.mux.HandleFunc("POST /console/keys/{id}/budgets", h.form(true, h.setKeyBudgets))
	h.mux.HandleFunc("GET /console/usage", h.auth(h.usage))
	h.mux.HandleFunc("GET /console/usage.csv", h.auth(h.usageCSV))
	h.mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusFound)
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	pages := map[string]*template.Template{}
	for _, p := range []string{"login", "dashboard", "calls", "call", "audit", "error"} {
		pages[p] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+p+".html"))
	}
	addAdminPages(base, pages)
	return pages
}

// page is what every template gets.
type page struct {
	Title   string
	Session *session
	Data    any
}

func (h *handler) render(w http.ResponseWriter, status int, name string, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := h.pages[name].ExecuteTemplate(w, name+".html", p); err != nil {
		h.log.Error("console: render", "page", name, "error", err)
	}
}

func (h *handler) fail(w http.ResponseWriter, s *session, status int, msg string) {
	h.render(w, status, "error", page{Title: http.StatusText(status), Session: s, Data: msg})
}

// auth passes live sessions to f, sends requests without one to the login
// page, and answers 401 to a session whose key or token no longer works.
func (h *handler) auth(f func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, state := h.session(r)
		switch state {
		case noSession:
			http.Redirect(w, r, "/console/login", http.StatusSeeOther)
			return
		case deadSession:
			h.clearSession(w, r)
			h.log.Info("console session ended: its key or token no longer works", "who", s.Who(), "key_id", s.key)
			h.render(w, http.StatusUnauthorized, "login", page{Title: "Log in", Data: loginData{
				Error:   "Your session has ended: the key it was opened with was revoked or expired, or its tenant removed. Log in again.",
				AdminOn: h.adminOn(), CSRF: h.loginToken(w, r)}})
			return
		}
		f(w, r, s)
	}
}

type loginData struct {
	Error    string
	AdminOn  bool
	LoggedIn bool
	// CSRF is the login form's token.
	CSRF string
}

func (h *handler) adminOn() bool { return h.opts.AdminTokenSHA256 != [32]byte{} }

func (h *handler) loginPage(w http.ResponseWriter, r *http.Request) {
	_, state := h.session(r)
	h.render(w, http.StatusOK, "login", page{Title: "Log in",
		Data: loginData{AdminOn: h.adminOn(), LoggedIn: state == liveSession, CSRF: h.loginToken(w, r)}})
}

// clientIP is the address the login throttle counts: the connection's,
// never a header a client can set.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if ok, retry := h.throttle.allow(clientIP(r), time.Now()); !ok {
		h.log.Warn("console login throttled", "remote", r.RemoteAddr)
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)+1))
		h.fail(w, nil, http.StatusTooManyRequests, "Too many login attempts. Wait a minute and try again.")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	if !h.loginTokenOK(r) {
		// Not this console's form (or its cookie expired): a cross-site
		// page cannot log a browser in under the attacker's key.
		h.log.Warn("console login refused: no valid form token", "remote", r.RemoteAddr)
		h.render(w, http.StatusForbidden, "login", page{Title: "Log in",
			Data: loginData{Error: "The login form expired. Try again.", AdminOn: h.adminOn(), CSRF: h.loginToken(w, r)}})
		return
	}
	if key != "" && h.adminOn() {
		sum := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(sum[:], h.opts.AdminTokenSHA256[:]) == 1 {
			h.setSession(w, r, adminPrefix+adminFingerprint(h.opts.AdminTokenSHA256))
			h.log.Info("console login", "who", "admin", "remote", r.RemoteAddr)
			http.Redirect(w, r, "/console/", http.StatusSeeOther)
			return
		}
	}
	if key != "" && h.opts.Authenticate != nil {
		if t, k, ok := h.opts.Authenticate(key); ok && t != "" && k != "" {
			h.setSession(w, r, tenantSubject(t, k))
			h.log.Info("console login", "who", "tenant", "tenant", t, "key_id", k, "remote", r.RemoteAddr)
			http.Redirect(w, r, "/console/", http.StatusSeeOther)
			return
		}
	}
	h.log.Warn("console login refused", "remote", r.RemoteAddr)
	h.render(w, http.StatusUnauthorized, "login", page{Title: "Log in",
		Data: loginData{Error: "That key or token is not valid.", AdminOn: h.adminOn(), CSRF: h.loginToken(w, r)}})
}

// logout ends the session whose token the form carries. A post without the
// token (a cross-site form) changes nothing.
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	s, state := h.session(r)
	if state == noSession {
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return
	}
	if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) {
		h.log.Warn("console logout refused: no valid form token", "remote", r.RemoteAddr)
		h.fail(w, nil, http.StatusForbidden, "Log out with the console's own Log out button.")
		return
	}
	h.clearSession(w, r)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// errNotFound is a trace the session cannot see (or that does not exist:
// row-level security makes the two the same).
var errNotFound = errors.New("not found")

// read runs f in a read-only transaction that sees what s may see: for a
// tenant, only its rows, by row-level security (never by a WHERE alone),
// through the one tenant-scoped read, schema.ReadAsTenant. A console page
// must not hold a connection (or a lock) for as long as a wide search would
// take: each query gets the statement timeout.
//
// JIT is off for the console's reads: a page's query is over in
// milliseconds, and a keyset page whose filter the planner cannot
// estimate looks expensive enough to it to JIT-compile, which took
// seconds over a million spans (BenchmarkConsolePages_1MSpans; the calls
// list over 200,000 spans: JIT 7.2 s, execution 30 ms without it). So are
// parallel workers: starting them costs more than most page queries take,
// and a panel's read of the rollup that row-level security keeps from
// being planned away started two for nothing, 45 ms.
func (h *handler) read(ctx context.Context, s session, f func(pgx.Tx) error) error {
	g := func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0"); err != nil {
			return fmt.Errorf("read: jit and parallel workers off: %w", err)
		}
		return f(tx)
	}
	if s.admin {
		return schema.ReadAll(ctx, h.opts.DB, h.opts.StatementTimeout, g)
	}
	return schema.ReadAsTenant(ctx, h.opts.DB, s.tenant, h.opts.StatementTimeout, g)
}
