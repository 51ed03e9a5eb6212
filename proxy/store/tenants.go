package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

// TenantSpec is what CreateTenant needs.
type TenantSpec struct {
	ID string
	// Content.MaxBytes 0 means tenancy.DefaultContentMaxBytes.
	Content tenancy.ContentPolicy
	Limits  tenancy.Limits
}

// TenantPatch changes the fields that are not nil and leaves the rest.
type TenantPatch struct {
	Capture           *bool
	MaxBytes          *int
	RequestsPerMinute *int
	TokensPerMinute   *int
	ConcurrentStreams *int
}

// Tenant is a tenant as the admin sees it: never a key or a credential.
type Tenant struct {
	ID                   string
	CreatedAt, UpdatedAt time.Time
	// Content is as stored: MaxBytes 0 means the default.
	Content tenancy.ContentPolicy
	Limits  tenancy.Limits
	Budgets []tenancy.Budget
	Models  []tenancy.Model
	// Credentials are the deployments the tenant has its own credential
	// for.
	Credentials []string
}

// ids of tenants and keys travel in URLs, spans and logs: keep them plain.
// A tenant's is shorter, so that DefaultKeyID's always fits a key's.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

const (
	maxTenantID = 64
	maxKeyID    = 128
)

func checkID(what, id string, maxLen int) error {
	if !idPattern.MatchString(id) || len(id) > maxLen {
		return fmt.Errorf("%s id %q: %w: use 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit",
			what, id, ErrInvalid, maxLen)
	}
	return nil
}

func checkLimits(l tenancy.Limits) error {
	if l.RequestsPerMinute < 0 || l.TokensPerMinute < 0 || l.ConcurrentStreams < 0 {
		return fmt.Errorf("limits: %w: must not be negative", ErrInvalid)
	}
	return nil
}

// CreateTenant adds a tenant with no models, keys or credentials.
func (s *Store) CreateTenant(ctx context.Context, t TenantSpec) error {
	if err := checkID("tenant", t.ID, maxTenantID); err != nil {
		return err
	}
	if err := checkLimits(t.Limits); err != nil {
		return err
	}
	if t.Content.MaxBytes < 0 {
		return fmt.Errorf("content max bytes: %w: must not be negative", ErrInvalid)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO loom.tenants (id, content_capture, content_max_bytes, rpm, tpm, concurrent_streams)
VALUES ($1, $2, $3, $4, $5, $6)`, t.ID, t.Content.Capture, t.Content.MaxBytes,
			t.Limits.RequestsPerMinute, t.Limits.TokensPerMinute, t.Limits.ConcurrentStreams)
		if err != nil {
			return classify(err)
		}
		c := changeOf(ctx, ActionTenantCreate, tenantTarget(t.ID))
		if err := c.states(nil, tenantStateOf(t.ID, t.Content, t.Limits)); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if err != nil {
		return fmt.Errorf("create tenant %q: %w", t.ID, err)
	}
	return nil
}

// UpdateTenant applies p to tenant id and returns the result.
func (s *Store) UpdateTenant(ctx context.Context, id string, p TenantPatch) (Tenant, error) {
	for _, v := range []*int{p.MaxBytes, p.RequestsPerMinute, p.TokensPerMinute, p.ConcurrentStreams} {
		if v != nil && *v < 0 {
			return Tenant{}, fmt.Errorf("update tenant %q: %w: limits and sizes must not be negative", id, ErrInvalid)
		}
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := lockedTenantState(ctx, tx, id)
		if err != nil {
			return err
		}
		var after tenantState
		err = tx.QueryRow(ctx, `UPDATE loom.tenants SET
    content_capture = COALESCE($2, content_capture), content_max_bytes = COALESCE($3, content_max_bytes),
    rpm = COALESCE($4, rpm), tpm = COALESCE($5, tpm), concurrent_streams = COALESCE($6, concurrent_streams),
    updated_at = now()
WHERE id = $1
RETURNING id, content_capture, content_max_bytes, rpm, tpm, concurrent_streams`,
			id, p.Capture, p.MaxBytes, p.RequestsPerMinute, p.TokensPerMinute, p.ConcurrentStreams).Scan(
			&after.ID, &after.Content.Capture, &after.Content.MaxBytes,
			&after.Limits.RequestsPerMinute, &after.Limits.TokensPerMinute, &after.Limits.ConcurrentStreams)
		if err != nil {
			return classify(err)
		}
		after.Budgets = before.Budgets // an update leaves them
		c := changeOf(ctx, ActionTenantUpdate, tenantTarget(id))
		if err := c.states(before, after); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if errors.Is(err, ErrNotFound) {
		return Tenant{}, err // it says which tenant
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("update tenant %q: %w", id, err)
	}
	return s.GetTenant(ctx, id)
}

// DeleteTenant removes a tenant with its models, keys and credentials. Its
// spans stay.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := lockedTenantState(ctx, tx, id)
		if err != nil {
			return err
		}
		// The entry keeps what goes with the tenant: its models, which
		// credentials it had (redacted) and its keys.
		var models []tenancy.Model
		if err := readModels(ctx, tx, id, func(_ string, m tenancy.Model) { models = append(models, m) }); err != nil {
			return err
		}
		for _, m := range models {
			before.Models = append(before.Models, modelStateOf(m))
		}
		rows, _ := tx.Query(ctx, "SELECT deployment FROM loom.tenant_credentials WHERE tenant_id = $1 ORDER BY deployment", id)
		deps, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, d := range deps {
			before.Credentials = append(before.Credentials, credentialStateOf(d, true))
		}
		keys, err := readKeys(ctx, tx, id, "")
		if err != nil {
			return err
		}
		for _, k := range keys {
			before.Keys = append(before.Keys, keyStateOf(k))
		}
		if _, err := tx.Exec(ctx, "DELETE FROM loom.tenants WHERE id = $1", id); err != nil {
			return err
		}
		c := changeOf(ctx, ActionTenantDelete, tenantTarget(id))
		if err := c.states(before, nil); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if errors.Is(err, ErrNotFound) {
		return err // it says which tenant
	}
	if err != nil {
		return fmt.Errorf("delete tenant %q: %w", id, err)
	}
	return nil
}

// lockedTenantState reads tenant id's own settings and holds its row lock
// for the rest of tx.
func lockedTenantState(ctx context.Context, tx pgx.Tx, id string) (tenantState, error) {
	t := tenantState{ID: id}
	err := tx.QueryRow(ctx, `SELECT content_capture, content_max_bytes, rpm, tpm, concurrent_streams, budgets
FROM loom.tenants WHERE id = $1 FOR UPDATE`, id).Scan(&t.Content.Capture, &t.Content.MaxBytes,
		&t.Limits.RequestsPerMinute, &t.Limits.TokensPerMinute, &t.Limits.ConcurrentStreams, &t.Budgets)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("tenant %q: %w", id, ErrNotFound)
	}
	if len(t.Budgets) == 0 {
		t.Budgets = nil
	}
	return t, err
}

// GetTenant returns one tenant.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	ts, err := s.tenants(ctx, id)
	if err != nil {
		return Tenant{}, err
	}
	if len(ts) == 0 {
		return Tenant{}, fmt.Errorf("tenant %q: %w", id, ErrNotFound)
	}
	return ts[0], nil
}

// ListTenants returns every tenant, by id.
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) { return s.tenants(ctx, "") }

// tenants reads tenant id, or all when id is "", in one snapshot.
func (s *Store) tenants(ctx context.Context, id string) ([]Tenant, error) {
	var out []Tenant
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT id, created_at, updated_at, content_capture, content_max_bytes, rpm, tpm, concurrent_streams, budgets
FROM loom.tenants WHERE $1 = '' OR id = $1 ORDER BY id`, id)
		var t Tenant
		_, err := pgx.ForEachRow(rows, []any{&t.ID, &t.CreatedAt, &t.UpdatedAt, &t.Content.Capture, &t.Content.MaxBytes,
			&t.Limits.RequestsPerMinute, &t.Limits.TokensPerMinute, &t.Limits.ConcurrentStreams, &t.Budgets}, func() error {
			if len(t.Budgets) == 0 {
				t.Budgets = nil
			}
			out = append(out, t)
			t.Budgets = nil // the next row must not decode into this one's slice
			return nil
		})
		if err != nil {
			return err
		}
		byID := make(map[string]*Tenant, len(out))
		for i := range out {
			byID[out[i].ID] = &out[i]
		}
		err = readModels(ctx, tx, id, func(tenant string, m tenancy.Model) {
			if t := byID[tenant]; t != nil {
				t.Models = append(t.Models, m)
			}
		})
		if err != nil {
			return err
		}
		var tenant string
		var dep string
		rows, _ = tx.Query(ctx, `SELECT tenant_id, deployment FROM loom.tenant_credentials
WHERE $1 = '' OR tenant_id = $1 ORDER BY tenant_id, deployment`, id)
		_, err = pgx.ForEachRow(rows, []any{&tenant, &dep}, func() error {
			if t := byID[tenant]; t != nil {
				t.Credentials = append(t.Credentials, dep)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// readModels reads the models of tenant id, or of all when id is "", with
// their deployments, and gives each to add, by tenant and name. A model
// stored with one deployment comes in the short form (Deployment), one
// with several in the long form (Deployments), as they were set.
func readModels(ctx context.Context, tx pgx.Tx, id string, add func(tenant string, m tenancy.Model)) error {
	type modelKey struct{ tenant, name string }
	targets := map[modelKey][]tenancy.Target{}
	var k modelKey
	var d tenancy.Target
	rows, _ := tx.Query(ctx, `SELECT tenant_id, model, deployment, COALESCE(upstream_model, ''), weight, priority
FROM loom.tenant_model_deployments WHERE $1 = '' OR tenant_id = $1 ORDER BY tenant_id, model, position`, id)
	_, err := pgx.ForEachRow(rows, []any{&k.tenant, &k.name, &d.Deployment, &d.UpstreamModel, &d.Weight, &d.Priority}, func() error {
		targets[k] = append(targets[k], d)
		return nil
	})
	if err != nil {
		return err
	}
	var m tenancy.Model
	rows, _ = tx.Query(ctx, `SELECT tenant_id, name, COALESCE(deployment, ''), COALESCE(upstream_model, ''),
    fallbacks, max_attempts, budget
FROM loom.tenant_models WHERE $1 = '' OR tenant_id = $1 ORDER BY tenant_id, name`, id)
	_, err = pgx.ForEachRow(rows, []any{&k.tenant, &m.Name, &m.Deployment, &m.UpstreamModel,
		&m.Fallbacks, &m.Routing.MaxAttempts, &m.Routing.Budget}, func() error {
		k.name = m.Name
		m.Deployments = targets[k]
		if len(m.Fallbacks) == 0 {
			m.Fallbacks = nil // as the configuration file leaves it
		}
		add(k.tenant, m)
		m.Fallbacks = nil // the next row must not scan into this one's slice
		return nil
	})
	return err
}

// SetModels replaces the tenant's models, in either form a configuration
// file may write them (one deployment, or several with weights and
// priorities, fallbacks, a routing override). It checks them as the file's
// are checked (tenancy.ValidateTenant, so the problems and the fields they
// name are the file's), each problem a FieldError. It refuses (ErrInUse)
// to drop a model that a live key is restricted to: the key would either
// lose every model or, read as unrestricted, gain them all.
func (s *Store) SetModels(ctx context.Context, tenant string, models []tenancy.Model) error {
	if err := s.checkModels(models); err != nil {
		return fmt.Errorf("set models of %q: %w", tenant, err)
	}
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockTenant(ctx, tx, tenant); err != nil {
			return err
		}
		var key, model string
		err := tx.QueryRow(ctx, `SELECT k.id, m FROM loom.api_keys k, unnest(k.models) m
WHERE k.tenant_id = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
  AND NOT (m = ANY($2::text[]))
LIMIT 1`, tenant, names).Scan(&key, &model)
		if err == nil {
			return fmt.Errorf("model %q: %w: key %q is restricted to it (revoke the key first)", model, ErrInUse, key)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var before []tenancy.Model
		if err := readModels(ctx, tx, tenant, func(_ string, m tenancy.Model) { before = append(before, m) }); err != nil {
			return err
		}
		// The model rows' delete takes their deployments with them.
		if _, err := tx.Exec(ctx, "DELETE FROM loom.tenant_models WHERE tenant_id = $1", tenant); err != nil {
			return err
		}
		var b pgx.Batch
		for _, m := range models {
			fallbacks := m.Fallbacks
			if fallbacks == nil {
				fallbacks = []string{}
			}
			b.Queue(`INSERT INTO loom.tenant_models (tenant_id, name, deployment, upstream_model, fallbacks, max_attempts, budget)
VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5, $6, $7)`,
				tenant, m.Name, m.Deployment, m.UpstreamModel, fallbacks, m.Routing.MaxAttempts, m.Routing.Budget)
			for pos, d := range m.Deployments {
				b.Queue(`INSERT INTO loom.tenant_model_deployments (tenant_id, model, position, deployment, upstream_model, weight, priority)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7)`, tenant, m.Name, pos, d.Deployment, d.UpstreamModel, d.Weight, d.Priority)
			}
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return classify(err)
		}
		if err := touch(ctx, tx, tenant); err != nil {
			return err
		}
		// The entry's after is what was stored, read back.
		var after []tenancy.Model
		if err := readModels(ctx, tx, tenant, func(_ string, m tenancy.Model) { after = append(after, m) }); err != nil {
			return err
		}
		c := changeOf(ctx, ActionModelsSet, modelsTarget(tenant))
		if err := c.states(modelsStateOf(tenant, before), modelsStateOf(tenant, after)); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if err != nil {
		return fmt.Errorf("set models of %q: %w", tenant, err)
	}
	return nil
}

// checkModels runs the configuration file's checks on models, listing the
// deployments the gateway has where one it lacks is named. A budget finer than
// a microsecond would not survive the round trip (Postgres intervals keep
// microseconds), so it is refused rather than silently changed.
func (s *Store) checkModels(models []tenancy.Model) error {
	has := func(name string) bool { return name != "" && (s.deployments == nil || s.deployments[name]) }
	// The tenant's id is checked where it is made; a placeholder keeps
	// ValidateTenant to the models.
	var errs []error
	for _, e := range unjoin(tenancy.ValidateTenant(tenancy.Tenant{ID: "-", Models: models}, has)) {
		var fe *tenancy.FieldError
		if !errors.As(e, &fe) {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalid, e))
			continue
		}
		msg := fe.Msg
		if s.deployments != nil && strings.HasPrefix(msg, "no deployment named") {
			msg += " (the deployments are: " + s.knownDeployments() + ")"
		}
		errs = append(errs, &FieldError{Field: fe.Field, Msg: msg})
	}
	for i, m := range models {
		if m.Routing.Budget%time.Microsecond != 0 {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("models[%d].routing.budget", i), Msg: "must be a whole number of microseconds"})
		}
	}
	return errors.Join(errs...)
}

// unjoin returns the errors err joins, or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
