package queries_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/dashboards/queries"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/schema"
)

// call is one request as the proxy records it: a SERVER span and, when an
// upstream was reached, a CLIENT child carrying provider and tokens.
type call struct {
	tenant, key, instance string
	seq                   int64
	status                int
	errorType, outcome    string
	upstream              bool
	in, out               int64
	stream                bool
}

// The fixture: acme made two calls (40 in, 60 out), globex one (5 in, 7 out)
// and hit a limit once; instance i1 lost seq 3.
var calls = []call{
	{tenant: "acme", key: "k1", instance: "i1", seq: 1, status: 200, outcome: "ok", upstream: true, in: 10, out: 20, stream: true},
	{tenant: "acme", key: "k2", instance: "i1", seq: 2, status: 200, outcome: "ok", upstream: true, in: 30, out: 40},
	{tenant: "globex", key: "k3", instance: "i1", seq: 4, status: 200, outcome: "ok", upstream: true, in: 5, out: 7, stream: true},
	{tenant: "globex", key: "k3", instance: "i2", seq: 1, status: 429, errorType: "rate_limit_exceeded", outcome: "rate_limited"},
}

func seed(t *testing.T, db *pgxpool.Pool, now time.Time) {
	t.Helper()
	ctx := t.Context()
	if err := schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := schema.EnsurePartitions(ctx, db, now.Add(-24*time.Hour), now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	const insert = `INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind,
  status_code, instance_id, seq, tenant_id, api_key_id, provider, request_model, input_tokens, output_tokens,
  stream, chunks, time_to_first_chunk_ms, overhead_ms, http_status, usage_source, client_disconnected, error_type, attributes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)`
	batch := &pgx.Batch{}
	for i, c := range calls {
		trace := fmt.Sprintf("%032x", i+1)
		start := now.Add(-10*time.Minute + time.Duration(i)*time.Second)
		end := start.Add(800 * time.Millisecond)
		status := "unset"
		var errType *string
		if c.errorType != "" {
			errType = &c.errorType
		}
		attrs := map[string]any{"loom.outcome": c.outcome}
		batch.Queue(insert, trace, fmt.Sprintf("%016x", 1), nil, start, end, 800.0, "POST /v1/chat/completions", "server",
			status, c.instance, c.seq, c.tenant, c.key, nil, "gpt-4o", nil, nil,
			c.stream, nil, nil, 1.5, c.status, nil, i == 0, errType, attrs)
		if !c.upstream {
			continue
		}
		var chunks *int
		var ttfc *float64
		if c.stream {
			n, f := 12, 120.0
			chunks, ttfc = &n, &f
		}
		batch.Queue(insert, trace, fmt.Sprintf("%016x", 2), fmt.Sprintf("%016x", 1), start.Add(time.Millisecond), end, 790.0, "chat gpt-4o", "client",
			status, c.instance, c.seq, c.tenant, c.key, "openai", "gpt-4o", c.in, c.out,
			c.stream, chunks, ttfc, 1.5, c.status, "upstream", nil, nil, attrs)
	}
	batch.Queue(`INSERT INTO loom.dead_letters (reason, trace_id, span_id, span_name, payload) VALUES ('invalid utf-8', 'x', 'y', 'z', '\x00')`)
	if err := db.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPanels_RunAgainstTheSchema(t *testing.T) {
	srv := pgtest.Start(t)
	db, err := pgxpool.New(t.Context(), pgtest.Database(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	now := time.Now().UTC().Truncate(time.Second)
	seed(t, db, now)
	from, to := now.Add(-time.Hour), now.Add(time.Minute)

	selections := []struct {
		name string
		vars map[string][]string
	}{
		{name: "all", vars: nil},
		{name: "acme", vars: map[string][]string{"tenant": {"acme"}, "model": {"gpt-4o"}, "provider": {"openai"}}},
		{name: "two tenants", vars: map[string][]string{"tenant": {"acme", "globex"}}},
	}
	for _, sel := range selections {
		for _, p := range queries.All() {
			t.Run(sel.name+"/"+p.ID, func(t *testing.T) {
				sql := queries.Expand(p.SQL, from, to, time.Minute, sel.vars)
				rows, err := db.Query(t.Context(), sql)
				if err != nil {
					t.Fatalf("%v\n%s", err, sql)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Err(); err != nil {
					t.Fatalf("%v\n%s", err, sql)
				}
				if n == 0 {
					t.Errorf("no rows from\n%s", sql)
				}
			})
		}
		for _, d := range queries.Dashboards() {
			for _, v := range queries.Variables(d) {
				sql := queries.Expand(v.SQL, from, to, time.Minute, sel.vars)
				if _, err := db.Exec(t.Context(), sql); err != nil {
					t.Errorf("variable %s of %s: %v\n%s", v.Name, d, err, sql)
				}
			}
		}
	}

	// scalar runs a panel with vars and returns the sums of two of its columns.
	sums := func(t *testing.T, id string, vars map[string][]string, cols ...string) []int64 {
		t.Helper()
		p, ok := queries.ByID(id)
		if !ok {
			t.Fatalf("no panel %s", id)
		}
		sql := "SELECT " + sumsOf(cols) + " FROM (" + queries.Expand(p.SQL, from, to, time.Minute, vars) + ") AS q"
		got := make([]int64, len(cols))
		dst := make([]any, len(cols))
		for i := range got {
			dst[i] = &got[i]
		}
		if err := db.QueryRow(t.Context(), sql).Scan(dst...); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
		return got
	}
	check := func(t *testing.T, what string, got []int64, want ...int64) {
		t.Helper()
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: got %v, want %v", what, got, want)
				return
			}
		}
	}
	t.Run("overview tokens add up", func(t *testing.T) {
		check(t, "all", sums(t, "overview_tokens_by", nil, "calls", "input_tokens", "output_tokens"), 3, 45, 67)
		check(t, "acme", sums(t, "overview_tokens_by", map[string][]string{"tenant": {"acme"}}, "calls", "input_tokens", "output_tokens"), 2, 40, 60)
		check(t, "other provider", sums(t, "overview_tokens_by", map[string][]string{"provider": {"anthropic"}}, "calls"), 0)
		check(t, "tokens/s series", sums(t, "overview_tokens", nil, `"input" * 60`, `"output" * 60`), 45, 67)
	})
	t.Run("tenant", func(t *testing.T) {
		globex := map[string][]string{"tenant": {"globex"}}
		check(t, "limits hit", sums(t, "tenant_limits_hit", globex, `"limits hit"`), 1)
		check(t, "keys in use", sums(t, "tenant_keys_in_use", globex, `"keys in use"`), 1)
		check(t, "acme keys in use", sums(t, "tenant_keys_in_use", map[string][]string{"tenant": {"acme"}}, `"keys in use"`), 2)
	})
	t.Run("requests by provider follow the client span", func(t *testing.T) {
		check(t, "openai", sums(t, "overview_requests", map[string][]string{"provider": {"openai"}}, `"requests/s" * 60`), 3)
		check(t, "all", sums(t, "overview_requests", nil, `"requests/s" * 60`), 4)
	})
	t.Run("pipeline", func(t *testing.T) {
		check(t, "seq gaps", sums(t, "pipeline_seq_gaps", nil, "missing"), 1)
		check(t, "dead letters", sums(t, "pipeline_dead_letters", nil, "spans"), 1)
		check(t, "streams", sums(t, "stream_chunks", nil, `"chunks/s" * 60`), 24)
		check(t, "disconnects", sums(t, "stream_disconnects", nil, "disconnects"), 1)
	})
}

func sumsOf(cols []string) string {
	s := ""
	for i, c := range cols {
		if i > 0 {
			s += ", "
		}
		s += "coalesce(round(sum(" + c + ")), 0)::bigint"
	}
	return s
}
