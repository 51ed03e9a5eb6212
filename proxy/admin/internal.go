package admin

import (
	"context"
	"log/slog"
	"net/http"
	"slices"

	"github.com/loom-gateway/loom/proxy/store"
)

// Caller is whom an in-process request (see Internal) is made for.
type Caller struct {
	// Tenant is "" for the administrator. Otherwise the caller is that
	// tenant's session and reaches only the tenant's own keys.
	Tenant string
	// KeyID is the key a tenant's session logged in with: its id names the
	// caller in the audit log.
	KeyID string
}

// Internal is the admin API for a program in the same process that
// authenticated its user its own way (the web console, with its signed
// session): no bearer token, and each request runs as its caller. The
// routes, the validation, the answers, the request log and the audit trail
// are the API's own, so nothing the console does escapes them.
//
// The administrator is recorded as the admin token (the console's admin
// login is that token); a tenant's session as store.ActorTenantKey with
// its key's id, and it may only list, create and revoke its own tenant's
// keys: every other request, another tenant's keys included, answers 404
// as an unknown URL does, so a tenant cannot even learn what exists.
type Internal struct {
	a *api
	// tenant routes what a tenant's session may do.
	tenant *http.ServeMux
}

// NewInternal returns the in-process admin API over st. tokenSHA256 is the
// admin token's hash, whose id records the administrator's changes.
func NewInternal(st *store.Store, tokenSHA256 [32]byte, log *slog.Logger) *Internal {
	in := &Internal{a: newAPI(st, tokenSHA256, log), tenant: http.NewServeMux()}
	for pattern, h := range map[string]func(http.ResponseWriter, *http.Request) error{
		"GET /admin/tenants/{id}/keys":  in.ownTenant(in.a.listKeys),
		"POST /admin/tenants/{id}/keys": in.ownTenant(in.a.createKey),
		"POST /admin/keys/{id}/revoke":  in.ownKey(in.a.revokeKey),
		"/":                             in.a.unknown,
	} {
		in.tenant.Handle(pattern, handler(h))
	}
	return in
}

// As returns the handler of c's requests.
func (in *Internal) As(c Caller) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.Tenant == "" {
			in.a.serve(w, r, in.a.mux, store.Actor{Kind: store.ActorAdminToken, ID: in.a.tokenID})
			return
		}
		r = r.WithContext(withCaller(r.Context(), c))
		in.a.serve(w, r, in.tenant, store.Actor{Kind: store.ActorTenantKey, ID: c.KeyID})
	})
}

// ownTenant passes only requests whose {id} is the caller's tenant.
func (in *Internal) ownTenant(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if c, ok := callerFrom(r.Context()); !ok || r.PathValue("id") != c.Tenant {
			return in.a.unknown(w, r)
		}
		return h(w, r)
	}
}

// ownKey passes only requests whose {id} is a key of the caller's tenant.
// A key never changes tenant (no route moves one, and its id is the
// table's key), so the check cannot be raced into another tenant's key.
func (in *Internal) ownKey(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, ok := callerFrom(r.Context())
		if !ok {
			return in.a.unknown(w, r)
		}
		keys, err := in.a.st.ListKeys(r.Context(), c.Tenant)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(keys, func(k store.Key) bool { return k.ID == r.PathValue("id") }) {
			return in.a.unknown(w, r)
		}
		return h(w, r)
	}
}

type callerKey struct{}

func withCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok && c.Tenant != ""
}
