package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bounds on one read of the audit log.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditQuery selects entries of the admin audit log.
type AuditQuery struct {
	// Tenant keeps the entries whose target is this tenant's; "" keeps
	// them all.
	Tenant string
	// From and To bound the entries' time, From included, To not; zero
	// is unbounded.
	From, To time.Time
	// Limit is how many entries at most, the newest; 0 means
	// DefaultAuditLimit, and more than MaxAuditLimit means that.
	Limit int
}

// AuditEntry is one entry of the admin audit log as it reads back.
type AuditEntry struct {
	// Seq is the entry's place in the system chain.
	Seq int64
	Change
}

// Audit reads the entries q selects, newest first.
func (s *Store) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	var out []AuditEntry
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		out, err = ReadAudit(ctx, tx, q)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
