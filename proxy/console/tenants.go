package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loom-gateway/loom/proxy/admin"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// Tenants and keys in the browser. Every change goes through the admin API
// in process (Options.Admin), as the session's own caller: the API's
// validation, its answers and its audit trail, nothing of the console's
// own. The console adds forms, a CSRF token on each, and words for the
// API's refusals. A credential is write-only: a page says whether one is
// set, never what it is; a new key is shown once, in the answer to the
// form that made it.

// maxForm bounds an admin form's body: the largest is a model list.
const maxForm = 64 << 10

// storeOff is what the pages say when no tenant store is configured.
const storeOff = "The tenant store is not configured, so tenants and keys cannot be managed here: " +
	"they come from the configuration file. Set store.database_url_env to manage them in the browser."

// addAdminPages parses the tenant and key pages; the tenant page shows the
// same key section as the keys page.
func addAdminPages(base *template.Template, pages map[string]*template.Template) {
	parse := func(files ...string) *template.Template {
		t := template.Must(base.Clone())
		for _, f := range files {
			t = template.Must(t.ParseFS(templateFS, "templates/"+f+".html"))
		}
		return t
	}
	pages["tenants"] = parse("tenants")
	pages["tenant"] = parse("tenant", "keys")
	pages["keys"] = parse("keys")
}

// caller is who s is to the admin API.
func (s session) caller() admin.Caller {
	if s.admin {
		return admin.Caller{}
	}
	return admin.Caller{Tenant: s.tenant, KeyID: s.key}
}

// apiError is the admin API's refusal of a change, in its words.
type apiError struct {
	Status  int
	Param   string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// response keeps the admin API's answer to an in-process request.
type response struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *response) Header() http.Header         { return r.header }
func (r *response) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *response) WriteHeader(status int)      { r.status = status }

// callAdmin runs one admin API request as s, with body as its JSON, and
// decodes a successful answer into out (when not nil). A refusal is an
// *apiError.
func (h *handler) callAdmin(ctx context.Context, s session, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("admin request %s %s: %w", method, path, err)
		}
	}
	r, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("admin request %s %s: %w", method, path, err)
	}
	r.Header.Set("Content-Type", "application/json")
	w := &response{header: http.Header{}, status: http.StatusOK}
	h.opts.Admin(s.caller()).ServeHTTP(w, r)
	if w.status >= 300 {
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Param   *string `json:"param"`
			} `json:"error"`
		}
		if err := json.Unmarshal(w.body.Bytes(), &e); err != nil || e.Error.Message == "" {
			return fmt.Errorf("admin request %s %s: status %d", method, path, w.status)
		}
		ae := &apiError{Status: w.status, Message: e.Error.Message}
		if e.Error.Param != nil {
			ae.Param = *e.Error.Param
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(w.body.Bytes(), out); err != nil {
			return fmt.Errorf("admin answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// The admin API's JSON, as far as the pages show it.

type apiLimits struct {
	RequestsPerMinute int `json:"requests_per_minute"`
	TokensPerMinute   int `json:"tokens_per_minute"`
	ConcurrentStreams int `json:"concurrent_streams"`
}

type apiModel struct {
	Name          string `json:"name"`
	Deployment    string `json:"deployment"`
	UpstreamModel string `json:"upstream_model,omitempty"`
	Deployments   []struct {
		Name string `json:"name"`
	} `json:"deployments,omitempty"`
	Fallbacks []string  `json:"fallbacks,omitempty"`
	Routing   *struct{} `json:"routing,omitempty"`
}

// simple reports a model of one deployment, which a line of the models
// form can say.
func (m apiModel) simple() bool {
	return len(m.Deployments) == 0 && len(m.Fallbacks) == 0 && m.Routing == nil
}

// Line is the model as a line of the models form.
func (m apiModel) Line() string {
	if m.UpstreamModel != "" {
		return m.Name + "=" + m.Deployment + ":" + m.UpstreamModel
	}
	return m.Name + "=" + m.Deployment
}

type apiTenant struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	Content   struct {
		Capture bool `json:"capture"`
	} `json:"content"`
	Limits      apiLimits   `json:"limits"`
	Budgets     []apiBudget `json:"budgets"`
	Models      []apiModel  `json:"models"`
	Credentials []string    `json:"credentials"`
}

type apiKey struct {
	ID        string      `json:"id"`
	TenantID  string      `json:"tenant_id"`
	Prefix    string      `json:"prefix"`
	CreatedAt time.Time   `json:"created_at"`
	ExpiresAt *time.Time  `json:"expires_at"`
	RevokedAt *time.Time  `json:"revoked_at"`
	Models    []string    `json:"models"`
	Limits    apiLimits   `json:"limits"`
	Budgets   []apiBudget `json:"budgets"`
	Key       string      `json:"key"`
}

// State is the key's state in words.
func (k apiKey) State() string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && !k.ExpiresAt.After(time.Now()):
		return "expired"
	}
	return "active"
}

type apiList[T any] struct {
	Data []T `json:"data"`
}

// Requests, with only the members the forms set.

type limitsBody struct {
	RequestsPerMinute int `json:"requests_per_minute"`
	TokensPerMinute   int `json:"tokens_per_minute"`
	ConcurrentStreams int `json:"concurrent_streams"`
}

type tenantBody struct {
	ID      string `json:"id,omitempty"`
	Content struct {
		Capture bool `json:"capture"`
	} `json:"content"`
	Limits limitsBody `json:"limits"`
}

type modelBody struct {
	Name          string `json:"name"`
	Deployment    string `json:"deployment"`
	UpstreamModel string `json:"upstream_model,omitempty"`
}

type keyBody struct {
	ID        string     `json:"id,omitempty"`
	Models    []string   `json:"models,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Limits are the key's own, sent only when one is set.
	Limits *limitsBody `json:"limits,omitempty"`
}

// csrfOK checks a posted form's token against the session's (the one the
// Log out button carries).
func csrfOK(r *http.Request, s session) bool {
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrf))
}

// form wraps an admin form's POST: the body bounded, the CSRF token
// checked (a 403 and nothing changed without it), a tenant session kept
// off admin-only forms, and the store's absence said in words.
func (h *handler) form(adminOnly bool, f func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return h.auth(func(w http.ResponseWriter, r *http.Request, s session) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			h.fail(w, &s, http.StatusRequestEntityTooLarge, "The form is too large.")
			return
		}
		if !csrfOK(r, s) {
			h.log.Warn("console form refused: no valid form token", "path", r.URL.Path, "remote", r.RemoteAddr)
			h.fail(w, &s, http.StatusForbidden, "This form did not come from the console (or your session changed): reload the page and try again.")
			return
		}
		if adminOnly && !s.admin {
			h.fail(w, &s, http.StatusNotFound, "Not found.")
			return
		}
		if h.opts.Admin == nil {
			h.fail(w, &s, http.StatusNotFound, storeOff)
			return
		}
		f(w, r, s)
	})
}

// formInt reads a whole number ≥ 0 from a form field; blank is 0.
func formInt(r *http.Request, name, label string, errs *[]string) int {
	v := strings.TrimSpace(r.PostFormValue(name))
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || len(v) > 10 {
		*errs = append(*errs, fmt.Sprintf("%s: %q is not a whole number of 0 or more.", label, v))
		return 0
	}
	return n
}

// words is err as the form shows it: the admin API's own message, or a
// plain apology for anything else (logged, never shown).
func (h *handler) words(err error, what string) string {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.Status == http.StatusNotFound {
			return "Not found: it does not exist, or not for you."
		}
		return ae.Message
	}
	h.log.Error("console: "+what, "error", err)
	return "That did not work: see the console's log."
}

type tenantsData struct {
	StoreOff string
	Tenants  []apiTenant
	// The create form: what was typed, and why it was refused.
	Form  map[string]string
	Error string
}

// tenants lists the tenants and offers a form for a new one; the
// administrator's page only.
func (h *handler) tenants(w http.ResponseWriter, r *http.Request, s session) {
	if !s.admin {
		h.fail(w, &s, http.StatusNotFound, "Not found.")
		return
	}
	h.tenantsPage(w, r, s, http.StatusOK, tenantsData{})
}

func (h *handler) tenantsPage(w http.ResponseWriter, r *http.Request, s session, status int, d tenantsData) {
	if h.opts.Admin == nil {
		d.StoreOff = storeOff
	} else {
		var list apiList[apiTenant]
		if err := h.callAdmin(r.Context(), s, "GET", "/admin/tenants", nil, &list); err != nil {
			h.log.Error("console: tenants", "error", err)
			h.fail(w, &s, http.StatusInternalServerError, "The tenants could not be read.")
			return
		}
		d.Tenants = list.Data
	}
	h.render(w, status, "tenants", page{Title: "Tenants", Session: &s, Data: d})
}

// createTenant makes a tenant and opens its page; a refusal shows in the
// form, with what was typed.
func (h *handler) createTenant(w http.ResponseWriter, r *http.Request, s session) {
	var errs []string
	var body tenantBody
	body.ID = strings.TrimSpace(r.PostFormValue("id"))
	body.Limits = limitsBody{
		RequestsPerMinute: formInt(r, "rpm", "Requests per minute", &errs),
		TokensPerMinute:   formInt(r, "tpm", "Tokens per minute", &errs),
		ConcurrentStreams: formInt(r, "streams", "Concurrent streams", &errs),
	}
	body.Content.Capture = r.PostFormValue("capture") == "on"
	status := http.StatusBadRequest
	if len(errs) == 0 {
		err := h.callAdmin(r.Context(), s, "POST", "/admin/tenants", body, nil)
		if err == nil {
			http.Redirect(w, r, "/console/tenants/"+url.PathEscape(body.ID), http.StatusSeeOther)
			return
		}
		errs = append(errs, h.words(err, "create tenant"))
		var ae *apiError
		if errors.As(err, &ae) {
			status = ae.Status
		}
	}
	form := map[string]string{}
	for _, k := range []string{"id", "rpm", "tpm", "streams", "capture"} {
		form[k] = r.PostFormValue(k)
	}
	h.tenantsPage(w, r, s, status, tenantsData{Form: form, Error: strings.Join(errs, " ")})
}

// credential is a deployment and whether the tenant has its own key for
// it: never the key.
type credential struct {
	Deployment string
	Set        bool
}

type tenantData struct {
	Tenant apiTenant
	// Models is the models form's text; LongForm says some model has
	// several deployments, fallbacks or routing, which only the CLI or the
	// API can edit.
	Models      string
	LongForm    bool
	Credentials []credential
	Deployments []string
	// BudgetRows are the budgets form's rows: the tenant's budgets, or
	// what was typed when the form was refused.
	BudgetRows []budgetRow
	keysData
	// Errors are the forms' refusals, by form: tenant, models,
	// credentials, budgets.
	Errors map[string]string
}

// keysData is the key section of the tenant page and the keys page.
type keysData struct {
	StoreOff string
	TenantID string
	Keys     []apiKey
	// NewKey is a key just made: shown once, on this answer only.
	NewKey *apiKey
	// KeyError is the create or revoke form's refusal.
	KeyError string
	// Action is where the create form posts.
	Action string
	// BudgetForms are the live keys' budgets forms: the administrator's
	// page only.
	BudgetForms []keyBudgetForm
}

// tenant is one tenant's page: its limits, models, credentials and keys;
// the administrator's only.
func (h *handler) tenant(w http.ResponseWriter, r *http.Request, s session) {
	if !s.admin {
		h.fail(w, &s, http.StatusNotFound, "Not found.")
		return
	}
	if h.opts.Admin == nil {
		h.fail(w, &s, http.StatusNotFound, storeOff)
		return
	}
	h.tenantPage(w, r, s, http.StatusOK, r.PathValue("id"), nil, nil)
}

func (h *handler) tenantPage(w http.ResponseWriter, r *http.Request, s session, status int, id string, errs map[string]string, made *apiKey) {
	d := tenantData{Errors: errs, Deployments: h.opts.Deployments}
	base := "/admin/tenants/" + url.PathEscape(id)
	err := h.callAdmin(r.Context(), s, "GET", base, nil, &d.Tenant)
	var keys apiList[apiKey]
	if err == nil {
		err = h.callAdmin(r.Context(), s, "GET", base+"/keys", nil, &keys)
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		h.fail(w, &s, http.StatusNotFound, "There is no tenant "+strconv.Quote(id)+".")
		return
	}
	if err != nil {
		h.log.Error("console: tenant", "tenant", id, "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The tenant could not be read.")
		return
	}
	lines := make([]string, 0, len(d.Tenant.Models))
	for _, m := range d.Tenant.Models {
		d.LongForm = d.LongForm || !m.simple()
		lines = append(lines, m.Line())
	}
	d.Models = strings.Join(lines, "\n")
	if errs != nil && errs["models"] != "" {
		d.Models = r.PostFormValue("models") // what was typed, to correct
	}
	deps := slices.Clone(h.opts.Deployments)
	for _, c := range d.Tenant.Credentials {
		if !slices.Contains(deps, c) {
			deps = append(deps, c)
		}
	}
	for _, dep := range deps {
		d.Credentials = append(d.Credentials, credential{Deployment: dep, Set: slices.Contains(d.Tenant.Credentials, dep)})
	}
	d.BudgetRows = rowsOf(d.Tenant.Budgets)
	if errs != nil && errs["budgets"] != "" {
		d.BudgetRows = postedRows(r) // what was typed, to correct
	}
	d.keysData = keysData{TenantID: id, Keys: keys.Data, NewKey: made, KeyError: errs["keys"],
		Action: "/console/tenants/" + url.PathEscape(id) + "/keys"}
	var lost string
	if d.BudgetForms, lost = keyBudgetForms(r, keys.Data, errs); lost != "" {
		d.KeyError = lost
	}
	h.render(w, status, "tenant", page{Title: "Tenant " + id, Session: &s, Data: d})
}

// after answers a tenant page form: back to the page (303) when the change
// was made, else the page again with the refusal in the form.
func (h *handler) after(w http.ResponseWriter, r *http.Request, s session, form string, err error) {
	id := r.PathValue("id")
	if err == nil {
		http.Redirect(w, r, "/console/tenants/"+url.PathEscape(id)+"#"+form, http.StatusSeeOther)
		return
	}
	status := http.StatusBadRequest
	var ae *apiError
	if errors.As(err, &ae) {
		status = ae.Status
	}
	h.tenantPage(w, r, s, status, id, map[string]string{form: h.words(err, form)}, nil)
}

// setLimits changes the tenant's limits and content capture.
func (h *handler) setLimits(w http.ResponseWriter, r *http.Request, s session) {
	var errs []string
	var body tenantBody
	body.Limits = limitsBody{
		RequestsPerMinute: formInt(r, "rpm", "Requests per minute", &errs),
		TokensPerMinute:   formInt(r, "tpm", "Tokens per minute", &errs),
		ConcurrentStreams: formInt(r, "streams", "Concurrent streams", &errs),
	}
	body.Content.Capture = r.PostFormValue("capture") == "on"
	if len(errs) > 0 {
		h.after(w, r, s, "tenant", &apiError{Status: http.StatusBadRequest, Message: strings.Join(errs, " ")})
		return
	}
	h.after(w, r, s, "tenant", h.callAdmin(r.Context(), s, "PATCH", "/admin/tenants/"+url.PathEscape(r.PathValue("id")), body, nil))
}

// maxModels bounds the models form's lines.
const maxModels = 500

// setModels replaces the tenant's models with the form's lines, each
// NAME=DEPLOYMENT[:UPSTREAM_MODEL] as `loom tenants models` takes them.
func (h *handler) setModels(w http.ResponseWriter, r *http.Request, s session) {
	models := []modelBody{}
	for i, line := range strings.Split(r.PostFormValue("models"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, target, ok := strings.Cut(line, "=")
		dep, upstream, _ := strings.Cut(target, ":")
		name, dep, upstream = strings.TrimSpace(name), strings.TrimSpace(dep), strings.TrimSpace(upstream)
		if !ok || name == "" || dep == "" {
			h.after(w, r, s, "models", &apiError{Status: http.StatusBadRequest,
				Message: fmt.Sprintf("Line %d, %q, is not NAME=DEPLOYMENT or NAME=DEPLOYMENT:UPSTREAM_MODEL.", i+1, line)})
			return
		}
		if len(models) == maxModels {
			h.after(w, r, s, "models", &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("At most %d models.", maxModels)})
			return
		}
		models = append(models, modelBody{Name: name, Deployment: dep, UpstreamModel: upstream})
	}
	h.after(w, r, s, "models", h.callAdmin(r.Context(), s, "PUT", "/admin/tenants/"+url.PathEscape(r.PathValue("id"))+"/models",
		map[string]any{"models": models}, nil))
}

// setCredential stores the tenant's own key for a deployment, or removes
// it (remove=on). The key is never shown again, nor logged.
func (h *handler) setCredential(w http.ResponseWriter, r *http.Request, s session) {
	dep := strings.TrimSpace(r.PostFormValue("deployment"))
	path := "/admin/tenants/" + url.PathEscape(r.PathValue("id")) + "/credentials/" + url.PathEscape(dep)
	if dep == "" {
		h.after(w, r, s, "credentials", &apiError{Status: http.StatusBadRequest, Message: "Choose a deployment."})
		return
	}
	if r.PostFormValue("remove") == "on" {
		h.after(w, r, s, "credentials", h.callAdmin(r.Context(), s, "DELETE", path, nil, nil))
		return
	}
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	if key == "" {
		h.after(w, r, s, "credentials", &apiError{Status: http.StatusBadRequest, Message: "Enter the provider's API key for " + dep + "."})
		return
	}
	h.after(w, r, s, "credentials", h.callAdmin(r.Context(), s, "PUT", path, map[string]string{"api_key": key}, nil))
}
