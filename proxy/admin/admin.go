// Package admin is Loom's administration API: JSON over HTTP on a listener
// of its own (admin.listen), kept off the gateway's hot path and, ideally,
// off the public network. It manages the Postgres tenant store: tenants,
// their models, limits, content policy, provider credentials and API keys,
// and the store's price entries.
//
// Every request needs the admin token as a bearer token, and has a request
// id (X-Request-Id). Every change it makes is recorded in the admin audit
// log (GET /admin/audit) under the token's id and that request id. The web
// console calls the same API in process (Internal), for its own sessions:
// the administrator's as the token, a tenant's confined to its own keys. The
// API must never log a token, an API key or a credential, nor echo a
// credential back; an API key appears once, in the answer to the request
// that made it.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/store"
)

// maxBody bounds a request body: the largest is a tenant's model list.
const maxBody = 1 << 20

var _ http.Handler = (*api)(nil)

type api struct {
	st      *store.Store
	token   [32]byte // SHA-256 of the admin token
	tokenID string   // TokenID(token): who the audit log says made a change
	log     *slog.Logger
	mux     *http.ServeMux
}

// New returns the admin API over st. tokenSHA256 is the SHA-256 of the
// token that requests must present (see TokenSHA256).
func New(st *store.Store, tokenSHA256 [32]byte, log *slog.Logger) http.Handler {
	return newAPI(st, tokenSHA256, log)
}

func newAPI(st *store.Store, tokenSHA256 [32]byte, log *slog.Logger) *api {
	a := &api{st: st, token: tokenSHA256, tokenID: TokenID(tokenSHA256), log: log, mux: http.NewServeMux()}
	for pattern, h := range map[string]func(http.ResponseWriter, *http.Request) error{
		"GET /admin/tenants":                                  a.listTenants,
		"POST /admin/tenants":                                 a.createTenant,
		"GET /admin/tenants/{id}":                             a.getTenant,
		"PATCH /admin/tenants/{id}":                           a.updateTenant,
		"DELETE /admin/tenants/{id}":                          a.deleteTenant,
		"PUT /admin/tenants/{id}/models":                      a.setModels,
		"PUT /admin/tenants/{id}/credentials/{deployment}":    a.setCredential,
		"DELETE /admin/tenants/{id}/credentials/{deployment}": a.deleteCredential,
		"GET /admin/tenants/{id}/keys":                        a.listKeys,
		"POST /admin/tenants/{id}/keys":                       a.createKey,
		"POST /admin/keys/{id}/revoke":                        a.revokeKey,
		"PUT /admin/tenants/{id}/budgets":                     a.setTenantBudgets,
		"PUT /admin/keys/{id}/budgets":                        a.setKeyBudgets,
		"GET /admin/prices":                                   a.listPrices,
		"POST /admin/prices":                                  a.addPrice,
		"DELETE /admin/prices/{id}":                           a.deletePrice,
		"GET /admin/audit":                                    a.audit,
		"/":                                                   a.unknown,
	} {
		a.mux.Handle(pattern, handler(h))
	}
	return a
}

// handler is a route that returns its error for ServeHTTP to render.
type handler func(http.ResponseWriter, *http.Request) error

// ServeHTTP runs under api.ServeHTTP, whose recorder the mux passes on.
func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h(w, r); err != nil {
		w.(*recorder).err = err
	}
}

// recorder keeps what the request log needs.
type recorder struct {
	http.ResponseWriter
	status int
	err    error
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// TokenID names the admin token in the audit log: the first 12 hex digits
// of its SHA-256, stable across restarts and useless for logging in.
func TokenID(tokenSHA256 [32]byte) string { return hex.EncodeToString(tokenSHA256[:6]) }

// RequestIDHeader carries a request's id: the client's if it sent a
// usable one, else a new one; echoed on every answer and recorded with
// each change the request makes.
const RequestIDHeader = "X-Request-Id"

// maxRequestID bounds a client's request id.
const maxRequestID = 128

// requestID is the client's id if it is 1 to maxRequestID printable ASCII
// characters, else a new one: the id lands in logs and the audit log.
func requestID(sent string) string {
	if sent == "" || len(sent) > maxRequestID {
		return store.NewRequestID()
	}
	for i := 0; i < len(sent); i++ {
		if sent[i] <= ' ' || sent[i] > '~' {
			return store.NewRequestID()
		}
	}
	return sent
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		a.serve(w, r, nil, store.Actor{})
		return
	}
	a.serve(w, r, a.mux, store.Actor{Kind: store.ActorAdminToken, ID: a.tokenID})
}

// serve runs r through mux as actor, with a request id, the body bound and
// one log line; a nil mux is a refused token.
func (a *api) serve(w http.ResponseWriter, r *http.Request, mux http.Handler, actor store.Actor) {
	begun := time.Now()
	rid := requestID(r.Header.Get(RequestIDHeader))
	w.Header().Set(RequestIDHeader, rid)
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	if mux == nil {
		// No detail: whether the header was missing or wrong is no one's
		// business, and the token is never logged.
		w.Header().Set("WWW-Authenticate", `Bearer realm="loom-admin"`)
		rec.err = apierror.New(http.StatusUnauthorized, apierror.TypeInvalidRequest, "invalid_api_key", "",
			"missing or invalid admin token: send Authorization: Bearer <admin token>")
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		actor.RequestID = rid
		r = r.WithContext(store.WithActor(r.Context(), actor))
		mux.ServeHTTP(rec, r)
	}
	if rec.err != nil {
		a.writeError(rec, r, rec.err)
	}
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(begun).Round(time.Microsecond),
		"request_id", rid}
	if mux != nil && actor.Kind != store.ActorAdminToken {
		attrs = append(attrs, "actor", actor.Kind, "actor_id", actor.ID)
	}
	switch {
	case rec.status >= 500:
		a.log.Error("admin request", append(attrs, "err", rec.err)...)
	case rec.status == http.StatusUnauthorized:
		a.log.Warn("admin request refused", append(attrs, "remote", r.RemoteAddr)...)
	default:
		a.log.Info("admin request", attrs...)
	}
}

func (a *api) authorized(r *http.Request) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	ok := strings.EqualFold(scheme, "Bearer")
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	// Constant time, and the comparison always runs: how long a refusal
	// takes says nothing about the token.
	return subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1 && ok
}

// writeError renders err as OpenAI's error JSON. Store errors carry ids and
// names, never secrets; anything unexpected becomes a bare 500.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *apierror.Error
	var tooBig *http.MaxBytesError
	var field *store.FieldError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &field):
		e = apierror.BadRequest("invalid_value", field.Field, err.Error())
	case errors.As(err, &tooBig):
		e = apierror.New(http.StatusRequestEntityTooLarge, apierror.TypeInvalidRequest, "request_too_large", "",
			fmt.Sprintf("request body is larger than %d bytes", maxBody))
	case errors.Is(err, store.ErrNotFound):
		e = apierror.New(http.StatusNotFound, apierror.TypeInvalidRequest, "not_found", "", err.Error())
	case errors.Is(err, store.ErrRequestIDReused):
		e = apierror.New(http.StatusConflict, apierror.TypeInvalidRequest, "request_id_reused", "", err.Error())
	case errors.Is(err, store.ErrExists):
		e = apierror.New(http.StatusConflict, apierror.TypeInvalidRequest, "already_exists", "", err.Error())
	case errors.Is(err, store.ErrInUse):
		e = apierror.New(http.StatusConflict, apierror.TypeInvalidRequest, "in_use", "", err.Error())
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrNoSecretKey):
		e = apierror.BadRequest("invalid_value", "", err.Error())
	default:
		e = apierror.New(http.StatusInternalServerError, apierror.TypeServer, "internal_error", "",
			"the admin API failed; see its log")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	w.Write(append(e.AppendJSON(nil), '\n')) //nolint:errcheck // the client went away
}

func (a *api) unknown(_ http.ResponseWriter, r *http.Request) error {
	return apierror.New(http.StatusNotFound, apierror.TypeInvalidRequest, "unknown_url", "",
		"unknown request URL: "+r.Method+" "+r.URL.Path)
}

// TokenSHA256 is the admin token's SHA-256 from the configuration: the
// hex token_sha256, or the hash of the token in token_env's variable.
func TokenSHA256(cfg config.Admin) ([32]byte, error) {
	var sum [32]byte
	switch {
	case cfg.TokenSHA256 != "":
		b, err := hex.DecodeString(cfg.TokenSHA256)
		if err != nil || len(b) != len(sum) {
			return sum, errors.New("admin.token_sha256: must be 64 hex characters")
		}
		copy(sum[:], b)
	case cfg.TokenEnv != "" && os.Getenv(cfg.TokenEnv) != "":
		sum = sha256.Sum256([]byte(os.Getenv(cfg.TokenEnv)))
	default:
		return sum, errors.New("admin: set token_sha256 or token_env (with its variable set)")
	}
	return sum, nil
}
