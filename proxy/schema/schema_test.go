package schema_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/schema"
)

// newPool returns a pool on a fresh database of a server of the test's own.
func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	srv := pgtest.Start(t)
	pool, err := pgxpool.New(t.Context(), pgtest.Database(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrations_NamedAndOrdered(t *testing.T) {
	t.Parallel()
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "spans" {
		t.Fatalf("first migration = %+v, want 0001_spans", ms[0])
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Version <= ms[i-1].Version {
			t.Errorf("migration %d after %d: not in order", ms[i].Version, ms[i-1].Version)
		}
	}
}

func TestMigrate_Twice_IsNoOp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var first time.Time
	if err := pool.QueryRow(ctx, "SELECT max(applied_at) FROM loom.schema_migrations").Scan(&first); err != nil {
		t.Fatal(err)
	}
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	ms, _ := schema.Migrations()
	var n int
	var last time.Time
	if err := pool.QueryRow(ctx, "SELECT count(*), max(applied_at) FROM loom.schema_migrations").Scan(&n, &last); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || !last.Equal(first) {
		t.Errorf("after two runs: %d rows (want %d), last applied %v (want %v)", n, len(ms), last, first)
	}
	for _, table := range []string{"spans", "span_events", "span_content", "dead_letters"} {
		var ok bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass('loom.' || $1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table loom.%s missing (err %v)", table, err)
		}
	}
}

// Several collectors start at once against an empty database: the advisory
// lock makes them take turns, and every one succeeds.
func TestMigrate_Concurrent_AllSucceed(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			errs[i] = schema.Migrate(t.Context(), pool)
			if errs[i] == nil {
				now := time.Now()
				errs[i] = schema.EnsurePartitions(t.Context(), pool, now, now.AddDate(0, 0, 2))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
}

func TestEnsurePartitions_NewDays_RowsLandInTheirDay(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	// 2030-03-02 04:00 UTC to 2030-03-03 06:00 UTC, given in another zone.
	from := time.Date(2030, 3, 1, 23, 0, 0, 0, time.FixedZone("x", -5*3600))
	to := from.Add(26 * time.Hour)
	for range 2 { // idempotent
		if err := schema.EnsurePartitions(ctx, pool, from, to); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Time{
		time.Date(2030, 3, 2, 0, 0, 0, 0, time.UTC),
		time.Date(2030, 3, 3, 0, 0, 0, 0, time.UTC),
	}
	for _, table := range schema.PartitionedTables {
		if got := days(t, pool, table); !slices.EqualFunc(got, want, time.Time.Equal) {
			t.Errorf("%s partitions = %v, want %v", table, got, want)
		}
	}
	var part string
	err := pool.QueryRow(ctx, `INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code)
VALUES ('t', 's', '2030-03-03 23:59:59.999+00', 'n', 'server', 'ok') RETURNING tableoid::regclass::text`).Scan(&part)
	if err != nil || part != "loom.spans_20300303" {
		t.Errorf("row went to %q (err %v), want loom.spans_20300303", part, err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code)
VALUES ('t', 's', '2030-03-04 00:00:00+00', 'n', 'server', 'ok')`)
	if err == nil {
		t.Error("a row for a day with no partition was accepted; there must be no DEFAULT partition")
	}
}

func TestDropPartitionsBefore_DropsOnlyWholeDaysBefore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	d := func(day int) time.Time { return time.Date(2030, 1, day, 0, 0, 0, 0, time.UTC) }
	if err := schema.EnsurePartitions(ctx, pool, d(1), d(5)); err != nil {
		t.Fatal(err)
	}
	// 2030-01-03 12:00: days 1 and 2 end before it; day 3 holds it.
	dropped, err := schema.DropPartitionsBefore(ctx, pool, d(3).Add(12*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 2*len(schema.PartitionedTables) {
		t.Errorf("dropped %v, want days 1 and 2 of each table", dropped)
	}
	for _, table := range schema.PartitionedTables {
		if got := days(t, pool, table); !slices.EqualFunc(got, []time.Time{d(3), d(4), d(5)}, time.Time.Equal) {
			t.Errorf("%s partitions left = %v, want days 3 to 5", table, got)
		}
	}
	if again, err := schema.DropPartitionsBefore(ctx, pool, d(3)); err != nil || len(again) != 0 {
		t.Errorf("second drop: %v, %v; want nothing", again, err)
	}
}

func days(t *testing.T, db schema.DB, table string) []time.Time {
	t.Helper()
	got, err := schema.Partitions(context.Background(), db, table)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, time.Time.Compare)
	return got
}

// A DROP waiting for a long reader would queue every insert behind it;
// retention gives up instead, and leaves the partition for the next round.
func TestDropPartitionsBefore_TableInUse_GivesUpQuickly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := schema.EnsurePartitions(ctx, pool, day, day); err != nil {
		t.Fatal(err)
	}
	reader, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback(ctx) //nolint:errcheck // test
	if _, err := reader.Exec(ctx, "SELECT count(*) FROM loom.spans"); err != nil {
		t.Fatal(err)
	}
	begun := time.Now()
	if _, err := schema.DropPartitionsBefore(ctx, pool, day.AddDate(0, 0, 2)); err == nil {
		t.Fatal("dropped a partition under an open reader")
	}
	if waited := time.Since(begun); waited > 10*time.Second {
		t.Errorf("waited %s for the lock", waited)
	}
	if got := days(t, pool, "spans"); len(got) != 1 {
		t.Errorf("partitions after a failed drop: %v, want the one still there", got)
	}
}

// Dead letters hold whole spans, captured content included: retention
// removes them by age, with the same cutoff as the span partitions.
func TestDropPartitionsBefore_DeletesDeadLettersReceivedBefore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, age := range []time.Duration{40 * 24 * time.Hour, 31 * 24 * time.Hour, 29 * 24 * time.Hour, time.Hour} {
		if _, err := pool.Exec(ctx, `INSERT INTO loom.dead_letters (received_at, reason, trace_id, payload) VALUES ($1, 'invalid utf-8', $2, '\x00')`,
			now.Add(-age), age.String()); err != nil {
			t.Fatal(err)
		}
	}
	// No span partition is due: the dead letters go all the same.
	if _, err := schema.DropPartitionsBefore(ctx, pool, now.Add(-30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT trace_id FROM loom.dead_letters ORDER BY received_at`)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{(29 * 24 * time.Hour).String(), time.Hour.String()}; !slices.Equal(kept, want) {
		t.Errorf("dead letters kept %v; want only those younger than the retention %v", kept, want)
	}
}
