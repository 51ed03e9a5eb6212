package admin

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n')) //nolint:errcheck // the client went away
	return nil
}

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) listTenants(w http.ResponseWriter, r *http.Request) error {
	ts, err := a.st.ListTenants(r.Context())
	if err != nil {
		return err
	}
	out := make([]tenantJSON, len(ts))
	for i, t := range ts {
		out[i] = tenantOut(t)
	}
	return writeJSON(w, http.StatusOK, list(out))
}

func (a *api) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := a.st.GetTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, tenantOut(t))
}

func (a *api) createTenant(w http.ResponseWriter, r *http.Request) error {
	var req tenantRequest
	if err := decode(r, tenantFields, &req); err != nil {
		return err
	}
	spec := store.TenantSpec{ID: req.ID, Limits: req.Limits.limits(),
		Content: tenancy.ContentPolicy{MaxBytes: orZero(req.Content.MaxBytes)}}
	if req.Content.Capture != nil {
		spec.Content.Capture = *req.Content.Capture
	}
	if err := a.st.CreateTenant(r.Context(), spec); err != nil {
		return err
	}
	t, err := a.st.GetTenant(r.Context(), spec.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, tenantOut(t))
}

func (a *api) updateTenant(w http.ResponseWriter, r *http.Request) error {
	var req tenantRequest
	if err := decode(r, tenantFields, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if req.ID != "" && req.ID != id {
		return apierror.BadRequest("invalid_value", "id", "a tenant's id cannot change")
	}
	t, err := a.st.UpdateTenant(r.Context(), id, store.TenantPatch{
		Capture: req.Content.Capture, MaxBytes: req.Content.MaxBytes, RequestsPerMinute: req.Limits.RequestsPerMinute,
		TokensPerMinute: req.Limits.TokensPerMinute, ConcurrentStreams: req.Limits.ConcurrentStreams,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, tenantOut(t))
}

func (a *api) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	if err := a.st.DeleteTenant(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	return noContent(w)
}

func (a *api) setModels(w http.ResponseWriter, r *http.Request) error {
	var req modelsRequest
	if err := decode(r, modelsFields, &req); err != nil {
		return err
	}
	models := make([]tenancy.Model, len(req.Models))
	for i, m := range req.Models {
		var err error
		if models[i], err = m.model(i); err != nil {
			return err
		}
	}
	id := r.PathValue("id")
	if err := a.st.SetModels(r.Context(), id, models); err != nil {
		return err
	}
	t, err := a.st.GetTenant(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, tenantOut(t))
}

// setCredential answers 204 with no body: the credential is never sent
// back, not even masked.
func (a *api) setCredential(w http.ResponseWriter, r *http.Request) error {
	var req credentialRequest
	if err := decode(r, credentialFields, &req); err != nil {
		return err
	}
	if req.APIKey == "" {
		return apierror.BadRequest("missing_required_parameter", "api_key", "api_key is required")
	}
	if err := a.st.SetCredential(r.Context(), r.PathValue("id"), r.PathValue("deployment"), req.APIKey); err != nil {
		return err
	}
	return noContent(w)
}

func (a *api) deleteCredential(w http.ResponseWriter, r *http.Request) error {
	if err := a.st.DeleteCredential(r.Context(), r.PathValue("id"), r.PathValue("deployment")); err != nil {
		return err
	}
	return noContent(w)
}

func (a *api) listKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := a.st.ListKeys(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := make([]keyJSON, len(keys))
	for i, k := range keys {
		out[i] = keyOut(k)
	}
	return writeJSON(w, http.StatusOK, list(out))
}

// createKey answers with the new key in "key": the only time it is shown.
func (a *api) createKey(w http.ResponseWriter, r *http.Request) error {
	var req keyRequest
	if err := decode(r, keyFields, &req); err != nil {
		return err
	}
	tenantID := r.PathValue("id")
	spec := store.KeySpec{ID: req.ID, Models: req.Models, Limits: req.Limits.limits()}
	if req.ExpiresAt != nil {
		spec.ExpiresAt = *req.ExpiresAt
	}
	key, err := a.st.CreateKey(r.Context(), tenantID, spec)
	if err != nil {
		return err
	}
	if spec.ID == "" {
		spec.ID = store.DefaultKeyID(tenantID, key)
	}
	keys, err := a.st.ListKeys(r.Context(), tenantID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(keys, func(k store.Key) bool { return k.ID == spec.ID })
	if i < 0 {
		return fmt.Errorf("key %q vanished after it was made", spec.ID)
	}
	out := keyOut(keys[i])
	out.Key = key
	return writeJSON(w, http.StatusCreated, out)
}

func (a *api) revokeKey(w http.ResponseWriter, r *http.Request) error {
	if err := a.st.RevokeKey(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	return noContent(w)
}

// audit answers GET /admin/audit?tenant=T&from=&to=&limit=: the admin
// audit log's entries, newest first (from and to are RFC 3339; limit at
// most store.MaxAuditLimit).
func (a *api) audit(w http.ResponseWriter, r *http.Request) error {
	q, err := auditQuery(r.URL.Query())
	if err != nil {
		return err
	}
	entries, err := a.st.Audit(r.Context(), q)
	if err != nil {
		return err
	}
	out := make([]auditJSON, len(entries))
	for i, e := range entries {
		out[i] = auditOut(e)
	}
	return writeJSON(w, http.StatusOK, list(out))
}

// setTenantBudgets replaces the tenant's budgets and answers with the
// tenant.
func (a *api) setTenantBudgets(w http.ResponseWriter, r *http.Request) error {
	var req budgetsRequest
	if err := decode(r, budgetsFields, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := a.st.SetTenantBudgets(r.Context(), id, req.Budgets); err != nil {
		return err
	}
	t, err := a.st.GetTenant(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, tenantOut(t))
}

// setKeyBudgets replaces the key's own budgets (its tenant's still
// apply); 204, as revoking does.
func (a *api) setKeyBudgets(w http.ResponseWriter, r *http.Request) error {
	var req budgetsRequest
	if err := decode(r, budgetsFields, &req); err != nil {
		return err
	}
	if err := a.st.SetKeyBudgets(r.Context(), r.PathValue("id"), req.Budgets); err != nil {
		return err
	}
	return noContent(w)
}
