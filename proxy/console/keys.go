package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// A tenant's session manages its own keys on /console/keys; the
// administrator manages every tenant's on the tenant's page. Either way the
// admin API decides: a tenant's caller reaches its own keys only.

// keys is a tenant session's own keys; the administrator's are on the
// tenants' pages.
func (h *handler) keys(w http.ResponseWriter, r *http.Request, s session) {
	if s.admin {
		http.Redirect(w, r, "/console/tenants", http.StatusSeeOther)
		return
	}
	h.keysPage(w, r, s, http.StatusOK, keysData{})
}

func (h *handler) keysPage(w http.ResponseWriter, r *http.Request, s session, status int, d keysData) {
	d.TenantID, d.Action = s.tenant, "/console/keys"
	if h.opts.Admin == nil {
		d.StoreOff = storeOff
	} else {
		var list apiList[apiKey]
		if err := h.callAdmin(r.Context(), s, "GET", "/admin/tenants/"+url.PathEscape(s.tenant)+"/keys", nil, &list); err != nil {
			h.log.Error("console: keys", "tenant", s.tenant, "error", err)
			h.fail(w, &s, http.StatusInternalServerError, "Your keys could not be read.")
			return
		}
		d.Keys = list.Data
	}
	h.render(w, status, "keys", page{Title: "Keys", Session: &s, Data: d})
}

// keyRequest is the create form as the admin API takes it: an optional id,
// an optional list of the tenant's models (comma or space separated), an
// optional day the key stops working (at its start, UTC) and optional
// limits of the key's own (blank or 0: none; its tenant's still apply).
func keyRequest(r *http.Request) (keyBody, error) {
	b := keyBody{ID: strings.TrimSpace(r.PostFormValue("key_id"))}
	b.Models = strings.FieldsFunc(r.PostFormValue("models"), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' })
	var errs []string
	l := limitsBody{
		RequestsPerMinute: formInt(r, "rpm", "Requests per minute", &errs),
		TokensPerMinute:   formInt(r, "tpm", "Tokens per minute", &errs),
		ConcurrentStreams: formInt(r, "streams", "Concurrent streams", &errs),
	}
	if len(errs) > 0 {
		return b, &apiError{Status: http.StatusBadRequest, Message: strings.Join(errs, " ")}
	}
	if l != (limitsBody{}) {
		b.Limits = &l
	}
	if v := strings.TrimSpace(r.PostFormValue("expires")); v != "" {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return b, &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("Expires: %q is not a day like 2027-01-31.", v)}
		}
		b.ExpiresAt = &t
	}
	return b, nil
}

// createOwnKey makes a key for the session's own tenant and shows it once.
func (h *handler) createOwnKey(w http.ResponseWriter, r *http.Request, s session) {
	if s.admin {
		h.fail(w, &s, http.StatusNotFound, "Not found: an administrator makes keys on a tenant's page.")
		return
	}
	var made apiKey
	body, err := keyRequest(r)
	if err == nil {
		err = h.callAdmin(r.Context(), s, "POST", "/admin/tenants/"+url.PathEscape(s.tenant)+"/keys", body, &made)
	}
	if err != nil {
		h.keysPage(w, r, s, statusOf(err), keysData{KeyError: h.words(err, "create key")})
		return
	}
	h.log.Info("console: key made", "who", s.Who(), "key_id", made.ID)
	h.keysPage(w, r, s, http.StatusCreated, keysData{NewKey: &made})
}

// createKey makes a key for the tenant of the page (the administrator's
// form) and shows it once, on the tenant's page.
func (h *handler) createKey(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	var made apiKey
	body, err := keyRequest(r)
	if err == nil {
		err = h.callAdmin(r.Context(), s, "POST", "/admin/tenants/"+url.PathEscape(id)+"/keys", body, &made)
	}
	if err != nil {
		h.tenantPage(w, r, s, statusOf(err), id, map[string]string{"keys": h.words(err, "create key")}, nil)
		return
	}
	h.log.Info("console: key made", "who", s.Who(), "tenant", id, "key_id", made.ID)
	h.tenantPage(w, r, s, http.StatusCreated, id, nil, &made)
}

// revokeKey revokes a key: a tenant's session its own only (the admin API
// answers 404 for any other), the administrator any.
func (h *handler) revokeKey(w http.ResponseWriter, r *http.Request, s session) {
	err := h.callAdmin(r.Context(), s, "POST", "/admin/keys/"+url.PathEscape(r.PathValue("id"))+"/revoke", nil, nil)
	if !s.admin {
		if err != nil {
			h.keysPage(w, r, s, statusOf(err), keysData{KeyError: h.words(err, "revoke key")})
			return
		}
		// Revoking the key this session logged in with ends the session:
		// the keys page then says so.
		http.Redirect(w, r, "/console/keys", http.StatusSeeOther)
		return
	}
	tenant := r.PostFormValue("tenant")
	if err != nil {
		if tenant == "" {
			h.fail(w, &s, statusOf(err), h.words(err, "revoke key"))
			return
		}
		h.tenantPage(w, r, s, statusOf(err), tenant, map[string]string{"keys": h.words(err, "revoke key")}, nil)
		return
	}
	if tenant == "" {
		http.Redirect(w, r, "/console/tenants", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/tenants/"+url.PathEscape(tenant)+"#keys", http.StatusSeeOther)
}

// statusOf is the admin API's status for err, 500 for anything else.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return http.StatusInternalServerError
}
