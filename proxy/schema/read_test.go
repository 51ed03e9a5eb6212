package schema_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/schema"
)

// migrated returns the URL of a fresh, migrated database and an owner's
// pool on it.
func migrated(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.Database(t, pgtest.Start(t))
	db, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := schema.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	return url, db
}

// spans writes, as the owner (as the exporter does), a span with an event
// and content for each tenant, and one span with no tenant.
func spans(t *testing.T, db *pgxpool.Pool, tenants ...string) {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	if err := schema.EnsurePartitions(ctx, db, now, now); err != nil {
		t.Fatal(err)
	}
	for i, tenant := range append(tenants, "") {
		var id *string
		if tenant != "" {
			id = &tenant
		}
		_, err := db.Exec(ctx, `
WITH s AS (INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, tenant_id)
           VALUES ($1, 's', $2, 'n', 'client', 'ok', $3) RETURNING trace_id),
     e AS (INSERT INTO loom.span_events (trace_id, span_id, span_start_time, seq, time, name, tenant_id)
           VALUES ($1, 's', $2, 0, $2, 'ev', $3) RETURNING trace_id)
INSERT INTO loom.span_content (trace_id, span_id, start_time, tenant_id, input_messages)
VALUES ($1, 's', $2, $3, '[]')`, string(rune('a'+i)), now, id)
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadAsTenant_SeesOnlyItsOwnRows(t *testing.T) {
	t.Parallel()
	_, db := migrated(t)
	ctx := t.Context()
	spans(t, db, "acme", "globex")
	for _, tenant := range []string{"acme", "globex", "nobody"} {
		err := schema.ReadAsTenant(ctx, db, tenant, 0, func(tx pgx.Tx) error {
			for _, table := range []string{"spans", "span_events", "span_content"} {
				// No WHERE: row-level security does the filtering.
				rows, _ := tx.Query(ctx, "SELECT DISTINCT tenant_id FROM loom."+table)
				got, err := pgx.CollectRows(rows, pgx.RowTo[*string])
				if err != nil {
					return err
				}
				switch {
				case tenant == "nobody" && len(got) != 0:
					t.Errorf("%s: nobody sees %d tenants' rows", table, len(got))
				case tenant != "nobody" && (len(got) != 1 || got[0] == nil || *got[0] != tenant):
					t.Errorf("%s as %s: sees rows of %v", table, tenant, deref(got))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := schema.ReadAsTenant(ctx, db, "", 0, func(pgx.Tx) error { return nil }); !errors.Is(err, schema.ErrNoTenant) {
		t.Errorf("empty tenant = %v, want ErrNoTenant", err)
	}
}

func deref(ps []*string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		if p == nil {
			out[i] = "<null>"
		} else {
			out[i] = *p
		}
	}
	return out
}

// The reader gets the three parent tables and nothing else: not a
// partition (which has no policy), not the keys, not the credentials.
func TestReadAsTenant_OtherTablesAndWritesRefused(t *testing.T) {
	t.Parallel()
	url, db := migrated(t)
	ctx := t.Context()
	spans(t, db, "acme")
	partition := schema.PartitionName("spans", time.Now())
	for _, sql := range []string{
		"SELECT count(*) FROM loom." + partition,
		"SELECT count(*) FROM loom.api_keys",
		"SELECT count(*) FROM loom.tenant_credentials",
		"SELECT count(*) FROM loom.tenants",
		"SELECT count(*) FROM loom.dead_letters",
	} {
		err := schema.ReadAsTenant(ctx, db, "acme", 0, func(tx pgx.Tx) error {
			var n int
			return tx.QueryRow(ctx, sql).Scan(&n)
		})
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Errorf("%s as a tenant reader: %v, want a Postgres error", sql, err)
		}
	}
	err := schema.ReadAsTenant(ctx, db, "acme", 0, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM loom.spans")
		return err
	})
	if err == nil {
		t.Error("a tenant reader deleted spans")
	}
	// The connection goes back to the pool as the owner: with a pool of
	// one, what follows runs on the connection the reader used.
	one, err := pgxpool.New(ctx, url+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if err := schema.ReadAsTenant(ctx, one, "acme", time.Second, func(pgx.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := one.QueryRow(ctx, "SELECT count(*) FROM loom.tenants").Scan(&n); err != nil {
		t.Errorf("after ReadAsTenant the pooled connection is not the owner's: %v", err)
	}
	var timeout, tenant string
	if err := one.QueryRow(ctx, "SELECT current_setting('statement_timeout'), coalesce(current_setting('loom.tenant_id', true), '')").Scan(&timeout, &tenant); err != nil || timeout != "0" || tenant != "" {
		t.Errorf("after ReadAsTenant the pooled connection has statement_timeout %q, loom.tenant_id %q (err %v); want 0 and none", timeout, tenant, err)
	}
}

// The timeout bounds every statement of the read, the tenant's and the
// operator's alike.
func TestRead_SlowQuery_CancelledByTheStatementTimeout(t *testing.T) {
	t.Parallel()
	_, db := migrated(t)
	for name, read := range map[string]func(f func(pgx.Tx) error) error{
		"tenant": func(f func(pgx.Tx) error) error {
			return schema.ReadAsTenant(t.Context(), db, "acme", 200*time.Millisecond, f)
		},
		"all": func(f func(pgx.Tx) error) error { return schema.ReadAll(t.Context(), db, 200*time.Millisecond, f) },
	} {
		start := time.Now()
		err := read(func(tx pgx.Tx) error {
			_, err := tx.Exec(t.Context(), "SELECT pg_sleep(5)")
			return err
		})
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" || time.Since(start) > 3*time.Second {
			t.Errorf("%s: a 5 s query = %v after %v; want query_canceled by the 200 ms statement timeout", name, err, time.Since(start))
		}
	}
}

// ReadAll is the operator's read: every tenant's rows, and still read-only.
func TestReadAll_SeesEveryTenant_ReadOnly(t *testing.T) {
	t.Parallel()
	_, db := migrated(t)
	ctx := t.Context()
	spans(t, db, "acme", "globex")
	var n int
	err := schema.ReadAll(ctx, db, 0, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(DISTINCT tenant_id) FROM loom.spans").Scan(&n)
	})
	if err != nil || n != 2 {
		t.Errorf("ReadAll sees %d tenants (err %v), want 2", n, err)
	}
	err = schema.ReadAll(ctx, db, 0, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM loom.spans")
		return err
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" { // read_only_sql_transaction
		t.Errorf("a delete in ReadAll = %v, want read_only_sql_transaction", err)
	}
}

// Check passes a migrated database and names what an unmigrated one
// lacks, changing nothing.
func TestCheck_UnmigratedDatabase_NamesTheMissingMigrations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := newPool(t)
	err := schema.Check(ctx, db)
	if !errors.Is(err, schema.ErrNotMigrated) {
		t.Fatalf("Check on an empty database = %v, want ErrNotMigrated", err)
	}
	all, _ := schema.Migrations()
	for _, m := range all {
		if name := fmt.Sprintf("%04d_%s", m.Version, m.Name); !strings.Contains(err.Error(), name) {
			t.Errorf("Check's error %q does not name migration %s", err, name)
		}
	}
	var exists bool
	if err := db.QueryRow(ctx, "SELECT to_regnamespace('loom') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("Check created schema loom (%v, err %v): it must change nothing", exists, err)
	}
	if err := schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := schema.Check(ctx, db); err != nil {
		t.Errorf("Check on a migrated database = %v", err)
	}
	// A database one migration short is not up to date either.
	last := all[len(all)-1]
	if _, err := db.Exec(ctx, "DELETE FROM loom.schema_migrations WHERE version = $1", last.Version); err != nil {
		t.Fatal(err)
	}
	if err := schema.Check(ctx, db); !errors.Is(err, schema.ErrNotMigrated) || !strings.Contains(err.Error(), last.Name) {
		t.Errorf("Check without %04d_%s = %v, want ErrNotMigrated naming it", last.Version, last.Name, err)
	}
}
