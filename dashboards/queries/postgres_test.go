package queries_test

import (
	"fmt"
	"strings"
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
	// failed are the upstream attempts that failed before the one that
	// served (a failover): each its own CLIENT span, numbered from 1.
	failed []attempt
	// fallback is the model whose deployment served, when not the one
	// asked for.
	fallback string
}

type attempt struct{ provider, deployment, errorType string }

// The fixture: acme made three calls (43 in, 64 out), the last of them
// served by its third attempt, by a fallback model; globex one (5 in, 7
// out) and hit a limit once; instance i1 lost seq 3.
var calls = []call{
	{tenant: "acme", key: "k1", instance: "i1", seq: 1, status: 200, outcome: "ok", upstream: true, in: 10, out: 20, stream: true},
	{tenant: "acme", key: "k2", instance: "i1", seq: 2, status: 200, outcome: "ok", upstream: true, in: 30, out: 40},
	{tenant: "globex", key: "k3", instance: "i1", seq: 4, status: 200, outcome: "ok", upstream: true, in: 5, out: 7, stream: true},
	{tenant: "globex", key: "k3", instance: "i2", seq: 1, status: 429, errorType: "rate_limit_exceeded", outcome: "rate_limited"},
	{tenant: "acme", key: "k1", instance: "i1", seq: 5, status: 200, outcome: "ok", upstream: true, in: 3, out: 4, stream: true,
		failed:   []attempt{{"openai", "openai-east", "429"}, {"azure", "azure-west", "timeout"}},
		fallback: "gpt-4o-mini"},
}

// spendOf is a served call's cost at 1 per million input tokens and 2 per
// million output tokens, as the decimal the exporter stores: acme's three
// calls cost 0.000171, globex's 0.000019.
func spendOf(c call) string {
	return fmt.Sprintf("0.%06d", c.in+2*c.out)
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
  stream, chunks, time_to_first_chunk_ms, overhead_ms, http_status, usage_source, client_disconnected, error_type, attributes,
  upstream_attempt, deployment, cost, cost_currency, price_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28,
  $29::text::numeric, $30, $31)`
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
			c.stream, nil, nil, 1.5, c.status, nil, i == 0, errType, attrs, nil, nil, nil, nil, nil)
		if !c.upstream {
			continue
		}
		for n, a := range c.failed {
			batch.Queue(insert, trace, fmt.Sprintf("%016x", 10+n), fmt.Sprintf("%016x", 1), start.Add(time.Millisecond), start.Add(time.Millisecond), 0.0,
				"chat gpt-4o", "client", "error", c.instance, c.seq, c.tenant, c.key, a.provider, "gpt-4o", nil, nil,
				c.stream, nil, nil, nil, nil, nil, nil, a.errorType,
				map[string]any{"loom.upstream.failure_reason": "upstream answered " + a.errorType}, n+1, a.deployment, nil, nil, nil)
		}
		attempt := len(c.failed) + 1
		if c.fallback != "" {
			attrs = map[string]any{"loom.outcome": c.outcome, "loom.upstream.fallback_model": c.fallback}
		}
		var chunks *int
		var ttfc *float64
		if c.stream {
			n, f := 12, 120.0
			chunks, ttfc = &n, &f
		}
		batch.Queue(insert, trace, fmt.Sprintf("%016x", 2), fmt.Sprintf("%016x", 1), start.Add(time.Millisecond), end, 790.0, "chat gpt-4o", "client",
			status, c.instance, c.seq, c.tenant, c.key, "openai", "gpt-4o", c.in, c.out,
			c.stream, chunks, ttfc, 1.5, c.status, "upstream", nil, nil, attrs, attempt, "openai",
			spendOf(c), "USD", "gpt-4o:2025-01-01T00:00:00Z")
	}
	batch.Queue(`INSERT INTO loom.dead_letters (reason, trace_id, span_id, span_name, payload) VALUES ('invalid utf-8', 'x', 'y', 'z', '\x00')`)
	if err := db.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatal(err)
	}
}

// seeded is a Postgres of the test's own with seed's spans, ending now.
func seeded(t *testing.T) (*pgxpool.Pool, time.Time) {
	t.Helper()
	db, err := pgxpool.New(t.Context(), pgtest.Database(t, pgtest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	now := time.Now().UTC().Truncate(time.Second)
	seed(t, db, now)
	return db, now
}

func TestPanels_RunAgainstTheSchema(t *testing.T) {
	db, now := seeded(t)
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
		check(t, "all", sums(t, "overview_tokens_by", nil, "calls", "input_tokens", "output_tokens"), 4, 48, 71)
		check(t, "acme", sums(t, "overview_tokens_by", map[string][]string{"tenant": {"acme"}}, "calls", "input_tokens", "output_tokens"), 3, 43, 64)
		check(t, "other provider", sums(t, "overview_tokens_by", map[string][]string{"provider": {"anthropic"}}, "calls"), 0)
		check(t, "tokens/s series", sums(t, "overview_tokens", nil, `"input" * 60`, `"output" * 60`), 48, 71)
	})
	t.Run("spend adds up exactly", func(t *testing.T) {
		spend := func(t *testing.T, id string, vars map[string][]string) string {
			t.Helper()
			p, _ := queries.ByID(id)
			var got string
			sql := "SELECT coalesce(sum(spend), 0)::text FROM (" + queries.Expand(p.SQL, from, to, time.Minute, vars) + ") AS q"
			if err := db.QueryRow(t.Context(), sql).Scan(&got); err != nil {
				t.Fatalf("%v\n%s", err, sql)
			}
			return got
		}
		acme := map[string][]string{"tenant": {"acme"}}
		for _, tc := range []struct {
			id   string
			vars map[string][]string
			want string
		}{
			{"overview_spend", nil, "0.000190"}, {"overview_spend_by", nil, "0.000190"},
			{"overview_spend_by", acme, "0.000171"}, {"tenant_spend", acme, "0.000171"},
			{"tenant_spend", map[string][]string{"tenant": {"globex"}}, "0.000019"},
		} {
			if got := spend(t, tc.id, tc.vars); got != tc.want {
				t.Errorf("%s %v: spend %s, want %s", tc.id, tc.vars, got, tc.want)
			}
		}
		// The failed-over call's cost is counted once: its failed attempts
		// have none.
		check(t, "calls with a cost", sums(t, "overview_spend_by", nil, "calls"), 4)
	})
	t.Run("tenant", func(t *testing.T) {
		globex := map[string][]string{"tenant": {"globex"}}
		check(t, "limits hit", sums(t, "tenant_limits_hit", globex, `"limits hit"`), 1)
		check(t, "keys in use", sums(t, "tenant_keys_in_use", globex, `"keys in use"`), 1)
		check(t, "acme keys in use", sums(t, "tenant_keys_in_use", map[string][]string{"tenant": {"acme"}}, `"keys in use"`), 2)
	})
	t.Run("requests by provider follow the client span", func(t *testing.T) {
		check(t, "openai", sums(t, "overview_requests", map[string][]string{"provider": {"openai"}}, `"requests/s" * 60`), 4)
		check(t, "all", sums(t, "overview_requests", nil, `"requests/s" * 60`), 5)
		// The failed-over call tried azure, but openai answered it.
		check(t, "azure", sums(t, "overview_requests", map[string][]string{"provider": {"azure"}}, `"requests/s" * 60`), 0)
	})
	t.Run("pipeline", func(t *testing.T) {
		check(t, "seq gaps", sums(t, "pipeline_seq_gaps", nil, "missing"), 1)
		check(t, "dead letters", sums(t, "pipeline_dead_letters", nil, "spans"), 1)
		check(t, "streams", sums(t, "stream_chunks", nil, `"chunks/s" * 60`), 36)
		check(t, "disconnects", sums(t, "stream_disconnects", nil, "disconnects"), 1)
	})
}

// A call that failed over is one SERVER span and one CLIENT span per
// attempt; every panel counts it once, under the attempt that served.
func TestPanels_FailedOverCall_CountedOnce(t *testing.T) {
	db, now := seeded(t)
	from, to := now.Add(-time.Hour), now.Add(time.Minute)
	query := func(t *testing.T, id string, vars map[string][]string, sql string) string {
		t.Helper()
		p, ok := queries.ByID(id)
		if !ok {
			t.Fatalf("no panel %s", id)
		}
		return strings.ReplaceAll(sql, "PANEL", "("+queries.Expand(p.SQL, from, to, time.Minute, vars)+") AS q")
	}
	scan := func(t *testing.T, sql string, dst ...any) {
		t.Helper()
		if err := db.QueryRow(t.Context(), sql).Scan(dst...); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
	}
	t.Run("recent calls list it once, with the provider that served", func(t *testing.T) {
		var rows int
		var provider string
		scan(t, query(t, "calls_recent", nil, "SELECT count(*) FROM PANEL"), &rows)
		scan(t, query(t, "calls_recent", nil, fmt.Sprintf("SELECT provider FROM PANEL WHERE trace_id = '%032x'", len(calls))), &provider)
		if rows != len(calls) || provider != "openai" {
			t.Errorf("calls_recent: %d rows (want %d), the failed-over call's provider %q (want openai)", rows, len(calls), provider)
		}
	})
	t.Run("usage source counts the served attempt", func(t *testing.T) {
		var n int64
		scan(t, query(t, "stream_usage_source", nil, "SELECT coalesce(sum(calls), 0) FROM PANEL"), &n)
		if n != 3 {
			t.Errorf("stream_usage_source: %d streamed calls, want 3", n)
		}
	})
	t.Run("failovers and attempts", func(t *testing.T) {
		var served, failed, failovers, fallbacks float64
		scan(t, query(t, "overview_attempts", nil, `SELECT sum("served attempts/min"), sum("failed attempts/min"), sum("failovers/min"), sum("fallbacks/min") FROM PANEL`),
			&served, &failed, &failovers, &fallbacks)
		if served != 4 || failed != 2 || failovers != 1 || fallbacks != 1 {
			t.Errorf("per minute over the range: %v served, %v failed, %v failovers, %v fallbacks; want 4, 2, 1, 1", served, failed, failovers, fallbacks)
		}
		var azure, failedOver int64
		scan(t, query(t, "overview_attempt_failures", nil, "SELECT sum(failures) FILTER (WHERE deployment = 'azure-west' AND error_type = 'timeout'), sum(failed_over) FROM PANEL"),
			&azure, &failedOver)
		if azure != 1 || failedOver != 2 {
			t.Errorf("failed attempts: azure-west timeouts %d (want 1), failed over %d (want 2)", azure, failedOver)
		}
		var model, fallback string
		var n int64
		scan(t, query(t, "overview_fallbacks", nil, "SELECT model, fallback, calls FROM PANEL"), &model, &fallback, &n)
		if model != "gpt-4o" || fallback != "gpt-4o-mini" || n != 1 {
			t.Errorf("fallbacks: %s -> %s %d times; want gpt-4o -> gpt-4o-mini once", model, fallback, n)
		}
		var none int64
		scan(t, query(t, "overview_attempts", map[string][]string{"tenant": {"globex"}}, `SELECT coalesce(sum("failed attempts/min"), 0)::bigint FROM PANEL`), &none)
		if none != 0 {
			t.Errorf("globex, which never failed over: %d failed attempts", none)
		}
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

// A client that leaves a stream early is not a slow call: its SERVER span
// runs on while Loom drains the upstream for the usage, so the latency
// panel leaves it out, and the calls a client did wait for make the
// percentiles.
func TestPanels_Latency_LeavesOutCallsTheClientLeft(t *testing.T) {
	db, now := seeded(t)
	// A drained stream: the client left at once, the drain took 30 s.
	start := now.Add(-5 * time.Minute)
	_, err := db.Exec(t.Context(), `INSERT INTO loom.spans (trace_id, span_id, start_time, end_time, duration_ms, name, kind,
  status_code, tenant_id, request_model, stream, http_status, client_disconnected, error_type, attributes)
VALUES ($1, $2, $3, $4, 30000, 'POST /v1/chat/completions', 'server', 'error', 'acme', 'gpt-4o', true, 200, true,
  'client_disconnected', '{"loom.outcome": "client_disconnected", "loom.upstream.drained": true}')`,
		fmt.Sprintf("%032x", 99), fmt.Sprintf("%016x", 1), start, start.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := queries.ByID("overview_latency")
	sql := "SELECT max(p50), max(p99) FROM (" + queries.Expand(p.SQL, now.Add(-time.Hour), now.Add(time.Minute), time.Hour, nil) + ") AS q"
	var p50, p99 float64
	if err := db.QueryRow(t.Context(), sql).Scan(&p50, &p99); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	if p50 != 800 || p99 != 800 {
		t.Errorf("latency p50 %v, p99 %v; want 800 and 800 (every call a client waited for took 800 ms)", p50, p99)
	}
}
