package admin

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// The JSON the API speaks. Field names are snake_case like OpenAI's.

type limitsJSON struct {
	RequestsPerMinute int `json:"requests_per_minute"`
	TokensPerMinute   int `json:"tokens_per_minute"`
	ConcurrentStreams int `json:"concurrent_streams"`
}

type contentJSON struct {
	Capture  bool `json:"capture"`
	MaxBytes int  `json:"max_bytes"` // 0: the default
}

// modelJSON is a tenant model in either of the configuration file's forms,
// with its field names: one deployment, or several (deployments) with
// weights and priorities; fallbacks; a routing override.
type modelJSON struct {
	Name          string       `json:"name"`
	Deployment    string       `json:"deployment,omitempty"`
	UpstreamModel string       `json:"upstream_model,omitempty"`
	Deployments   []targetJSON `json:"deployments,omitempty"`
	Fallbacks     []string     `json:"fallbacks,omitempty"`
	Routing       *routingJSON `json:"routing,omitempty"`
}

type targetJSON struct {
	Name          string `json:"name"`
	UpstreamModel string `json:"upstream_model,omitempty"`
	Weight        int    `json:"weight,omitempty"`
	Priority      int    `json:"priority,omitempty"`
}

type routingJSON struct {
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Budget is a Go duration, as in the configuration file ("30s").
	Budget string `json:"budget,omitempty"`
}

type tenantJSON struct {
	Object      string           `json:"object"`
	ID          string           `json:"id"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
	Content     contentJSON      `json:"content"`
	Limits      limitsJSON       `json:"limits"`
	Budgets     []tenancy.Budget `json:"budgets"`
	Models      []modelJSON      `json:"models"`
	Credentials []string         `json:"credentials"` // deployments only, never a secret
}

type keyJSON struct {
	Object    string           `json:"object"`
	ID        string           `json:"id"`
	TenantID  string           `json:"tenant_id"`
	Prefix    string           `json:"prefix"`
	CreatedAt time.Time        `json:"created_at"`
	ExpiresAt *time.Time       `json:"expires_at"`
	RevokedAt *time.Time       `json:"revoked_at"`
	Models    []string         `json:"models"`
	Limits    limitsJSON       `json:"limits"`
	Budgets   []tenancy.Budget `json:"budgets"`
	// Key is set in the answer to the POST that made it, and never again.
	Key string `json:"key,omitempty"`
}

type listJSON[T any] struct {
	Object string `json:"object"`
	Data   []T    `json:"data"`
}

func list[T any](data []T) listJSON[T] {
	if data == nil {
		data = []T{}
	}
	return listJSON[T]{Object: "list", Data: data}
}

// Requests: pointers tell "absent" from zero, for PATCH.

type limitsPatch struct {
	RequestsPerMinute *int `json:"requests_per_minute"`
	TokensPerMinute   *int `json:"tokens_per_minute"`
	ConcurrentStreams *int `json:"concurrent_streams"`
}

type contentPatch struct {
	Capture  *bool `json:"capture"`
	MaxBytes *int  `json:"max_bytes"`
}

type tenantRequest struct {
	ID      string       `json:"id"`
	Content contentPatch `json:"content"`
	Limits  limitsPatch  `json:"limits"`
}

var tenantFields = fields{"id": nil, "content": {"capture": nil, "max_bytes": nil},
	"limits": {"requests_per_minute": nil, "tokens_per_minute": nil, "concurrent_streams": nil}}

type modelsRequest struct {
	Models []modelJSON `json:"models"`
}

var modelsFields = fields{"models": {"[]": {"name": nil, "deployment": nil, "upstream_model": nil,
	"deployments": {"[]": {"name": nil, "upstream_model": nil, "weight": nil, "priority": nil}},
	"fallbacks":   nil, "routing": {"max_attempts": nil, "budget": nil}}}}

// model is the tenancy model m describes, field i of the request; a budget
// that is no duration is refused naming its field.
func (m modelJSON) model(i int) (tenancy.Model, error) {
	out := tenancy.Model{Name: m.Name, Deployment: m.Deployment, UpstreamModel: m.UpstreamModel, Fallbacks: m.Fallbacks}
	for _, d := range m.Deployments {
		out.Deployments = append(out.Deployments, tenancy.Target{Deployment: d.Name, UpstreamModel: d.UpstreamModel,
			Weight: d.Weight, Priority: d.Priority})
	}
	if m.Routing != nil {
		out.Routing.MaxAttempts = m.Routing.MaxAttempts
		if m.Routing.Budget != "" {
			b, err := time.ParseDuration(m.Routing.Budget)
			if err != nil {
				f := fmt.Sprintf("models[%d].routing.budget", i)
				return out, apierror.BadRequest("invalid_value", f, fmt.Sprintf("%s: %q is not a duration (like \"30s\")", f, m.Routing.Budget))
			}
			out.Routing.Budget = b
		}
	}
	return out, nil
}

func modelOut(m tenancy.Model) modelJSON {
	out := modelJSON{Name: m.Name, Deployment: m.Deployment, UpstreamModel: m.UpstreamModel, Fallbacks: m.Fallbacks}
	for _, d := range m.Deployments {
		out.Deployments = append(out.Deployments, targetJSON{Name: d.Deployment, UpstreamModel: d.UpstreamModel,
			Weight: d.Weight, Priority: d.Priority})
	}
	if m.Routing != (tenancy.Routing{}) {
		out.Routing = &routingJSON{MaxAttempts: m.Routing.MaxAttempts}
		if m.Routing.Budget != 0 {
			out.Routing.Budget = m.Routing.Budget.String()
		}
	}
	return out
}

// budgetsRequest replaces a tenant's or a key's budgets: each
// {"period": "day"|"month", "limit": "25.00", "alert_at": 0.8}; an empty
// list removes them.
type budgetsRequest struct {
	Budgets []tenancy.Budget `json:"budgets"`
}

var budgetsFields = fields{"budgets": {"[]": {"period": nil, "limit": nil, "alert_at": nil}}}

type credentialRequest struct {
	APIKey string `json:"api_key"`
}

var credentialFields = fields{"api_key": nil}

type keyRequest struct {
	ID        string      `json:"id"`
	Models    []string    `json:"models"`
	ExpiresAt *time.Time  `json:"expires_at"`
	Limits    limitsPatch `json:"limits"`
}

var keyFields = fields{"id": nil, "models": nil, "expires_at": nil, "limits": tenantFields["limits"]}

func orZero(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func (l limitsPatch) limits() tenancy.Limits {
	return tenancy.Limits{RequestsPerMinute: orZero(l.RequestsPerMinute), TokensPerMinute: orZero(l.TokensPerMinute),
		ConcurrentStreams: orZero(l.ConcurrentStreams)}
}

func tenantOut(t store.Tenant) tenantJSON {
	out := tenantJSON{Object: "tenant", ID: t.ID, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		Content: contentJSON{Capture: t.Content.Capture, MaxBytes: t.Content.MaxBytes},
		Limits:  limitsOut(t.Limits), Budgets: budgetsOut(t.Budgets), Models: []modelJSON{}, Credentials: t.Credentials}
	for _, m := range t.Models {
		out.Models = append(out.Models, modelOut(m))
	}
	if out.Credentials == nil {
		out.Credentials = []string{}
	}
	return out
}

func limitsOut(l tenancy.Limits) limitsJSON { return limitsJSON(l) }

// budgetsOut is never null in the JSON: no budgets is [].
func budgetsOut(bs []tenancy.Budget) []tenancy.Budget {
	if bs == nil {
		return []tenancy.Budget{}
	}
	return bs
}

func keyOut(k store.Key) keyJSON {
	out := keyJSON{Object: "api_key", ID: k.ID, TenantID: k.TenantID, Prefix: k.Prefix, CreatedAt: k.CreatedAt,
		Models: k.Models, Limits: limitsOut(k.Limits), Budgets: budgetsOut(k.Budgets)}
	if !k.ExpiresAt.IsZero() {
		out.ExpiresAt = &k.ExpiresAt
	}
	if !k.RevokedAt.IsZero() {
		out.RevokedAt = &k.RevokedAt
	}
	return out
}

// fields is the shape of a request object, for refusing members the API
// does not know (a misspelt "limit" must not be silently ignored). nil is
// any value; "[]" describes each element of an array.
type fields map[string]fields

// decode reads the request body into v after checking its members
// against shape.
func decode(r *http.Request, shape fields, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if !json.Valid(body) {
		return apierror.BadRequest("invalid_json", "", "the request body is not valid JSON")
	}
	if path := unknownField(body, shape, ""); path != "" {
		return apierror.BadRequest("unknown_parameter", path, fmt.Sprintf("unrecognized request argument supplied: %s", path))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return apierror.BadRequest("invalid_type", "", "the request body does not have the expected shape: "+err.Error())
	}
	return nil
}

// unknownField returns the dotted path of the first member of the object
// v that shape does not name, or "". Values that are not objects or arrays
// are left to Unmarshal to judge.
func unknownField(v []byte, shape fields, prefix string) string {
	if elem, ok := shape["[]"]; ok {
		var e json.Elements
		if !e.Reset(v) {
			return ""
		}
		for i := 0; e.Next(); i++ {
			if p := unknownField(e.Value(), elem, fmt.Sprintf("%s[%d].", strings.TrimSuffix(prefix, "."), i)); p != "" {
				return p
			}
		}
		return ""
	}
	var m json.Members
	if !m.Reset(v) {
		return ""
	}
	for m.Next() {
		key := string(m.Key())
		sub, ok := shape[key]
		if !ok {
			return prefix + key
		}
		if sub != nil {
			if p := unknownField(m.Value(), sub, prefix+key+"."); p != "" {
				return p
			}
		}
	}
	return ""
}

// rawJSON is JSON already encoded (an entry's before and after), written
// as it is.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

type actorJSON struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// auditJSON is an entry of the admin audit log. before and after are the
// target's state with secrets redacted, null where it did not exist.
type auditJSON struct {
	Object    string    `json:"object"`
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Actor     actorJSON `json:"actor"`
	RequestID string    `json:"request_id"`
	Action    string    `json:"action"`
	Tenant    string    `json:"tenant"`
	Target    string    `json:"target"`
	Before    rawJSON   `json:"before"`
	After     rawJSON   `json:"after"`
}

func auditOut(e store.AuditEntry) auditJSON {
	return auditJSON{Object: "audit_entry", Seq: e.Seq, Time: e.Time.UTC(), Actor: actorJSON{Kind: e.Actor.Kind, ID: e.Actor.ID},
		RequestID: e.Actor.RequestID, Action: e.Action, Tenant: store.TargetTenant(e.Target), Target: e.Target,
		Before: rawJSON(e.Before), After: rawJSON(e.After)}
}

// auditQuery reads GET /admin/audit's parameters, refusing what it does not
// know: a misspelt "tennant" must not widen the answer to every tenant.
func auditQuery(v url.Values) (store.AuditQuery, error) {
	var q store.AuditQuery
	for name := range v {
		switch name {
		case "tenant", "from", "to", "limit":
		default:
			return q, apierror.BadRequest("unknown_parameter", name, "unrecognized query parameter: "+name)
		}
	}
	q.Tenant = v.Get("tenant")
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := v.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return q, apierror.BadRequest("invalid_value", p.name, fmt.Sprintf("%s: %q is not an RFC 3339 time (like 2026-12-05T21:00:00Z)", p.name, s))
			}
			*p.t = t
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxAuditLimit {
			return q, apierror.BadRequest("invalid_value", "limit", fmt.Sprintf("limit: must be 1 to %d", store.MaxAuditLimit))
		}
		q.Limit = n
	}
	return q, nil
}
