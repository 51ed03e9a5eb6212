package rollup_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/rollup"
	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/schema/schematest"
)

// db is a migrated Postgres of the test's own with span partitions from two
// days back to tomorrow.
func db(t *testing.T, now time.Time) *pgxpool.Pool {
	t.Helper()
	return schematest.DB(t, now.Add(-48*time.Hour), now.Add(24*time.Hour))
}

func hexID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// insertCall writes a SERVER span at start for tenant and model and, when
// in > 0, its one attempt: a CLIENT span starting after, reporting in and
// out tokens and cost USD (none when cost is "").
func insertCall(t *testing.T, q func(sql string, args ...any) error, start time.Time, after time.Duration,
	tenant, model string, in, out int64, cost string) (trace, server string) {
	t.Helper()
	trace, server = hexID(16), hexID(8)
	if err := q(`
INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, tenant_id, api_key_id, request_model)
VALUES ($1, $2, $3, 'POST /v1/chat/completions', 'server', 'unset', $4, $4 || '-key', $5)`,
		trace, server, start, tenant, model); err != nil {
		t.Fatal(err)
	}
	if in > 0 {
		insertAttempt(t, q, trace, server, start.Add(after), tenant, model, in, out, cost)
	}
	return trace, server
}

func insertAttempt(t *testing.T, q func(sql string, args ...any) error, trace, server string, start time.Time,
	tenant, model string, in, out int64, cost string) {
	t.Helper()
	if err := q(`
INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, name, kind, status_code, tenant_id, api_key_id,
    request_model, input_tokens, output_tokens, cost, cost_currency, upstream_attempt)
VALUES ($1, $2, $3, $4, 'chat', 'client', 'unset', $5, $5 || '-key', $6, $7, $8, nullif($9, '')::numeric,
    CASE WHEN $9 = '' THEN NULL ELSE 'USD' END, 1)`,
		trace, hexID(8), server, start, tenant, model, in, out, cost); err != nil {
		t.Fatal(err)
	}
}

func poolExec(t *testing.T, p *pgxpool.Pool) func(string, ...any) error {
	return func(sql string, args ...any) error {
		_, err := p.Exec(t.Context(), sql, args...)
		return err
	}
}

// hourRows are an hour's rollup rows, by "dim:tenant|key or model|currency",
// each as "calls unpriced in out cost" ("-" for NULL).
func hourRows(t *testing.T, p *pgxpool.Pool, hour time.Time) map[string]string {
	t.Helper()
	rows, err := p.Query(t.Context(), `SELECT dim || ':' || coalesce(tenant_id, '') || '|' || coalesce(dim_value, '') || '|' || coalesce(currency, ''),
  concat_ws(' ', calls, unpriced, coalesce(input_tokens::text, '-'), coalesce(output_tokens::text, '-'),
    coalesce(cost::text, '-'))
FROM loom.usage_hourly WHERE hour = $1`, hour)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var k, v string
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error { out[k] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// marked reports whether hour has a usage mark.
func marked(t *testing.T, p *pgxpool.Pool, hour time.Time) bool {
	t.Helper()
	return markedIn(t, p, "loom.usage_dirty", hour)
}

// panelMarked reports whether hour has a mark for the panels.
func panelMarked(t *testing.T, p *pgxpool.Pool, hour time.Time) bool {
	t.Helper()
	return markedIn(t, p, "loom.panel_dirty", hour)
}

func markedIn(t *testing.T, p *pgxpool.Pool, table string, hour time.Time) bool {
	t.Helper()
	var ok bool
	if err := p.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE hour = $1)`, hour).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func refresh(t *testing.T, p *pgxpool.Pool, now time.Time) int {
	t.Helper()
	n, err := rollup.Refresh(t.Context(), p, now)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func equal(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func TestRefresh_RollsUpEndedHours_ExactlyAndLeavesTheCurrentHourMarked(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := db(t, now)
	q := poolExec(t, p)
	past := now.Truncate(time.Hour).Add(-5 * time.Hour)
	cur := now.Truncate(time.Hour)
	insertCall(t, q, past.Add(time.Minute), time.Millisecond, "acme", "m", 100, 10, "0.1")
	insertCall(t, q, past.Add(2*time.Minute), time.Millisecond, "acme", "m", 200, 20, "0.2")
	insertCall(t, q, past.Add(3*time.Minute), time.Millisecond, "acme", "m", 5, 5, "") // unpriced
	insertCall(t, q, past.Add(3*time.Minute), time.Millisecond, "acme", "m2", 1000, 100, "1")
	insertCall(t, q, past.Add(4*time.Minute), 0, "globex", "g", 0, 0, "") // no attempt
	// A GET /v1/models is no call.
	if err := q(`INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, tenant_id)
VALUES ($1, $2, $3, 'GET /v1/models', 'server', 'unset', 'acme')`, hexID(16), hexID(8), past.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	insertCall(t, q, cur, time.Millisecond, "acme", "m", 1, 1, "1")

	if !marked(t, p, past) || !marked(t, p, cur) {
		t.Fatal("writes left their hours unmarked")
	}
	if n := refresh(t, p, now); n < 1 {
		t.Fatalf("refreshed %d hours", n)
	}
	equal(t, "the ended hour", hourRows(t, p, past), map[string]string{
		// By key: both models' calls. By model: 0.1 + 0.2, exactly.
		"key:acme|acme-key|USD": "3 0 1300 130 1.3", "model:acme|m|USD": "2 0 300 30 0.3", "model:acme|m2|USD": "1 0 1000 100 1",
		"key:acme|acme-key|": "1 1 5 5 -", "model:acme|m|": "1 1 5 5 -", // usage, no price: unpriced, no cost
		"key:globex|globex-key|": "1 0 - - -", "model:globex|g|": "1 0 - - -",
	})
	if marked(t, p, past) {
		t.Error("the ended hour is still marked after its refresh")
	}
	if !marked(t, p, cur) || len(hourRows(t, p, cur)) != 0 {
		t.Error("the current hour was rolled up while it can still change")
	}
	// Nothing more to do: a second refresh writes nothing.
	if n := refresh(t, p, now); n != 0 {
		t.Errorf("a second refresh wrote %d hours", n)
	}
}

// A call's attempt that lands after its hour was rolled up (its CLIENT span
// starting in the next hour, from a spool replayed later) marks the call's
// hour again, and the next refresh counts it.
func TestRefresh_LateAttemptInTheNextHour_CountedInItsCallsHour(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := db(t, now)
	q := poolExec(t, p)
	h := now.Truncate(time.Hour).Add(-4 * time.Hour)
	trace, server := insertCall(t, q, h.Add(time.Hour-time.Millisecond), 0, "acme", "m", 0, 0, "")
	refresh(t, p, now)
	equal(t, "before the attempt", hourRows(t, p, h), map[string]string{"key:acme|acme-key|": "1 0 - - -", "model:acme|m|": "1 0 - - -"})

	insertAttempt(t, q, trace, server, h.Add(time.Hour+time.Millisecond), "acme", "m", 7, 3, "0.5")
	if !marked(t, p, h) {
		t.Fatal("an attempt in the next hour left its call's hour unmarked")
	}
	refresh(t, p, now)
	equal(t, "after the late attempt", hourRows(t, p, h), map[string]string{"key:acme|acme-key|USD": "1 0 7 3 0.5", "model:acme|m|USD": "1 0 7 3 0.5"})
	if got := hourRows(t, p, h.Add(time.Hour)); len(got) != 0 {
		t.Errorf("the attempt's own hour holds a call: %v", got)
	}
}

// A writer that marks an hour again while a refresh recomputes it (its
// spans not yet committed, so not in the refresh's read) keeps its mark: a
// reader takes the hour from the spans until the next refresh counts them.
func TestRefresh_WriterCommitsDuringARefresh_KeepsItsMark(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := db(t, now)
	ctx := t.Context()
	h := now.Truncate(time.Hour).Add(-3 * time.Hour)
	// One connection writes twice, so its mark is one row, bumped.
	conn, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	cq := func(sql string, args ...any) error { _, err := conn.Exec(ctx, sql, args...); return err }
	insertCall(t, cq, h.Add(time.Minute), time.Millisecond, "acme", "m", 1, 1, "1")

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tq := func(sql string, args ...any) error { _, err := tx.Exec(ctx, sql, args...); return err }
	insertCall(t, tq, h.Add(2*time.Minute), time.Millisecond, "acme", "m", 10, 10, "10")

	done := make(chan error, 1)
	go func() { _, err := rollup.Refresh(ctx, p, now); done <- err }()
	// The refresh has recomputed the hour without the open transaction's
	// call, and now waits on its mark.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting bool
		if err := p.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE '%DELETE FROM loom.usage_dirty%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refresh never waited on the writer's mark")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A refresh takes each hour once, so the hour stays marked: its
	// rollup lacks the writer's call, and the next refresh takes it.
	if !marked(t, p, h) {
		t.Fatalf("the writer's mark was removed though its call is not in the rollup: %v", hourRows(t, p, h))
	}
	refresh(t, p, now)
	equal(t, "the next refresh", hourRows(t, p, h), map[string]string{"key:acme|acme-key|USD": "2 0 11 11 11", "model:acme|m|USD": "2 0 11 11 11"})
	if marked(t, p, h) {
		t.Error("still marked after the next refresh")
	}
}

func TestRefresh_AnotherRefresherRunning_ReturnsAtOnce(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := db(t, now)
	h := now.Truncate(time.Hour).Add(-2 * time.Hour)
	insertCall(t, poolExec(t, p), h, time.Millisecond, "acme", "m", 1, 1, "")
	tx, err := p.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context()) //nolint:errcheck // test
	if _, err := tx.Exec(t.Context(), "SELECT pg_advisory_xact_lock($1)", rollup.LockKey); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := rollup.Refresh(ctx, p, now)
	if err != nil || n != 0 || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("with the lock held elsewhere: %d hours, %v (context %v)", n, err, ctx.Err())
	}
	if !marked(t, p, h) {
		t.Error("the mark is gone though nothing was refreshed")
	}
}

func TestTruncateSpans_EmptiesTheRollup(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := db(t, now)
	h := now.Truncate(time.Hour).Add(-2 * time.Hour)
	insertCall(t, poolExec(t, p), h, time.Millisecond, "acme", "m", 1, 1, "")
	insertCall(t, poolExec(t, p), now, time.Millisecond, "acme", "m", 1, 1, "")
	refresh(t, p, now)
	if n := factRows(t, p, "requests", h); n == 0 {
		t.Fatal("no panel facts rolled up")
	}
	if _, err := p.Exec(t.Context(), "TRUNCATE loom.spans"); err != nil {
		t.Fatal(err)
	}
	var rows, facts, marks int
	if err := p.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM loom.usage_hourly), (SELECT count(*) FROM loom.panel_hourly),
  (SELECT count(*) FROM loom.usage_dirty) + (SELECT count(*) FROM loom.panel_dirty)`).Scan(&rows, &facts, &marks); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || facts != 0 || marks != 0 {
		t.Errorf("after TRUNCATE loom.spans: %d usage rows, %d panel facts, %d marks", rows, facts, marks)
	}
}

// A store that held spans before the rollup existed has every hour of
// them marked by the migration, so none reads as empty.
func TestMigration_ExistingSpans_MarksTheirHours(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := migratedUntil(t, "usage_rollup", now)
	h := now.Truncate(time.Hour).Add(-30 * time.Hour)
	insertCall(t, poolExec(t, p), h.Add(time.Minute), time.Millisecond, "acme", "m", 3, 4, "0.25")
	if err := schema.Migrate(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if !marked(t, p, h) {
		t.Fatal("the migration left an hour of existing spans unmarked")
	}
	refresh(t, p, now)
	equal(t, "the existing hour", hourRows(t, p, h), map[string]string{"key:acme|acme-key|USD": "1 0 3 4 0.25", "model:acme|m|USD": "1 0 3 4 0.25"})
}

// A store whose usage rollup was kept before the panels' existed (its
// hours refreshed, their marks gone) has them marked again by the panels'
// migration, so the panels read them from the spans until rolled up.
func TestMigration_RolledUpUsage_MarksItsHoursForThePanels(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := migratedUntil(t, "panel_rollup", now)
	h := now.Truncate(time.Hour).Add(-30 * time.Hour)
	insertCall(t, poolExec(t, p), h.Add(time.Minute), time.Millisecond, "acme", "m", 3, 4, "0.25")
	// What the usage refresher of that release left: no marks.
	if err := poolExec(t, p)("DELETE FROM loom.usage_dirty"); err != nil {
		t.Fatal(err)
	}
	if err := schema.Migrate(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if !panelMarked(t, p, h) {
		t.Fatal("the migration left an hour of rolled-up spans unmarked for the panels")
	}
	refresh(t, p, now)
	if n := factRows(t, p, "requests", h); n != 1 {
		t.Errorf("%d requests facts for the hour, want 1", n)
	}
}

// migratedUntil is a Postgres of the test's own with the schema as it was
// before the migration named name, and span partitions of the last two
// days.
func migratedUntil(t *testing.T, name string, now time.Time) *pgxpool.Pool {
	t.Helper()
	ctx := t.Context()
	p, err := pgxpool.New(ctx, pgtest.Database(t, pgtest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	all, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `CREATE SCHEMA loom; CREATE TABLE loom.schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Name == name {
			break
		}
		if _, err := p.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%04d: %v", m.Version, err)
		}
		if _, err := p.Exec(ctx, "INSERT INTO loom.schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := schema.EnsurePartitions(ctx, p, now.Add(-48*time.Hour), now); err != nil {
		t.Fatal(err)
	}
	return p
}

// An UPDATE or a DELETE of spans marks their hours like an INSERT: the
// hour a row moves from and the one it moves to, and the next refresh
// follows.
func TestRefresh_UpdatedAndDeletedSpans_MarkTheirHours(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := db(t, now)
	q := poolExec(t, p)
	h := now.Truncate(time.Hour).Add(-6 * time.Hour)
	trace, _ := insertCall(t, q, h.Add(time.Minute), time.Millisecond, "acme", "m", 10, 1, "")
	insertCall(t, q, h.Add(2*time.Minute), time.Millisecond, "acme", "m", 20, 2, "")
	refresh(t, p, now)

	if err := q(`UPDATE loom.spans SET input_tokens = 11 WHERE trace_id = $1 AND kind = 'client'`, trace); err != nil {
		t.Fatal(err)
	}
	if !marked(t, p, h) {
		t.Fatal("an UPDATE left its hour unmarked")
	}
	refresh(t, p, now)
	equal(t, "after the update", hourRows(t, p, h), map[string]string{"key:acme|acme-key|": "2 2 31 3 -", "model:acme|m|": "2 2 31 3 -"})

	// Moved an hour earlier: both hours change.
	if err := q(`UPDATE loom.spans SET start_time = start_time - interval '1 hour' WHERE trace_id = $1`, trace); err != nil {
		t.Fatal(err)
	}
	if !marked(t, p, h) || !marked(t, p, h.Add(-time.Hour)) {
		t.Fatal("a moved call left the hour it left or the one it reached unmarked")
	}
	refresh(t, p, now)
	equal(t, "the hour it left", hourRows(t, p, h), map[string]string{"key:acme|acme-key|": "1 1 20 2 -", "model:acme|m|": "1 1 20 2 -"})
	equal(t, "the hour it reached", hourRows(t, p, h.Add(-time.Hour)), map[string]string{"key:acme|acme-key|": "1 1 11 1 -", "model:acme|m|": "1 1 11 1 -"})

	if err := q(`DELETE FROM loom.spans WHERE trace_id = $1`, trace); err != nil {
		t.Fatal(err)
	}
	if !marked(t, p, h.Add(-time.Hour)) {
		t.Fatal("a DELETE left its hour unmarked")
	}
	refresh(t, p, now)
	if got := hourRows(t, p, h.Add(-time.Hour)); len(got) != 0 {
		t.Errorf("the deleted call's hour still counts it: %v", got)
	}
}

// factRows counts fact's hourly rows for hour.
func factRows(t *testing.T, p *pgxpool.Pool, fact string, hour time.Time) int {
	t.Helper()
	var n int
	if err := p.QueryRow(t.Context(), `SELECT count(*) FROM loom.panel_hourly WHERE fact = $1 AND hour = $2 AND NOT daily`, fact, hour).
		Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A panel's fact for an hour can depend on the next hour's spans and the
// one before (a later attempt, a fallback's SERVER span), and the
// pipeline's on the hour a span was stored: a SERVER span marks its hour
// and the next, a CLIENT span its hour and the one before, and every span
// the hour it was stored in.
func TestMarks_NeighbourAndIngestHours(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := db(t, now)
	h := now.Truncate(time.Hour).Add(-20 * time.Hour)
	trace, server := insertCall(t, poolExec(t, p), h.Add(time.Minute), 0, "acme", "m", 0, 0, "")
	if !panelMarked(t, p, h) || !panelMarked(t, p, h.Add(time.Hour)) || panelMarked(t, p, h.Add(-time.Hour)) {
		t.Error("a SERVER span did not mark its hour and the next, or marked the one before")
	}
	refresh(t, p, now)
	// An exporter from before the panels' rollup clears the usage marks
	// only: the panels' stay until a refresher writes their facts.
	insertCall(t, poolExec(t, p), h.Add(4*time.Minute), 0, "acme", "m", 0, 0, "")
	if err := poolExec(t, p)("DELETE FROM loom.usage_dirty"); err != nil {
		t.Fatal(err)
	}
	if !panelMarked(t, p, h) {
		t.Fatal("clearing the usage marks cleared the panels'")
	}
	refresh(t, p, now)
	insertAttempt(t, poolExec(t, p), trace, server, h.Add(2*time.Minute), "acme", "m", 1, 1, "")
	if !panelMarked(t, p, h) || !panelMarked(t, p, h.Add(-time.Hour)) {
		t.Error("a CLIENT span did not mark its hour and the one before")
	}
	refresh(t, p, now)
	// Stored 5 hours after it started (a replayed spool).
	stored := h.Add(5 * time.Hour)
	if panelMarked(t, p, stored) {
		t.Fatal("the hour it is stored in is marked before the write")
	}
	if err := poolExec(t, p)(`INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, ingested_at)
VALUES ($1, $2, $3, 'loom run', 'internal', 'unset', $4)`, hexID(16), hexID(8), h.Add(3*time.Minute), stored.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !panelMarked(t, p, h) || !panelMarked(t, p, stored) {
		t.Error("a span did not mark the hour it started in and the hour it was stored in")
	}
}

// Refresh writes every fact of an ended hour, per tenant, and sums a
// table's facts (Daily) per UTC day; a day's sums follow its hours.
func TestRefresh_PanelFacts_HourlyAndDaily(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	p := db(t, now)
	q := poolExec(t, p)
	day := now.Truncate(24 * time.Hour).Add(-24 * time.Hour)
	insertCall(t, q, day.Add(3*time.Hour), time.Millisecond, "acme", "m", 10, 1, "")
	insertCall(t, q, day.Add(9*time.Hour), time.Millisecond, "acme", "m", 20, 2, "")
	insertCall(t, q, day.Add(9*time.Hour+time.Minute), time.Millisecond, "globex", "m", 5, 5, "")
	refresh(t, p, now)
	if n := factRows(t, p, "requests", day.Add(9*time.Hour)); n != 2 {
		t.Errorf("%d requests rows for an hour of two tenants, want 2", n)
	}
	daily := func() string {
		t.Helper()
		var got string
		if err := p.QueryRow(t.Context(), `SELECT coalesce(string_agg(tenant_id || ' ' || k1 || ' ' || n1 || ' ' || n2, ', ' ORDER BY tenant_id), '')
FROM loom.panel_hourly WHERE fact = 'tokens_by' AND daily AND hour = $1`, day).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got, want := daily(), "acme m 2 30, globex m 1 5"; got != want {
		t.Errorf("the day's tokens by model: %q, want %q", got, want)
	}
	insertCall(t, q, day.Add(15*time.Hour), time.Millisecond, "acme", "m", 7, 1, "")
	refresh(t, p, now)
	if got, want := daily(), "acme m 3 37, globex m 1 5"; got != want {
		t.Errorf("after a late call, the day's tokens by model: %q, want %q", got, want)
	}
}
