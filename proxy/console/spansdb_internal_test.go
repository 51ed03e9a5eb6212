package console

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/schema"
)

// SpansDB is a pool on a Postgres of the test's own, migrated, with span
// partitions from from to to: where every console test over spans starts.
// It is exported for the package's external tests too.
func SpansDB(t *testing.T, from, to time.Time) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.Database(t, pgtest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := schema.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	if err := schema.EnsurePartitions(t.Context(), pool, from, to); err != nil {
		t.Fatal(err)
	}
	return pool
}
