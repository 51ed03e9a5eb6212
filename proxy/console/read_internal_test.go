package console

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loom-gateway/loom/proxy/schema/schematest"
)

func TestRead_SlowQuery_CancelledByTheStatementTimeout(t *testing.T) {
	t.Parallel()
	pool := schematest.DB(t, time.Time{}, time.Time{})
	h := New(Options{DB: pool, SessionKey: []byte("k"), StatementTimeout: 200 * time.Millisecond}).(*handler)
	for _, s := range []session{{admin: true}, {tenant: "acme", key: "k1"}} {
		start := time.Now()
		err := h.read(t.Context(), s, func(tx pgx.Tx) error {
			_, err := tx.Exec(t.Context(), "SELECT pg_sleep(5)")
			return err
		})
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" || time.Since(start) > 3*time.Second {
			t.Errorf("%s: a 5 s query = %v after %v; want query_canceled by the 200 ms statement timeout", s.Who(), err, time.Since(start))
		}
	}
	// The setting is LOCAL: the pooled connection comes back as it went.
	var v string
	if err := pool.QueryRow(t.Context(), "SHOW statement_timeout").Scan(&v); err != nil || v != "0" {
		t.Errorf("statement_timeout outside the console's transaction = %q, %v; want 0", v, err)
	}
	if DefaultStatementTimeout <= 0 || New(Options{DB: pool, SessionKey: []byte("k")}).(*handler).opts.StatementTimeout != DefaultStatementTimeout {
		t.Error("no default statement timeout")
	}
}
