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

// record writes c's entry in the system chain, in tx, the transaction that
// makes the change: the two commit together or not at all.
func (s *Store) record(ctx context.Context, tx pgx.Tx, c Change) error {
	if s.observe != nil {
		s.observe(c)
	}
	if c.Actor.RequestID == "" {
		c.Actor.RequestID = NewRequestID()
	}
	e := []ledger.Entry{{Chain: ledger.SystemChain, Kind: ledger.KindAdmin, Admin: ledger.Admin{
		RequestID: c.Actor.RequestID, Time: c.Time, Actor: c.Actor.Kind + ":" + c.Actor.ID, Action: c.Action,
		Tenant: TargetTenant(c.Target), Target: c.Target, Before: c.Before, After: c.After,
	}}}
	if err := ledger.Append(ctx, tx, e...); err != nil {
		return fmt.Errorf("audit %s %s: %w", c.Action, c.Target, err)
	}
	if e[0].Index == 0 {
		return fmt.Errorf("audit %s %s: request id %q: %w", c.Action, c.Target, c.Actor.RequestID, ErrRequestIDReused)
	}
	return nil
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
