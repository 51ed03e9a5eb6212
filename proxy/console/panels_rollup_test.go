package console_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/dashboards/queries"
	"github.com/loom-gateway/loom/proxy/rollup"
	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/schema/schematest"
)

// The dashboards' rollup (dashboards/queries Facts, migration 0010) must
// give every panel the numbers its query over the spans gives: over long
// ranges, for the admin and for tenants, with every hour read from the
// spans (right after the writes), with the ended hours rolled up, and after
// late writes into rolled-up hours. Percentiles alone are approximate: the
// middle of the histogram bin that holds percentile_disc's value.

// rollupReader is who reads a panel: the admin, or a tenant under
// row-level security, with the variables it sets.
type rollupReader struct {
	name   string
	tenant string // "" for the admin
	vars   map[string][]string
}

var rollupReaders = []rollupReader{
	{name: "admin, all tenants"},
	{name: "admin, one tenant", vars: map[string][]string{"tenant": {"tenant-00"}}},
	// The console names a tenant session's tenant; Grafana on a tenant's
	// role may leave it All.
	{name: "tenant session", tenant: "tenant-07", vars: map[string][]string{"tenant": {"tenant-07"}}},
	{name: "tenant reader, All", tenant: "tenant-07"},
}

// rollupRange is a panel's range and bucket, as the console or Grafana
// send them.
type rollupRange struct {
	name     string
	from, to time.Time
	bucket   time.Duration
	// rolled is the bucket a series gets from the rollup, when not bucket:
	// whole hours.
	rolled time.Duration
}

func rollupRanges(now time.Time) []rollupRange {
	to := now.Truncate(2 * time.Hour).Add(2 * time.Hour)
	return []rollupRange{
		{name: "7d", from: to.Add(-7 * 24 * time.Hour), to: to, bucket: 2 * time.Hour},
		// Cut hours at both ends, as Grafana's "last 25 hours" has.
		{name: "25h cut", from: now.Add(-25*time.Hour + 17*time.Minute), to: now.Add(-3 * time.Minute), bucket: time.Hour},
		// Grafana's interval over a week on a wide screen: the rollup's
		// points are hours.
		{name: "7d by 10m", from: to.Add(-7 * 24 * time.Hour), to: to, bucket: 10 * time.Minute, rolled: time.Hour},
	}
}

func TestPanels_FromTheRollup_AsFromTheSpans(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC()
	db := schematest.DB(t, time.Time{}, time.Time{})
	if _, err := seedSpans(ctx, db, 3000, now); err != nil {
		t.Fatal(err)
	}
	// What the seed lacks: fallbacks, a run's stop marker, spans of no
	// tenant.
	for _, sql := range []string{
		`UPDATE loom.spans SET attributes = attributes || '{"loom.upstream.fallback_model": "gpt-4o-mini"}'
		 WHERE kind = 'client' AND error_type IS NULL AND upstream_attempt = 2`,
		`INSERT INTO loom.spans (trace_id, span_id, start_time, end_time, name, kind, status_code, instance_id, run_id, attributes, ingested_at)
		 SELECT md5('stop'), 'aaaaaaaaaaaaaaaa', max(start_time), max(start_time), 'loom run', 'internal', 'unset', 'loom-0', 'run-1',
		        jsonb_build_object('loom.run.event', 'stop', 'loom.run.last_seq', max(seq) + 2), max(start_time)
		 FROM loom.spans WHERE instance_id = 'loom-0'`,
		`UPDATE loom.spans SET tenant_id = NULL WHERE kind = 'server' AND name = 'GET /v1/models' AND seq % 2 = 0`,
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	// spans reads every panel's query over the spans alone, per range,
	// reader and panel, as the rolled-up reads must find it.
	spans := func() map[string][][]any {
		want := map[string][][]any{}
		for _, rg := range rollupRanges(now) {
			bucket := rg.bucket
			if rg.rolled != 0 {
				bucket = rg.rolled
			}
			for _, rd := range rollupReaders {
				for _, p := range rolledPanels(rd) {
					rows := readPanel(t, db, rd, queries.Expand(p.Raw, rg.from, rg.to, bucket, rd.vars))
					// The raw query alone may be unordered (its panel
					// orders the union): the rows are the same set.
					slices.SortFunc(rows, compareRows)
					want[rg.name+"/"+rd.name+"/"+p.ID] = rows
				}
			}
		}
		return want
	}
	check := func(t *testing.T, phase string, want map[string][][]any) {
		t.Helper()
		for _, rg := range rollupRanges(now) {
			for _, rd := range rollupReaders {
				for _, p := range rolledPanels(rd) {
					got := readPanel(t, db, rd, queries.Expand(p.SQL, rg.from, rg.to, rg.bucket, rd.vars))
					slices.SortFunc(got, compareRows)
					name := rg.name + "/" + rd.name + "/" + p.ID
					if msg := sameRows(got, want[name], p.Unit == "ms"); msg != "" {
						t.Errorf("%s/%s: %s", phase, name, msg)
					}
				}
			}
		}
	}
	want := spans()
	// Every hour is marked by the writes: every fact is read from the
	// spans.
	check(t, "unrolled", want)

	hours, err := rollup.Refresh(ctx, db, now)
	if err != nil {
		t.Fatal(err)
	}
	if hours < 7*24 {
		t.Fatalf("rolled up %d hours, want the week's", hours)
	}
	var facts int
	if err := db.QueryRow(ctx, "SELECT count(DISTINCT fact) FROM loom.panel_hourly").Scan(&facts); err != nil {
		t.Fatal(err)
	}
	if facts != len(queries.Facts()) {
		t.Fatalf("%d facts rolled up, want %d", facts, len(queries.Facts()))
	}
	check(t, "rolled up", want)

	// Late writes into rolled-up hours: a call of a day ago replayed with
	// new ids, one deleted, one moved to another hour. Each marks its
	// hours; the panels read them from the spans until the next refresh.
	for _, sql := range []string{
		`INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind, status_code,
		     instance_id, run_id, seq, tenant_id, api_key_id, provider, request_model, input_tokens, output_tokens, stream,
		     time_to_first_chunk_ms, overhead_ms, http_status, upstream_attempt, usage_source, chunks, error_type, deployment,
		     cost, cost_currency, attributes, ingested_at)
		 SELECT md5(trace_id), span_id, parent_span_id, start_time, end_time, duration_ms * 3, name, kind, status_code,
		     instance_id, 'run-late', seq, tenant_id, api_key_id, provider, request_model, input_tokens, output_tokens, stream,
		     time_to_first_chunk_ms, overhead_ms, http_status, upstream_attempt, usage_source, chunks, error_type, deployment,
		     cost, cost_currency, attributes, now()
		 FROM loom.spans WHERE trace_id IN (SELECT trace_id FROM loom.spans WHERE kind = 'server'
		     AND start_time < now() - interval '1 day' AND tenant_id IN ('tenant-00', 'tenant-07') ORDER BY start_time DESC LIMIT 40)`,
		`DELETE FROM loom.spans WHERE trace_id = (SELECT trace_id FROM loom.spans WHERE kind = 'client' AND cost IS NOT NULL
		     AND start_time < now() - interval '2 days' ORDER BY start_time LIMIT 1)`,
		`UPDATE loom.spans SET start_time = start_time - interval '3 hours' WHERE trace_id = (SELECT trace_id FROM loom.spans
		     WHERE kind = 'server' AND tenant_id = 'tenant-07' AND start_time < now() - interval '2 days' ORDER BY start_time DESC LIMIT 1)`,
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	check(t, "late writes", spans())
}

// rolledPanels are the panels that read a fact, those rd may open.
func rolledPanels(rd rollupReader) []queries.Panel {
	var ps []queries.Panel
	for _, p := range queries.All() {
		if p.Fact != "" && (rd.tenant == "" || p.Dashboard != queries.Pipeline) {
			ps = append(ps, p)
		}
	}
	return ps
}

// readPanel runs a panel's expanded SQL as rd.
func readPanel(t *testing.T, db *pgxpool.Pool, rd rollupReader, sql string) [][]any {
	t.Helper()
	var out [][]any
	read := func(tx pgx.Tx) error {
		rows, err := tx.Query(context.Background(), sql)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		return err
	}
	var err error
	if rd.tenant == "" {
		err = schema.ReadAll(t.Context(), db, time.Minute, read)
	} else {
		err = schema.ReadAsTenant(t.Context(), db, rd.tenant, time.Minute, read)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	return out
}

// sameRows says how got differs from want ("" when it does not): numbers
// compare as float64 to 1e-9 (a rollup's sum of sums is numeric where the
// spans' may be an int), percentiles (approx) to the width of half a bin.
func sameRows(got, want [][]any, approx bool) string {
	if len(got) != len(want) {
		for i := range min(len(got), len(want)) {
			if fmt.Sprint(got[i][0]) != fmt.Sprint(want[i][0]) {
				return fmt.Sprintf("%d rows, want %d: row %d is %v, want %v", len(got), len(want), i, got[i], want[i])
			}
		}
		return fmt.Sprintf("%d rows, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return fmt.Sprintf("row %d: %d columns, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range got[i] {
			g, gok := float(got[i][j])
			w, wok := float(want[i][j])
			switch {
			case gok && wok && approx && j > 0:
				// The bin's middle: within 2^(1/16) of any value in it.
				if (g == 0) != (w == 0) || (w != 0 && math.Abs(math.Log2(g/w)) > 1.0/16+1e-9) {
					return fmt.Sprintf("row %d column %d: %v, want %v within half a bin", i, j, g, w)
				}
			case gok && wok:
				if math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
					return fmt.Sprintf("row %d column %d: %v, want %v\n got %v\nwant %v", i, j, g, w, got[i], want[i])
				}
			case fmt.Sprint(got[i][j]) != fmt.Sprint(want[i][j]):
				return fmt.Sprintf("row %d column %d: %v, want %v\n got %v\nwant %v", i, j, got[i][j], want[i][j], got[i], want[i])
			}
		}
	}
	return ""
}

// float reads a number of any type Postgres returns for a panel's column.
func float(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case float64:
		return x, true
	case pgtype.Numeric:
		f, err := x.Float64Value()
		return f.Float64, err == nil && f.Valid
	}
	return 0, false
}

func compareRows(a, b []any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) }
