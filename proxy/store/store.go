// Package store is the Postgres tenant store: tenants, their models, API
// keys (as SHA-256 hashes), limits, content policies and sealed provider
// credentials, in the loom schema (proxy/schema migration 0002). The
// proxy serves from a snapshot that Load takes and Watch keeps fresh; the
// admin API and the CLI change it through the methods here, and each change
// is an entry of the admin audit log, written in its transaction (audit.go).
//
// It must never store or return an API key except the once CreateKey makes
// it, never store a credential unsealed, and never put either in an error.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/secret"
)

var (
	// ErrNotFound means the tenant, key or credential does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a tenant or key with that id (or that key) exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid means the request itself is wrong (an empty id, a negative
	// limit, a key restricted to a model its tenant lacks).
	ErrInvalid = errors.New("invalid")
	// ErrInUse means a change would break something that depends on it: a
	// model that a live key is restricted to.
	ErrInUse = errors.New("in use")
	// ErrNoSecretKey means credentials are involved but the store was
	// opened without a credential encryption key.
	ErrNoSecretKey = errors.New("no credential encryption key configured (store.secret_key_env or store.secret_key_file)")
)

// FieldError is an ErrInvalid that names the request field at fault
// ("models[0].deployment"), so the admin API can point at it.
type FieldError struct {
	Field, Msg string
}

func (e *FieldError) Error() string        { return e.Field + ": " + e.Msg }
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Store is a pool of connections to the tenant store. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
	box  *secret.Box // nil: no credentials can be set or loaded
	log  *slog.Logger
	// deployments, when set, are the names a model or credential may
	// name: a typo is refused here rather than quarantining the tenant
	// in every gateway's snapshot.
	deployments map[string]bool
	// observe, when set (by tests), sees each change as it is recorded.
	observe func(Change)
}

// Option adjusts Open.
type Option func(*Store)

// WithLogger sends Watch's connection reports to log (by default they are
// dropped).
func WithLogger(log *slog.Logger) Option { return func(s *Store) { s.log = log } }

// WithDeployments makes SetModels and SetCredential refuse a deployment
// not in names (the gateway's configured deployments). Without it they
// cannot check: the store does not know the gateway's configuration.
func WithDeployments(names []string) Option {
	return func(s *Store) {
		s.deployments = make(map[string]bool, len(names))
		for _, n := range names {
			s.deployments[n] = true
		}
	}
}

// checkDeployment refuses a deployment the gateway does not have, when the
// store was told which it has.
func (s *Store) checkDeployment(field, name string) error {
	if s.deployments == nil || s.deployments[name] {
		return nil
	}
	return &FieldError{Field: field, Msg: fmt.Sprintf("no deployment named %q (the deployments are: %s)", name, s.knownDeployments())}
}

// knownDeployments lists the deployments the store was told of, sorted.
func (s *Store) knownDeployments() string {
	known := make([]string, 0, len(s.deployments))
	for n := range s.deployments {
		known = append(known, n)
	}
	slices.Sort(known)
	return strings.Join(known, ", ")
}

// Open connects to the database at url and checks that its schema is up to
// date. It never migrates: an operator does, with `loom migrate` or `loom
// serve -migrate`, and Open refuses a database that lacks a migration
// (schema.ErrNotMigrated). box seals and opens credentials; it may be nil
// when none are stored. The URL carries a password: it is never logged or
// put in an error.
func Open(ctx context.Context, url string, box *secret.Box, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can quote the URL; say only what failed.
		return nil, errors.New("tenant store: database URL does not parse")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tenant store: %w", err)
	}
	if err := schema.Check(ctx, pool); err != nil {
		pool.Close()
		if errors.Is(err, schema.ErrNotMigrated) {
			return nil, fmt.Errorf("tenant store: %w (run `loom migrate -config FILE`, or `loom serve -migrate`)", err)
		}
		return nil, fmt.Errorf("tenant store: %w", err)
	}
	s := &Store{pool: pool, box: box, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Close closes every connection. Watch must be done.
func (s *Store) Close() { s.pool.Close() }

// Postgres error codes the store turns into its sentinels.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
	checkViolation      = "23514"
)

// classify maps constraint violations to ErrExists, ErrNotFound (a missing
// tenant) and ErrInvalid; other errors pass through.
func classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case uniqueViolation:
		return fmt.Errorf("%w (%s)", ErrExists, pe.ConstraintName)
	case foreignKeyViolation:
		return fmt.Errorf("tenant: %w", ErrNotFound)
	case checkViolation:
		return fmt.Errorf("%w (%s)", ErrInvalid, pe.ConstraintName)
	}
	return err
}

// inTx runs f in a read-committed transaction and commits if f succeeds.
func (s *Store) inTx(ctx context.Context, f func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, f)
}

// lockTenant takes the tenant's row lock for the rest of tx, so that
// changes that check a tenant's models and keys together do not race.
func lockTenant(ctx context.Context, tx pgx.Tx, id string) error {
	var one int
	err := tx.QueryRow(ctx, "SELECT 1 FROM loom.tenants WHERE id = $1 FOR UPDATE", id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("tenant %q: %w", id, ErrNotFound)
	}
	return err
}

// touch marks the tenant changed.
func touch(ctx context.Context, tx pgx.Tx, id string) error {
	_, err := tx.Exec(ctx, "UPDATE loom.tenants SET updated_at = now() WHERE id = $1", id)
	return err
}
