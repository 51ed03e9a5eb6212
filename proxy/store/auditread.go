package store

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/ledger"
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
		return nil, err // ReadAudit says what it was reading
	}
	return out, nil
}

// ReadAudit reads the entries q selects from the system chain, newest
// first, in tx: the store's own, or a console tenant's, whose row-level
// security leaves it the entries of its own tenant whatever q says.
func ReadAudit(ctx context.Context, tx pgx.Tx, q AuditQuery) ([]AuditEntry, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	// An entry's time is inside its canonical bytes; the row's created_at
	// (when it was appended, indexed) is a moment later. Rows are picked
	// by created_at with a margin, then kept by their own time.
	const margin = time.Minute
	var from, to *time.Time
	if !q.From.IsZero() {
		f := q.From.Add(-margin)
		from = &f
	}
	if !q.To.IsZero() {
		t := q.To.Add(margin)
		to = &t
	}
	var out []AuditEntry
	const page = 500
	below := int64(math.MaxInt64)
	for {
		rows, _ := tx.Query(ctx, `SELECT idx, canonical FROM loom.ledger_entries
WHERE chain = $1 AND idx < $2 AND ($3 = '' OR tenant_id = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)
ORDER BY idx DESC LIMIT $6`, ledger.SystemChain, below, q.Tenant, from, to, page)
		var idx int64
		var canonical []byte
		n := 0
		_, err := pgx.ForEachRow(rows, []any{&idx, &canonical}, func() error {
			n++
			below = idx
			if len(out) >= limit {
				return nil
			}
			e, err := ledger.Decode(canonical)
			if err != nil {
				return fmt.Errorf("system chain entry %d: %w", idx, err)
			}
			a := &e.Admin
			if (!q.From.IsZero() && a.Time.Before(q.From)) || (!q.To.IsZero() && !a.Time.Before(q.To)) {
				return nil
			}
			kind, id, _ := strings.Cut(a.Actor, ":")
			out = append(out, AuditEntry{Seq: idx, Change: Change{
				Actor:  Actor{Kind: kind, ID: id, RequestID: a.RequestID},
				Action: a.Action, Target: a.Target, Before: a.Before, After: a.After, Time: a.Time,
			}})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		if n < page || len(out) >= limit {
			return out, nil
		}
	}
}
