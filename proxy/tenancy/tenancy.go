// Package tenancy is what a tenant is, as data: its keys (hashes only), its
// models, its limits, its own provider credentials and its content policy.
// Both sources of tenants speak these types: the configuration file (which
// config loads into them) and the Postgres store; the gateway builds its
// snapshot (tenant.Directory) from them.
//
// It imports nothing of Loom's, and Validate is pure: it reads no
// environment and no file, so every source runs the same checks. Key,
// Model, Limits and ContentPolicy carry the file's yaml names, and config
// decodes into them directly; a tenant's credential may name an environment
// variable in the file, so config has its own Tenant and Credential and
// resolves them into these.
package tenancy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Tenant is one customer of the gateway.
type Tenant struct {
	ID     string
	Keys   []Key
	Models []Model
	// Content is the tenant's prompt and completion capture policy.
	Content ContentPolicy
	// Limits apply to the tenant as a whole, all its keys together.
	Limits Limits
	// Budgets cap the tenant's spend, all its keys together, per period.
	Budgets []Budget
	// Credentials are the tenant's own provider credentials.
	Credentials []Credential
}

// Key is an API key, held only as the hex SHA-256 of the key.
type Key struct {
	ID     string `yaml:"id"`
	SHA256 string `yaml:"sha256"`
	// Prefix is the start of the key, kept for people to tell keys apart
	// ("sk-loom-AbCd"); never enough to use it.
	Prefix string `yaml:"prefix"`
	// ExpiresAt, when set, is when the key stops working.
	ExpiresAt time.Time `yaml:"expires_at"`
	// Revoked keys are refused.
	Revoked bool `yaml:"revoked"`
	// Models, when set, restricts the key to these of its tenant's models.
	Models []string `yaml:"models"`
	// Limits apply to this key alone, inside its tenant's.
	Limits Limits `yaml:"limits"`
	// Budgets cap this key's spend per period, inside its tenant's.
	Budgets []Budget `yaml:"budgets"`
}

// Model maps a public model name to the deployments that serve it: one
// (Deployment), or several (Deployments) with weights and priority tiers.
// A call goes to the lowest priority tier first, weighted at random within
// it, then to the next tier, then to the deployments of each of Fallbacks
// in order, moving on only while nothing has reached the client (see
// Routing).
type Model struct {
	Name string `yaml:"name"`
	// Deployment is the one deployment that serves the model; set it or
	// Deployments, not both.
	Deployment string `yaml:"deployment"`
	// UpstreamModel is the name the upstream knows (the deployment name on
	// Azure). Empty means the public name.
	UpstreamModel string `yaml:"upstream_model"`
	// Deployments are several deployments serving the model.
	Deployments []Target `yaml:"deployments"`
	// Fallbacks name other models of the same tenant whose deployments are
	// tried, in order, after this model's own have failed. Only their own
	// deployments: a fallback's fallbacks are not followed.
	Fallbacks []string `yaml:"fallbacks"`
	// Routing overrides the gateway's routing policy for this model; zero
	// fields keep the gateway's.
	Routing Routing `yaml:"routing"`
}

// Target is one of a model's deployments.
type Target struct {
	Deployment string `yaml:"name"`
	// UpstreamModel overrides the model's upstream_model on this
	// deployment (an Azure deployment name differs per region).
	UpstreamModel string `yaml:"upstream_model"`
	// Weight is the deployment's share of its tier's traffic; 0 means 1.
	Weight int `yaml:"weight"`
	// Priority is the deployment's tier: lower tiers are tried first.
	Priority int `yaml:"priority"`
}

// Routing bounds how hard one call tries. Zero fields mean "the default"
// (the gateway's own policy, for a model's override).
type Routing struct {
	// MaxAttempts caps the upstream attempts of one call, fallbacks
	// included (at most MaxAttempts).
	MaxAttempts int `yaml:"max_attempts"`
	// Budget caps the time from a call's arrival within which a new attempt
	// may start (and a stream's held first event may be waited for).
	Budget time.Duration `yaml:"budget"`
}

// MaxAttempts is the most upstream attempts any call may make.
const MaxAttempts = 8

// Targets are the deployments serving m, in the long form whichever form m
// uses.
func (m *Model) Targets() []Target {
	if len(m.Deployments) > 0 {
		return m.Deployments
	}
	return []Target{{Deployment: m.Deployment}}
}

// Limits cap a tenant's or a key's use. Zero means no limit.
type Limits struct {
	RequestsPerMinute int `yaml:"requests_per_minute"`
	TokensPerMinute   int `yaml:"tokens_per_minute"`
	ConcurrentStreams int `yaml:"concurrent_streams"`
}

// Budget caps spend over one period, in the price catalog's currency.
type Budget struct {
	// Period is "day" or "month", in UTC.
	Period string `yaml:"period" json:"period"`
	// Limit is an exact decimal amount ("25.00"); see ParseAmount.
	Limit string `yaml:"limit" json:"limit"`
	// AlertAt is the fraction of Limit (0 < AlertAt <= 1) at which spend
	// is reported once per period; 0 means DefaultAlertAt.
	AlertAt float64 `yaml:"alert_at" json:"alert_at,omitempty"`
}

// Budget periods.
const (
	PeriodDay   = "day"
	PeriodMonth = "month"
)

// DefaultAlertAt is a budget's alert threshold when it sets none.
const DefaultAlertAt = 0.8

// AmountScale is the number of amount units in one currency unit: amounts
// are int64 counts of 1e-12 of the currency, exact for any price per token.
const AmountScale = 1_000_000_000_000

// maxAmountUnits bounds the integer part of an amount so that it fits an
// int64 of 1e-12 units with room to add calls to it.
const maxAmountUnits = 1_000_000

// ErrAmount is ParseAmount's error.
var ErrAmount = errors.New("must be a decimal amount such as 25.00, at least 0, below 1000000, with at most 12 decimals")

// ParseAmount reads an exact decimal amount ("25", "25.00", "0.0005") into
// units of 1e-12 (AmountScale per currency unit). It reads no float: "0.1"
// is exactly 100_000_000_000.
func ParseAmount(s string) (int64, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" && (!dot || frac == "") || len(frac) > 12 || len(whole) > 7 {
		return 0, ErrAmount
	}
	var w, f int64
	for _, c := range []byte(whole) {
		if c < '0' || c > '9' {
			return 0, ErrAmount
		}
		w = w*10 + int64(c-'0')
	}
	if dot && frac == "" {
		return 0, ErrAmount
	}
	scale := int64(AmountScale)
	for _, c := range []byte(frac) {
		if c < '0' || c > '9' {
			return 0, ErrAmount
		}
		scale /= 10
		f += int64(c-'0') * scale
	}
	if w >= maxAmountUnits {
		return 0, ErrAmount
	}
	return w*AmountScale + f, nil
}

// ContentPolicy decides whether a tenant's prompts and completions are put
// on its spans (gen_ai.input.messages, gen_ai.output.messages). Off unless
// the tenant opts in.
type ContentPolicy struct {
	Capture bool `yaml:"capture"`
	// MaxBytes caps each of input and output; longer content is cut and the
	// span says so (loom.content.truncated).
	MaxBytes int `yaml:"max_bytes"`
}

// DefaultContentMaxBytes is the capture cap when a policy sets none.
const DefaultContentMaxBytes = 16 << 10

// Credential is a tenant's own credential for a deployment: that tenant's
// calls to it carry this instead of the deployment's.
type Credential struct {
	Deployment string
	// APIKey is the secret itself. It must never be logged. Empty is not
	// a credential: the calls would carry the deployment's own.
	APIKey string
}

// Validate reports every problem of a snapshot of tenants, each naming its
// field ("tenants[1].keys[0].sha256: ..."), in the order of the tenants and
// of their fields. Tenant ids, key ids and key hashes must be unique across
// the snapshot; models and credentials must name a deployment for which
// hasDeployment is true.
func Validate(tenants []Tenant, hasDeployment func(name string) bool) error {
	v := newValidator(hasDeployment)
	for i, t := range tenants {
		v.tenant(fmt.Sprintf("tenants[%d]", i), t)
	}
	return errors.Join(v.errs...)
}

// ValidateTenant reports the problems of one tenant on its own, its fields
// named within it ("models[0].deployment: ...").
func ValidateTenant(t Tenant, hasDeployment func(name string) bool) error {
	v := newValidator(hasDeployment)
	v.tenant("", t)
	return errors.Join(v.errs...)
}

type validator struct {
	hasDeployment           func(string) bool
	tenants, keyIDs, hashes map[string]bool
	errs                    []error
}

func newValidator(hasDeployment func(string) bool) *validator {
	return &validator{hasDeployment: hasDeployment, tenants: map[string]bool{}, keyIDs: map[string]bool{}, hashes: map[string]bool{}}
}

// FieldError is one problem Validate reports, with the field it names
// apart, so that an API can point at the field (as a parameter) while its
// message still reads "field: problem".
type FieldError struct {
	Field, Msg string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func (v *validator) bad(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// field names name within prefix ("" for none).
func field(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (v *validator) tenant(f string, t Tenant) {
	switch {
	case t.ID == "":
		v.bad(field(f, "id"), "is required")
	case v.tenants[t.ID]:
		v.bad(field(f, "id"), "%q is defined twice", t.ID)
	}
	v.tenants[t.ID] = true
	for j, k := range t.Keys {
		kf := field(f, fmt.Sprintf("keys[%d]", j))
		switch {
		case k.ID == "":
			v.bad(kf+".id", "is required")
		case v.keyIDs[k.ID]:
			v.bad(kf+".id", "%q is used twice", k.ID)
		}
		v.keyIDs[k.ID] = true
		if h, err := hex.DecodeString(k.SHA256); err != nil || len(h) != 32 {
			v.bad(kf+".sha256", "must be 64 hex characters (the SHA-256 of the key; see `loom keys new`)")
		} else if v.hashes[strings.ToLower(k.SHA256)] {
			v.bad(kf+".sha256", "the same key is configured twice")
		}
		v.hashes[strings.ToLower(k.SHA256)] = true
		v.limits(kf+".limits", k.Limits)
		v.budgets(kf+".budgets", k.Budgets)
		for _, m := range k.Models {
			if !hasModel(t, m) {
				v.bad(kf+".models", "%q is not one of the tenant's models", m)
			}
		}
	}
	if t.Content.MaxBytes < 0 {
		v.bad(field(f, "content.max_bytes"), "must not be negative")
	}
	v.limits(field(f, "limits"), t.Limits)
	v.budgets(field(f, "budgets"), t.Budgets)
	for j, cr := range t.Credentials {
		cf := field(f, fmt.Sprintf("credentials[%d]", j))
		if !v.hasDeployment(cr.Deployment) {
			v.bad(cf+".deployment", "no deployment named %q", cr.Deployment)
		}
		if cr.APIKey == "" {
			v.bad(cf+".api_key", "is empty")
		}
	}
	models := map[string]bool{}
	for j, m := range t.Models {
		mf := field(f, fmt.Sprintf("models[%d]", j))
		switch {
		case m.Name == "":
			v.bad(mf+".name", "is required")
		case models[m.Name]:
			v.bad(mf+".name", "%q is listed twice", m.Name)
		}
		models[m.Name] = true
		v.model(mf, t, m)
	}
}

func (v *validator) model(mf string, t Tenant, m Model) {
	if len(m.Deployments) == 0 {
		if !v.hasDeployment(m.Deployment) {
			v.bad(mf+".deployment", "no deployment named %q", m.Deployment)
		}
	} else if m.Deployment != "" {
		v.bad(mf, "set deployment or deployments, not both")
	}
	seen := map[string]bool{}
	for k, d := range m.Deployments {
		df := fmt.Sprintf("%s.deployments[%d]", mf, k)
		switch {
		case !v.hasDeployment(d.Deployment):
			v.bad(df+".name", "no deployment named %q", d.Deployment)
		case seen[d.Deployment]:
			v.bad(df+".name", "%q is listed twice", d.Deployment)
		}
		seen[d.Deployment] = true
		if d.Weight < 0 {
			v.bad(df+".weight", "must not be negative, got %d", d.Weight)
		}
		if d.Priority < 0 {
			v.bad(df+".priority", "must not be negative, got %d", d.Priority)
		}
	}
	fallbacks := map[string]bool{}
	for k, fb := range m.Fallbacks {
		ff := fmt.Sprintf("%s.fallbacks[%d]", mf, k)
		switch {
		case fb == m.Name:
			v.bad(ff, "a model cannot fall back to itself")
		case !hasModel(t, fb):
			v.bad(ff, "%q is not one of the tenant's models", fb)
		case fallbacks[fb]:
			v.bad(ff, "%q is listed twice", fb)
		}
		fallbacks[fb] = true
	}
	ValidateRouting(mf+".routing", m.Routing, v.bad)
}

// ValidateRouting reports a routing policy's problems to bad, each field
// named under f.
func ValidateRouting(f string, r Routing, bad func(field, format string, args ...any)) {
	if r.MaxAttempts < 0 || r.MaxAttempts > MaxAttempts {
		bad(f+".max_attempts", "must be between 1 and %d, got %d", MaxAttempts, r.MaxAttempts)
	}
	if r.Budget < 0 {
		bad(f+".budget", "must not be negative")
	}
}

func (v *validator) limits(f string, l Limits) {
	if l.RequestsPerMinute < 0 || l.TokensPerMinute < 0 || l.ConcurrentStreams < 0 {
		v.bad(f, "limits must not be negative")
	}
}

// ValidateBudgets reports the problems of one subject's budgets, each a
// FieldError named under f ("budgets[0].limit: ...").
func ValidateBudgets(f string, bs []Budget) error {
	v := newValidator(func(string) bool { return false })
	v.budgets(f, bs)
	return errors.Join(v.errs...)
}

// budgets checks a subject's budgets: a known period, at most one budget
// per period, an exact limit, a threshold within (0, 1].
func (v *validator) budgets(f string, bs []Budget) {
	seen := map[string]bool{}
	for i, b := range bs {
		bf := fmt.Sprintf("%s[%d]", f, i)
		switch {
		case b.Period != PeriodDay && b.Period != PeriodMonth:
			v.bad(bf+".period", "must be %q or %q, got %q", PeriodDay, PeriodMonth, b.Period)
		case seen[b.Period]:
			v.bad(bf+".period", "a second %s budget (one per period)", b.Period)
		}
		seen[b.Period] = true
		if _, err := ParseAmount(b.Limit); err != nil {
			v.bad(bf+".limit", "%q %v", b.Limit, err)
		}
		if b.AlertAt < 0 || b.AlertAt > 1 || b.AlertAt != b.AlertAt {
			v.bad(bf+".alert_at", "must be a fraction of the limit between 0 and 1, got %v", b.AlertAt)
		}
	}
}

func hasModel(t Tenant, name string) bool {
	for _, m := range t.Models {
		if m.Name == name {
			return true
		}
	}
	return false
}
