// Package schematest gives a test a Postgres of its own with Loom's schema:
// where the tests of every package that reads or writes spans start. It is
// for tests only; the schema package's own tests do not use it (they test
// Migrate itself).
package schematest

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/schema"
)

// DB is a pool on a fresh database of a Postgres server of the test's own,
// migrated, with the span partitions of every day from from to to (none
// when both are zero). The pool closes when the test ends.
func DB(t testing.TB, from, to time.Time) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.Database(t, pgtest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := schema.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	if from.IsZero() && to.IsZero() {
		return pool
	}
	if err := schema.EnsurePartitions(t.Context(), pool, from, to); err != nil {
		t.Fatal(err)
	}
	return pool
}
