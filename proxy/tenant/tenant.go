// Package tenant resolves an API key to its tenant and a model name to the
// tenant's route. A Directory is an immutable snapshot built from the
// tenancy types (from the file or the store): lookups never lock and never
// allocate, and a new snapshot replaces the old one whole. Keys exist here
// only as SHA-256 hashes.
package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/loom-gateway/loom/proxy/budget"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/limit"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// Directory maps key hashes to keys and tenants to their routes.
type Directory struct {
	keys    map[[sha256.Size]byte]*Key
	byID    map[string]*Key
	tenants map[string]*Tenant
}

// Key is one API key. It holds no secret: only its id, its tenant and
// what it may do.
type Key struct {
	ID     string
	Tenant *Tenant
	// Limit is the key's own rate-limit subject. Its id is stable across
	// snapshots, so a reload keeps the counts.
	Limit limit.Subject
	// Budget is the key's own spend caps (no rules: none); its id is stable
	// across snapshots, so a reload keeps the spend.
	Budget budget.Subject
	// expires is when the key stops working (Unix ns); 0 never.
	expires int64
	// models restricts the key to some of its tenant's models; nil allows
	// all. modelsJSON/modelJSON are its own /v1/models answers then.
	models     map[string]bool
	modelsJSON []byte
	modelJSON  map[string][]byte
}

// Tenant is one customer with its models.
type Tenant struct {
	ID string
	// Limit is the tenant's rate-limit subject, all its keys together.
	Limit limit.Subject
	// Budget is the tenant's spend caps, all its keys together.
	Budget budget.Subject
	// Content is the tenant's prompt and completion capture policy.
	Content    tenancy.ContentPolicy
	routes     map[string]*Route
	modelsJSON []byte
	modelJSON  map[string][]byte
}

// Route is where one of a tenant's models goes: its deployments (Targets)
// and its fallbacks'. Model, UpstreamModel, Upstream and Auth are those of
// its first deployment as configured, for what needs one (the owner in
// /v1/models); a call tries Candidates.
type Route struct {
	Model         string
	UpstreamModel string
	Upstream      *upstream.Deployment
	// Auth is the tenant's own credential for Upstream, if it has one; the
	// zero Auth means the deployment's.
	Auth  upstream.Auth
	paths [3]string // chat, text_completion, embeddings
	// Routing is the model's own routing policy (zero fields: the
	// gateway's).
	Routing tenancy.Routing
	// Targets are the model's own deployments, in configuration order.
	Targets []*Target
	// tiers are what Candidates orders: the model's own targets grouped by
	// priority (lowest first), then each fallback's the same way.
	tiers [][]*Target
}

// Target is one deployment a route can send a call to.
type Target struct {
	// Model is the tenant model the target belongs to: the route's own,
	// or, when Fallback is set, the fallback model's.
	Model         string
	Fallback      bool
	UpstreamModel string
	Upstream      *upstream.Deployment
	// Auth is the tenant's own credential for Upstream (see Route.Auth).
	Auth             upstream.Auth
	Weight, Priority int
	paths            [3]string
}

// Path is the upstream path for op on this target.
func (t *Target) Path(op call.Operation) string { return pathOf(&t.paths, op) }

// Candidates appends to dst the targets a call tries, in order: the
// model's own deployments by priority tier (lowest first) and, within a
// tier, in a weighted random order (each next one drawn with probability
// weight over the weights left); then each fallback model's deployments
// the same way. rnd(n) returns a uniform integer in [0, n). It allocates
// nothing when dst has room.
func (r *Route) Candidates(dst []*Target, rnd func(n int) int) []*Target {
	for _, tier := range r.tiers {
		start := len(dst)
		dst = append(dst, tier...)
		for k := start; k < len(dst)-1; k++ {
			total := 0
			for _, t := range dst[k:] {
				total += t.Weight
			}
			x := rnd(total)
			for j := k; j < len(dst); j++ {
				if x -= dst[j].Weight; x < 0 {
					dst[k], dst[j] = dst[j], dst[k]
					break
				}
			}
		}
	}
	return dst
}

// Build makes a directory from validated tenants (tenancy.Validate) and the
// live deployments (keyed by name). Revoked keys are left out.
func Build(tenants []tenancy.Tenant, deployments map[string]*upstream.Deployment) (*Directory, error) {
	d := &Directory{keys: map[[sha256.Size]byte]*Key{}, byID: map[string]*Key{}, tenants: map[string]*Tenant{}}
	created := time.Now().Unix()
	for _, tc := range tenants {
		t := &Tenant{ID: tc.ID, Content: tc.Content, Limit: limit.Subject{ID: "t:" + tc.ID, Rule: limit.RuleOf(tc.Limits)}, routes: map[string]*Route{}, modelJSON: map[string][]byte{}}
		rules, err := budget.RulesOf(tc.Budgets)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", tc.ID, err)
		}
		t.Budget = budget.Subject{ID: "t:" + tc.ID, TenantID: tc.ID, Rules: rules}
		own := map[string]string{}
		for _, c := range tc.Credentials {
			own[c.Deployment] = c.APIKey
		}
		for _, m := range tc.Models {
			r := &Route{Model: m.Name, Routing: m.Routing}
			for _, tg := range m.Targets() {
				dep, ok := deployments[tg.Deployment]
				if !ok {
					return nil, fmt.Errorf("tenant %s model %s: no deployment %q", tc.ID, m.Name, tg.Deployment)
				}
				up := tg.UpstreamModel
				if up == "" {
					up = m.UpstreamModel
				}
				if up == "" {
					up = m.Name
				}
				x := &Target{Model: m.Name, UpstreamModel: up, Upstream: dep, Auth: dep.Auth(own[tg.Deployment]),
					Weight: max(tg.Weight, 1), Priority: tg.Priority}
				for i, op := range []call.Operation{call.OpChat, call.OpTextCompletion, call.OpEmbeddings} {
					x.paths[i] = dep.Path(op, up)
				}
				r.Targets = append(r.Targets, x)
			}
			first := r.Targets[0]
			r.UpstreamModel, r.Upstream, r.Auth, r.paths = first.UpstreamModel, first.Upstream, first.Auth, first.paths
			r.tiers = tiers(r.Targets, false)
			t.routes[m.Name] = r
		}
		// Fallbacks, once every model has its route: a fallback's own
		// targets, marked as such (its fallbacks are not followed).
		for _, m := range tc.Models {
			r := t.routes[m.Name]
			for _, fb := range m.Fallbacks {
				f, ok := t.routes[fb]
				if !ok {
					return nil, fmt.Errorf("tenant %s model %s: no fallback model %q", tc.ID, m.Name, fb)
				}
				r.tiers = append(r.tiers, tiers(f.Targets, true)...)
			}
		}
		t.modelsJSON = renderModels(t.routes, nil, t.modelJSON, created)
		d.tenants[t.ID] = t
		for _, k := range tc.Keys {
			if k.Revoked {
				continue
			}
			var h [sha256.Size]byte
			if _, err := hex.Decode(h[:], []byte(k.SHA256)); err != nil {
				return nil, fmt.Errorf("tenant %s key %s: %w", tc.ID, k.ID, err)
			}
			key := &Key{ID: k.ID, Tenant: t, Limit: limit.Subject{ID: "k:" + k.ID, Rule: limit.RuleOf(k.Limits)}}
			rules, err := budget.RulesOf(k.Budgets)
			if err != nil {
				return nil, fmt.Errorf("tenant %s key %s: %w", tc.ID, k.ID, err)
			}
			key.Budget = budget.Subject{ID: "k:" + k.ID, TenantID: tc.ID, KeyID: k.ID, Rules: rules}
			if !k.ExpiresAt.IsZero() {
				key.expires = k.ExpiresAt.UnixNano()
			}
			if len(k.Models) > 0 {
				key.models, key.modelJSON = map[string]bool{}, map[string][]byte{}
				for _, m := range k.Models {
					key.models[m] = true
				}
				key.modelsJSON = renderModels(t.routes, key.models, key.modelJSON, created)
			}
			d.keys[h] = key
			d.byID[k.ID] = key
		}
	}
	return d, nil
}

// Authenticate finds the key whose hash matches key, unless it has expired.
func (d *Directory) Authenticate(key []byte) (*Key, bool) {
	k, ok := d.keys[sha256.Sum256(key)]
	if ok && k.expires != 0 && time.Now().UnixNano() >= k.expires {
		return nil, false
	}
	return k, ok
}

// Live reports whether the key with this id belongs to tenantID and would
// authenticate now: it exists in this snapshot (revoked keys are left out),
// has not expired, and its tenant is served. A session made with a key
// (the console's) is only as good as the key.
func (d *Directory) Live(tenantID, keyID string) bool {
	k, ok := d.byID[keyID]
	if !ok || k.Tenant.ID != tenantID || (k.expires != 0 && time.Now().UnixNano() >= k.expires) {
		return false
	}
	return d.tenants[tenantID] == k.Tenant
}

// Route finds the route for a public model name, within the key's
// restriction: a model the key may not use does not exist for it.
func (k *Key) Route(model []byte) (*Route, bool) {
	if k.models != nil && !k.models[string(model)] {
		return nil, false
	}
	return k.Tenant.Route(model)
}

// ModelsJSON is the key's GET /v1/models body: its tenant's models, or the
// ones the key is restricted to.
func (k *Key) ModelsJSON() []byte {
	if k.models != nil {
		return k.modelsJSON
	}
	return k.Tenant.modelsJSON
}

// ModelJSON is the key's GET /v1/models/{model} body.
func (k *Key) ModelJSON(model []byte) ([]byte, bool) {
	if k.models != nil {
		b, ok := k.modelJSON[string(model)]
		return b, ok
	}
	return k.Tenant.ModelJSON(model)
}

// Tenant returns a tenant by id.
func (d *Directory) Tenant(id string) (*Tenant, bool) {
	t, ok := d.tenants[id]
	return t, ok
}

// Route finds the tenant's route for a public model name.
func (t *Tenant) Route(model []byte) (*Route, bool) {
	r, ok := t.routes[string(model)]
	return r, ok
}

// ModelsJSON is the tenant's GET /v1/models body.
func (t *Tenant) ModelsJSON() []byte { return t.modelsJSON }

// ModelJSON is the tenant's GET /v1/models/{model} body.
func (t *Tenant) ModelJSON(model []byte) ([]byte, bool) {
	b, ok := t.modelJSON[string(model)]
	return b, ok
}

// renderModels renders the /v1/models list of routes (those in allow, if
// set), filling one[name] with each model's own body.
func renderModels(routes map[string]*Route, allow map[string]bool, one map[string][]byte, created int64) []byte {
	names := make([]string, 0, len(routes))
	for n := range routes {
		if allow == nil || allow[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	b := []byte(`{"object":"list","data":[`)
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		start := len(b)
		b = append(b, `{"id":`...)
		b = json.AppendQuote(b, n)
		b = append(b, `,"object":"model","created":`...)
		b = strconv.AppendInt(b, created, 10)
		b = append(b, `,"owned_by":`...)
		b = json.AppendQuote(b, routes[n].Upstream.Provider)
		b = append(b, '}')
		one[n] = b[start:len(b):len(b)]
	}
	return append(b, "]}"...)
}

// Path is the upstream path for op on this route's first deployment.
func (r *Route) Path(op call.Operation) string { return pathOf(&r.paths, op) }

func pathOf(paths *[3]string, op call.Operation) string {
	switch op {
	case call.OpTextCompletion:
		return paths[1]
	case call.OpEmbeddings:
		return paths[2]
	}
	return paths[0]
}

// tiers groups targets by priority, lowest first, keeping their order
// within a tier; fallback marks copies as a fallback's.
func tiers(targets []*Target, fallback bool) [][]*Target {
	sorted := make([]*Target, len(targets))
	for i, t := range targets {
		if fallback {
			c := *t
			c.Fallback = true
			t = &c
		}
		sorted[i] = t
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Priority < sorted[j].Priority })
	var out [][]*Target
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].Priority == sorted[i].Priority {
			j++
		}
		out = append(out, sorted[i:j:j])
		i = j
	}
	return out
}

// KeyPrefix starts every key Loom issues, so leaked keys are easy to find
// with secret scanners.
const KeyPrefix = "sk-loom-"

// NewKey returns a fresh random API key and its hex SHA-256, the only form
// in which the key is stored.
func NewKey() (key, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, Hash(key), nil
}

// Hash is the hex SHA-256 of key.
func Hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}
