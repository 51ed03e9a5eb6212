// Package console is Loom's built-in web console: the dashboards of
// dashboards/queries (the same SQL Grafana runs, so the same numbers), recent
// calls, and each call's spans, read from loom.spans.
// It is plain server-rendered HTML (html/template, inline SVG charts, one
// embedded stylesheet, no JavaScript).
//
// A tenant logs in with one of its API keys and reads only through a
// transaction confined by row-level security to its own rows (SET LOCAL
// ROLE loom_tenant_reader); the administrator logs in with the admin token
// and reads as the connecting user. The console must never store, echo or
// log a key or token: the session cookie holds a signed tenant id.
package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/proxy/store"
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
	// Authenticate maps an API key to its tenant. It must not keep or log
	// the key.
	Authenticate func(key string) (tenantID string, ok bool)
	// AdminTokenSHA256 is the SHA-256 of the admin token; zero turns the
	// admin login off.
	AdminTokenSHA256 [32]byte
	// SessionKey signs the session cookies: random per process, so a
	// restart logs everybody out.
	SessionKey []byte
	// Log gets logins and failures (never keys). Nil discards.
	Log *slog.Logger
}

type handler struct {
	opts  Options
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
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
	h.pages = parsePages()
	static, _ := fs.Sub(staticFS, "static")
	h.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /console/login", h.loginPage)
	h.mux.HandleFunc("POST /console/login", h.login)
	h.mux.HandleFunc("POST /console/logout", h.logout)
	h.mux.HandleFunc("GET /console/logout", h.logout)
	h.mux.HandleFunc("GET /console/{$}", h.auth(h.overview))
	h.mux.HandleFunc("GET /console/d/{dashboard}", h.auth(h.dashboardPage))
	h.mux.HandleFunc("GET /console/calls", h.auth(h.calls))
	h.mux.HandleFunc("GET /console/calls/{trace}", h.auth(h.call))
	h.mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusFound)
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	pages := map[string]*template.Template{}
	for _, p := range []string{"login", "dashboard", "calls", "call", "error"} {
		pages[p] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+p+".html"))
	}
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

// auth passes logged-in requests to f and sends the rest to the login page.
func (h *handler) auth(f func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.session(r)
		if !ok {
			http.Redirect(w, r, "/console/login", http.StatusSeeOther)
			return
		}
		f(w, r, s)
	}
}

type loginData struct {
	Error    string
	AdminOn  bool
	LoggedIn bool
}

func (h *handler) adminOn() bool { return h.opts.AdminTokenSHA256 != [32]byte{} }

func (h *handler) loginPage(w http.ResponseWriter, r *http.Request) {
	_, in := h.session(r)
	h.render(w, http.StatusOK, "login", page{Title: "Log in", Data: loginData{AdminOn: h.adminOn(), LoggedIn: in}})
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	key := strings.TrimSpace(r.PostFormValue("key"))
	if key != "" && h.adminOn() {
		sum := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(sum[:], h.opts.AdminTokenSHA256[:]) == 1 {
			h.setSession(w, r, adminSubject)
			h.log.Info("console login", "who", "admin", "remote", r.RemoteAddr)
			http.Redirect(w, r, "/console/", http.StatusSeeOther)
			return
		}
	}
	if key != "" && h.opts.Authenticate != nil {
		if t, ok := h.opts.Authenticate(key); ok && t != "" {
			h.setSession(w, r, "t:"+t)
			h.log.Info("console login", "who", "tenant", "tenant", t, "remote", r.RemoteAddr)
			http.Redirect(w, r, "/console/", http.StatusSeeOther)
			return
		}
	}
	h.log.Warn("console login refused", "remote", r.RemoteAddr)
	h.render(w, http.StatusUnauthorized, "login", page{Title: "Log in",
		Data: loginData{Error: "That key or token is not valid.", AdminOn: h.adminOn()}})
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	h.clearSession(w, r)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// errNotFound is a trace the session cannot see (or that does not exist:
// row-level security makes the two the same).
var errNotFound = errors.New("not found")

// read runs f in a read-only transaction that sees what s may see: for a
// tenant, only its rows, by row-level security (never by a WHERE alone).
func (h *handler) read(ctx context.Context, s session, f func(pgx.Tx) error) error {
	if !s.admin && s.tenant == "" {
		return errors.New("read: session without a tenant")
	}
	return pgx.BeginTxFunc(ctx, h.opts.DB, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if !s.admin {
			// SET LOCAL and set_config(..., true) end with the
			// transaction: the connection returns to the pool as it came.
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+store.ReaderRole); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SELECT set_config('loom.tenant_id', $1, true)", s.tenant); err != nil {
				return err
			}
		}
		return f(tx)
	})
}
