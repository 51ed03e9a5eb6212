package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// The admin audit log: every change made through the store is an entry in
// the ledger's system chain, written in the same transaction as the change,
// so that a change without its entry cannot be committed. An entry says who
// (the Actor in the context), what (an action, a target, the target's state
// before and after as JSON) and when. Secrets never reach an entry: a
// credential is "[redacted]" with whether it is set, a key shows its id and
// prefix, never the key or its hash.

// Actor kinds.
const (
	// ActorAdminToken is a change through the admin API; the id is the
	// admin token's (see the admin package's TokenID), never the token.
	ActorAdminToken = "admin_token"
	// ActorOperator is a change through the loom command; the id is the
	// operator's name (-actor, $LOOM_ACTOR or the OS user).
	ActorOperator = "operator"
	// ActorTenantKey is a change a tenant made for itself through the web
	// console (its own keys); the id is the id of the key its session
	// logged in with, never the key.
	ActorTenantKey = "tenant_key"
	// ActorUnattributed is the actor of a change whose context carries
	// none (a program that uses the store directly): the change is
	// recorded all the same, saying that nobody claimed it.
	ActorUnattributed = "unattributed"
)

// Actions, "<what>.<verb>", as entries name them.
const (
	ActionTenantCreate     = "tenant.create"
	ActionTenantUpdate     = "tenant.update"
	ActionTenantDelete     = "tenant.delete"
	ActionModelsSet        = "models.set"
	ActionCredentialSet    = "credential.set"
	ActionCredentialDelete = "credential.delete"
	ActionKeyCreate        = "key.create"
	ActionKeyRevoke        = "key.revoke"
	ActionBudgetsSet       = "budgets.set"
	ActionPriceAdd         = "price.add"
	ActionPriceDelete      = "price.delete"
)

// Actions lists every action the store records, for readers and tests.
var Actions = []string{ActionTenantCreate, ActionTenantUpdate, ActionTenantDelete, ActionModelsSet,
	ActionCredentialSet, ActionCredentialDelete, ActionKeyCreate, ActionKeyRevoke, ActionBudgetsSet, ActionPriceAdd, ActionPriceDelete}

// Redacted stands for a secret in an entry.
const Redacted = "[redacted]"

// Bounds on what an actor brings: its id and request id come from a header
// or the environment, untrusted.
const (
	maxActorID   = 128
	maxRequestID = 128
)

// Actor is who makes a change, and in answer to which request.
type Actor struct {
	// Kind is ActorAdminToken, ActorOperator or ActorTenantKey.
	Kind string `json:"kind"`
	// ID names the actor and is never a secret.
	ID string `json:"id"`
	// RequestID ties the change to the request (or command) that made it.
	RequestID string `json:"request_id,omitempty"`
}

type actorKey struct{}

// WithActor returns ctx carrying a: every change the store makes under it
// is recorded as a's.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor ctx carries.
func ActorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// actorOf is the actor a change under ctx is recorded as: ctx's, cleaned
// of what would not belong in a record, or ActorUnattributed.
func actorOf(ctx context.Context) Actor {
	a, ok := ActorFrom(ctx)
	if !ok || a.Kind == "" {
		a.Kind = ActorUnattributed
	}
	return Actor{Kind: clean(a.Kind, maxActorID), ID: clean(a.ID, maxActorID), RequestID: clean(a.RequestID, maxRequestID)}
}

// NewRequestID returns a random request id (16 hex digits) for a change
// that came with none.
func NewRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clean keeps s to at most n bytes of valid UTF-8 with no control
// characters: an actor's name must not forge lines in a log or a table.
func clean(s string, n int) string {
	ok := len(s) <= n && utf8.ValidString(s)
	for _, r := range s {
		if !ok || unicode.IsControl(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > n {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Change is one change as the audit log keeps it.
type Change struct {
	Actor  Actor
	Action string
	// Target names what changed as a path that starts with its tenant:
	// "acme", "acme/models", "acme/budgets", "acme/credentials/openai",
	// "acme/keys/acme-ci", "acme/keys/acme-ci/budgets";
	// or, for what is no tenant's, with "/": "/prices/gpt-4o:2026-01-01T00:00:00Z"
	// (TargetTenant reads the tenant back).
	Target string
	// Before and After are the target's state as JSON with secrets
	// redacted; nil where it did not exist (before a create, after a
	// delete).
	Before, After []byte
	Time          time.Time
}

// TargetTenant is the tenant a target belongs to ("" for none: a tenant
// id never starts with "/"): what a tenant may read of the audit log is
// the entries whose target is its own.
func TargetTenant(target string) string {
	t, _, _ := strings.Cut(target, "/")
	return t
}

// Targets of each kind of change.
func tenantTarget(id string) string              { return id }
func modelsTarget(tenant string) string          { return tenant + "/models" }
func credentialTarget(tenant, dep string) string { return tenant + "/credentials/" + dep }
func keyTarget(tenant, id string) string         { return tenant + "/keys/" + id }
func priceTarget(id string) string               { return "/prices/" + id }
func budgetsTarget(subject string) string        { return subject + "/budgets" }

// changeOf begins the record of a change under ctx's actor, made now.
func changeOf(ctx context.Context, action, target string) Change {
	return Change{Actor: actorOf(ctx), Action: action, Target: target, Time: time.Now().UTC()}
}

// The states entries record: the admin API's field names, and never a
// secret, by construction. Each has the fields its change can touch.

type limitsState struct {
	RequestsPerMinute int `json:"requests_per_minute"`
	TokensPerMinute   int `json:"tokens_per_minute"`
	ConcurrentStreams int `json:"concurrent_streams"`
}

type contentState struct {
	Capture  bool `json:"capture"`
	MaxBytes int  `json:"max_bytes"`
}

// tenantState is a tenant's own settings; a deleted tenant's state also
// lists what went with it.
type tenantState struct {
	ID          string            `json:"id"`
	Content     contentState      `json:"content"`
	Limits      limitsState       `json:"limits"`
	Budgets     []tenancy.Budget  `json:"budgets,omitempty"`
	Models      []modelState      `json:"models,omitempty"`
	Credentials []credentialState `json:"credentials,omitempty"`
	Keys        []keyState        `json:"keys,omitempty"`
}

type modelState struct {
	Name          string        `json:"name"`
	Deployment    string        `json:"deployment,omitempty"`
	UpstreamModel string        `json:"upstream_model,omitempty"`
	Deployments   []targetState `json:"deployments,omitempty"`
	Fallbacks     []string      `json:"fallbacks,omitempty"`
	MaxAttempts   int           `json:"max_attempts,omitempty"`
	Budget        string        `json:"budget,omitempty"`
}

type targetState struct {
	Name          string `json:"name"`
	UpstreamModel string `json:"upstream_model,omitempty"`
	Weight        int    `json:"weight,omitempty"`
	Priority      int    `json:"priority,omitempty"`
}

type modelsState struct {
	Tenant string       `json:"tenant"`
	Models []modelState `json:"models"`
}

// credentialState says whether a credential is set, never what it is.
type credentialState struct {
	Deployment string `json:"deployment"`
	Set        bool   `json:"set"`
	APIKey     string `json:"api_key,omitempty"` // Redacted when set
}

// keyState is a key as ListKeys shows it: its id and prefix, never the
// key or its hash.
type keyState struct {
	ID        string           `json:"id"`
	TenantID  string           `json:"tenant_id"`
	Prefix    string           `json:"prefix"`
	ExpiresAt *time.Time       `json:"expires_at"`
	RevokedAt *time.Time       `json:"revoked_at"`
	Models    []string         `json:"models"`
	Limits    limitsState      `json:"limits"`
	Budgets   []tenancy.Budget `json:"budgets,omitempty"`
}

// budgetsState is a tenant's or a key's budgets: [] for none.
type budgetsState struct {
	Budgets []tenancy.Budget `json:"budgets"`
}

func budgetsStateOf(bs []tenancy.Budget) budgetsState {
	if bs == nil {
		bs = []tenancy.Budget{}
	}
	return budgetsState{Budgets: bs}
}

func tenantStateOf(id string, c tenancy.ContentPolicy, l tenancy.Limits) tenantState {
	return tenantState{ID: id, Content: contentState{Capture: c.Capture, MaxBytes: c.MaxBytes}, Limits: limitsState(l)}
}

func modelStateOf(m tenancy.Model) modelState {
	out := modelState{Name: m.Name, Deployment: m.Deployment, UpstreamModel: m.UpstreamModel, Fallbacks: m.Fallbacks,
		MaxAttempts: m.Routing.MaxAttempts}
	if m.Routing.Budget != 0 {
		out.Budget = m.Routing.Budget.String()
	}
	for _, d := range m.Deployments {
		out.Deployments = append(out.Deployments, targetState{Name: d.Deployment, UpstreamModel: d.UpstreamModel,
			Weight: d.Weight, Priority: d.Priority})
	}
	return out
}

func modelsStateOf(tenant string, models []tenancy.Model) modelsState {
	out := modelsState{Tenant: tenant, Models: []modelState{}}
	for _, m := range models {
		out.Models = append(out.Models, modelStateOf(m))
	}
	return out
}

// credentialStateOf is a credential as entries show it: set or not, its
// value always Redacted.
func credentialStateOf(deployment string, set bool) credentialState {
	s := credentialState{Deployment: deployment, Set: set}
	if set {
		s.APIKey = Redacted
	}
	return s
}

func keyStateOf(k Key) keyState {
	out := keyState{ID: k.ID, TenantID: k.TenantID, Prefix: k.Prefix, Models: k.Models, Limits: limitsState(k.Limits),
		Budgets: k.Budgets}
	if !k.ExpiresAt.IsZero() {
		e := k.ExpiresAt.UTC()
		out.ExpiresAt = &e
	}
	if !k.RevokedAt.IsZero() {
		r := k.RevokedAt.UTC()
		out.RevokedAt = &r
	}
	return out
}

// ErrRequestIDReused means a change came with a request id that an earlier
// change of the same action already has: the ledger keeps one entry per
// action and request id, so the change is refused rather than left
// without its entry. A client that retries a change with the same
// X-Request-Id gets this once the first attempt went through.
var ErrRequestIDReused = errors.New("request id already used for this action")

// ErrSecretInEntry means an entry would have held a secret: the change is
// refused rather than recorded with it. It is a bug, never an input error.
var ErrSecretInEntry = errors.New("audit entry would hold a secret")

// states encodes c's before and after (nil stays nil) and refuses the entry
// if any of secrets (the credential or key this change handled, in any
// form it is known in) shows anywhere in it.
func (c *Change) states(before, after any, secrets ...string) error {
	var err error
	if c.Before, err = encodeState(before); err != nil {
		return fmt.Errorf("audit %s %s: %w", c.Action, c.Target, err)
	}
	if c.After, err = encodeState(after); err != nil {
		return fmt.Errorf("audit %s %s: %w", c.Action, c.Target, err)
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, part := range [][]byte{c.Before, c.After, []byte(c.Target), []byte(c.Actor.ID), []byte(c.Actor.RequestID)} {
			if strings.Contains(string(part), s) {
				// Say which action, never the secret, nor the target that
				// may be holding it.
				return fmt.Errorf("audit %s: %w", c.Action, ErrSecretInEntry)
			}
		}
	}
	return nil
}

func encodeState(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}
