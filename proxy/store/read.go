package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ReaderRole is the role that row-level security confines to one tenant's
// spans (migration 0002).
const ReaderRole = "loom_tenant_reader"

// ReadAsTenant runs f in a read-only transaction that can see only
// tenantID's rows of loom.spans, loom.span_events and loom.span_content,
// and no other table: the only way Loom reads spans on a tenant's behalf.
// A query that forgets its WHERE tenant_id = ... still sees one tenant.
//
// The connecting user must be able to SET ROLE loom_tenant_reader: the
// migration grants that to the user that ran it (superusers can anyway).
//
// f is trusted code, not a tenant's SQL: it could RESET ROLE or change
// loom.tenant_id, since the session user may. Row-level security here
// guards against a mistake, not against an attacker who writes queries.
func (s *Store) ReadAsTenant(ctx context.Context, tenantID string, f func(pgx.Tx) error) error {
	if tenantID == "" {
		return fmt.Errorf("read as tenant: %w: empty tenant id", ErrInvalid)
	}
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// SET LOCAL and set_config(..., true) end with the transaction, so
		// the connection goes back to the pool as it came.
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ReaderRole); err != nil {
			return fmt.Errorf("read as tenant %q: %w", tenantID, err)
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('loom.tenant_id', $1, true)", tenantID); err != nil {
			return fmt.Errorf("read as tenant %q: %w", tenantID, err)
		}
		return f(tx)
	})
}
