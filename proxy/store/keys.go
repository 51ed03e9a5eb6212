package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// KeySpec is what CreateKey needs. Everything but the tenant is optional.
type KeySpec struct {
	// ID names the key in spans and logs; empty means DefaultKeyID.
	ID string
	// Models restricts the key to these of its tenant's models; empty
	// means all of them.
	Models []string
	// ExpiresAt, when set, is when the key stops working.
	ExpiresAt time.Time
	Limits    tenancy.Limits
}

// Key is what the store shows of a key: never the key or its hash.
type Key struct {
	ID, TenantID string
	// Prefix is the key's first PrefixLen characters.
	Prefix    string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: not revoked
	Models    []string
	Limits    tenancy.Limits
	Budgets   []tenancy.Budget
}

// PrefixLen is how much of a key is kept to tell keys apart: "sk-loom-"
// and 4 of its 43 random characters, far too few to use it.
const PrefixLen = 12

// DefaultKeyID is the id CreateKey gives a key whose spec has none: the
// tenant and the first 8 hex digits of the key's SHA-256 (which is stored
// anyway, so this reveals nothing), so that whoever holds the key can
// name it.
func DefaultKeyID(tenantID, key string) string {
	return tenantID + "-" + tenant.Hash(key)[:8]
}

// CreateKey makes a new key for tenant, stores its SHA-256 and prefix, and
// returns the key. This is the only time the key exists outside the
// client: it cannot be shown again.
func (s *Store) CreateKey(ctx context.Context, tenantID string, spec KeySpec) (string, error) {
	key, _, err := tenant.NewKey()
	if err != nil {
		return "", err
	}
	if _, err := s.addKey(ctx, tenantID, key, spec, false); err != nil {
		return "", err
	}
	return key, nil
}

// ErrKeyElsewhere is ImportKey's answer for a key another tenant holds.
var ErrKeyElsewhere = errors.New("the key belongs to another tenant")

// ImportKey registers a key that already exists outside the store (a
// setup's demo key, kept where its users find it) for tenant, as
// CreateKey would have made it: its SHA-256 and prefix are stored, never
// the key, and the entry is a key.create by ctx's actor. It reports
// whether it added the key: a key the tenant already holds (by its hash,
// under any id, revoked or not) is left as it is, so a setup can import
// on every start; one another tenant holds is ErrKeyElsewhere.
func (s *Store) ImportKey(ctx context.Context, tenantID, key string, spec KeySpec) (bool, error) {
	if !strings.HasPrefix(key, tenant.KeyPrefix) || len(key) <= PrefixLen {
		return false, fmt.Errorf("import key for %q: %w: not a Loom key (%s...)", tenantID, ErrInvalid, tenant.KeyPrefix)
	}
	return s.addKey(ctx, tenantID, key, spec, true)
}

// addKey stores key for tenant. With existing set, a key whose hash is
// stored already is not added again (false, nil) when it is tenant's.
func (s *Store) addKey(ctx context.Context, tenantID, key string, spec KeySpec, existing bool) (bool, error) {
	if err := checkLimits(spec.Limits); err != nil {
		return false, err
	}
	if !spec.ExpiresAt.IsZero() && !spec.ExpiresAt.After(time.Now()) {
		return false, fmt.Errorf("expires at %s: %w: already past", spec.ExpiresAt.Format(time.RFC3339), ErrInvalid)
	}
	hash := tenant.Hash(key)
	sum, err := hex.DecodeString(hash)
	if err != nil {
		return false, err
	}
	if spec.ID == "" {
		spec.ID = DefaultKeyID(tenantID, key)
	}
	if err := checkID("key", spec.ID, maxKeyID); err != nil {
		return false, err
	}
	var models []string // nil, stored as NULL: unrestricted
	if len(spec.Models) > 0 {
		models = spec.Models
	}
	var expires *time.Time
	if !spec.ExpiresAt.IsZero() {
		expires = &spec.ExpiresAt
	}
	added := false
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockTenant(ctx, tx, tenantID); err != nil {
			return err
		}
		if existing {
			var holder string
			err := tx.QueryRow(ctx, "SELECT tenant_id FROM loom.api_keys WHERE sha256 = $1", sum).Scan(&holder)
			switch {
			case err == nil && holder == tenantID:
				return nil
			case err == nil:
				return ErrKeyElsewhere // naming the other tenant would tell who holds the key
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
		}
		var missing string
		err := tx.QueryRow(ctx, `SELECT m FROM unnest($2::text[]) m
WHERE NOT EXISTS (SELECT 1 FROM loom.tenant_models WHERE tenant_id = $1 AND name = m) LIMIT 1`,
			tenantID, models).Scan(&missing)
		if err == nil {
			return fmt.Errorf("model %q: %w: not one of the tenant's models", missing, ErrInvalid)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO loom.api_keys (id, tenant_id, sha256, prefix, expires_at, models, rpm, tpm, concurrent_streams)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, spec.ID, tenantID, sum, key[:PrefixLen], expires, models,
			spec.Limits.RequestsPerMinute, spec.Limits.TokensPerMinute, spec.Limits.ConcurrentStreams)
		if err != nil {
			return classify(err)
		}
		made, err := readKeys(ctx, tx, tenantID, spec.ID)
		if err != nil {
			return err
		}
		if len(made) != 1 {
			return fmt.Errorf("key %q vanished after it was made", spec.ID)
		}
		c := changeOf(ctx, ActionKeyCreate, keyTarget(tenantID, spec.ID))
		// The key, its random part and its hash must not reach the entry.
		if err := c.states(nil, keyStateOf(made[0]), key, key[PrefixLen:], hash); err != nil {
			return err
		}
		added = true
		return s.record(ctx, tx, c)
	})
	if err != nil {
		verb := "create"
		if existing {
			verb = "import"
		}
		return false, fmt.Errorf("%s key %q for %q: %w", verb, spec.ID, tenantID, err)
	}
	return added, nil
}

// ListKeys returns the tenant's keys, revoked and expired ones included,
// by id.
func (s *Store) ListKeys(ctx context.Context, tenantID string) ([]Key, error) {
	var out []Key
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM loom.tenants WHERE id = $1", tenantID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("tenant %q: %w", tenantID, ErrNotFound)
		} else if err != nil {
			return err
		}
		var err error
		out, err = readKeys(ctx, tx, tenantID, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list keys of %q: %w", tenantID, err)
	}
	return out, nil
}

// readKeys reads the tenant's keys, or only key id when id is not "", by
// id.
func readKeys(ctx context.Context, tx pgx.Tx, tenantID, id string) ([]Key, error) {
	var out []Key
	rows, _ := tx.Query(ctx, `SELECT id, tenant_id, prefix, created_at, expires_at, revoked_at, models, rpm, tpm, concurrent_streams, budgets
FROM loom.api_keys WHERE tenant_id = $1 AND ($2 = '' OR id = $2) ORDER BY id`, tenantID, id)
	var k Key
	var expires, revoked *time.Time
	_, err := pgx.ForEachRow(rows, []any{&k.ID, &k.TenantID, &k.Prefix, &k.CreatedAt, &expires, &revoked, &k.Models,
		&k.Limits.RequestsPerMinute, &k.Limits.TokensPerMinute, &k.Limits.ConcurrentStreams, &k.Budgets}, func() error {
		k.ExpiresAt, k.RevokedAt = orZero(expires), orZero(revoked)
		if len(k.Budgets) == 0 {
			k.Budgets = nil
		}
		out = append(out, k)
		k.Models, k.Budgets = nil, nil // scanning into a non-nil slice would reuse it
		return nil
	})
	return out, err
}

// RevokeKey stops key id from working, for good. Revoking a revoked key
// does nothing, and so records nothing.
func (s *Store) RevokeKey(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var tenantID string
		var revoked *time.Time
		err := tx.QueryRow(ctx, "SELECT tenant_id, revoked_at FROM loom.api_keys WHERE id = $1 FOR UPDATE", id).Scan(&tenantID, &revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("key %q: %w", id, ErrNotFound)
		}
		if err != nil || revoked != nil {
			return err
		}
		before, err := readKeys(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE loom.api_keys SET revoked_at = now() WHERE id = $1", id); err != nil {
			return err
		}
		after, err := readKeys(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		if len(before) != 1 || len(after) != 1 {
			return fmt.Errorf("key %q vanished while it was revoked", id)
		}
		c := changeOf(ctx, ActionKeyRevoke, keyTarget(tenantID, id))
		if err := c.states(keyStateOf(before[0]), keyStateOf(after[0])); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if errors.Is(err, ErrNotFound) {
		return err // it names the key
	}
	if err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	return nil
}

func orZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
