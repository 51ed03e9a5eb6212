package store

import (
	"context"
	"fmt"

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
