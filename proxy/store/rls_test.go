package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loom-gateway/loom/otelcol/schema"
	"github.com/loom-gateway/loom/proxy/store"
)

// spans writes, as the owner (as the exporter does), a span with an event
// and content for each tenant, and one span with no tenant.
func spans(t *testing.T, e env, tenants ...string) {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	if err := schema.EnsurePartitions(ctx, e.db, now, now); err != nil {
		t.Fatal(err)
	}
	for i, tenant := range append(tenants, "") {
		var id *string
		if tenant != "" {
			id = &tenant
		}
		_, err := e.db.Exec(ctx, `
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
	e := newEnv(t)
	ctx := t.Context()
	spans(t, e, "acme", "globex")
	for _, tenant := range []string{"acme", "globex", "nobody"} {
		err := e.st.ReadAsTenant(ctx, tenant, func(tx pgx.Tx) error {
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
	if err := e.st.ReadAsTenant(ctx, "", func(pgx.Tx) error { return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty tenant = %v, want ErrInvalid", err)
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
	e := newEnv(t)
	ctx := t.Context()
	spans(t, e, "acme")
	partition := schema.PartitionName("spans", time.Now())
	for _, sql := range []string{
		"SELECT count(*) FROM loom." + partition,
		"SELECT count(*) FROM loom.api_keys",
		"SELECT count(*) FROM loom.tenant_credentials",
		"SELECT count(*) FROM loom.tenants",
		"SELECT count(*) FROM loom.dead_letters",
	} {
		err := e.st.ReadAsTenant(ctx, "acme", func(tx pgx.Tx) error {
			var n int
			return tx.QueryRow(ctx, sql).Scan(&n)
		})
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Errorf("%s as a tenant reader: %v, want a Postgres error", sql, err)
		}
	}
	err := e.st.ReadAsTenant(ctx, "acme", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM loom.spans")
		return err
	})
	if err == nil {
		t.Error("a tenant reader deleted spans")
	}
	// The connection goes back to the pool as the owner: with a pool of
	// one, what follows runs on the connection the reader used.
	one := open(t, e.url+"&pool_max_conns=1", e.box)
	if err := one.ReadAsTenant(ctx, "acme", func(pgx.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := one.ListTenants(ctx); err != nil {
		t.Errorf("after ReadAsTenant the pooled connection is not the owner's: %v", err)
	}
}
