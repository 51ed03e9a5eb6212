package schema

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReaderRole is the role that row-level security confines to one tenant's
// spans (migration 0002).
const ReaderRole = "loom_tenant_reader"

// ErrNoTenant is ReadAsTenant's answer to an empty tenant id: reading as
// nobody would be a silent, empty answer rather than the mistake it is.
var ErrNoTenant = errors.New("read as tenant: empty tenant id")

// TxBeginner is what a read needs from a connection: *pgx.Conn and
// *pgxpool.Pool satisfy it.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

var (
	_ TxBeginner = (*pgx.Conn)(nil)
	_ TxBeginner = (*pgxpool.Pool)(nil)
)

// ReadAsTenant runs f in a read-only transaction that can see only
// tenantID's rows of loom.spans, loom.span_events and loom.span_content,
// and no other table: the only way Loom reads spans on a tenant's behalf.
// A query that forgets its WHERE tenant_id = ... still sees one tenant.
//
// timeout, when positive, bounds each statement of the transaction
// (statement_timeout); 0 leaves the server's setting.
//
// The connecting user must be able to SET ROLE loom_tenant_reader: the
// migration grants that to the user that ran it (superusers can anyway).
//
// f is trusted code, not a tenant's SQL: it could RESET ROLE or change
// loom.tenant_id, since the session user may. Row-level security here
// guards against a mistake, not against an attacker who writes queries.
func ReadAsTenant(ctx context.Context, db TxBeginner, tenantID string, timeout time.Duration, f func(pgx.Tx) error) error {
	if tenantID == "" {
		return ErrNoTenant
	}
	return read(ctx, db, tenantID, timeout, f)
}

// ReadAll runs f in a read-only transaction that sees every tenant's rows,
// as the connecting user: for the operator, never on a tenant's behalf.
// timeout is as for ReadAsTenant.
func ReadAll(ctx context.Context, db TxBeginner, timeout time.Duration, f func(pgx.Tx) error) error {
	return read(ctx, db, "", timeout, f)
}

// read is ReadAsTenant, or ReadAll for tenantID "".
func read(ctx context.Context, db TxBeginner, tenantID string, timeout time.Duration, f func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// SET LOCAL and set_config(..., true) end with the transaction, so
		// the connection goes back to the pool as it came.
		if timeout > 0 {
			// At least 1 ms: a statement_timeout of 0 means none at all.
			ms := strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)
			if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", ms); err != nil {
				return fmt.Errorf("read: statement timeout: %w", err)
			}
		}
		if tenantID != "" {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ReaderRole); err != nil {
				return fmt.Errorf("read as tenant %q: %w", tenantID, err)
			}
			if _, err := tx.Exec(ctx, "SELECT set_config('loom.tenant_id', $1, true)", tenantID); err != nil {
				return fmt.Errorf("read as tenant %q: %w", tenantID, err)
			}
		}
		return f(tx)
	})
}
