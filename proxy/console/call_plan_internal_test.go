package console

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/schema/schematest"
)

// fullSort is a plan's Sort node (an Incremental Sort over an index's
// order, which stops with the first group, is fine).
var (
	fullSort = regexp.MustCompile(`(?m)(^|->)\s*Sort +\(cost`)
	// timeIndex is a scan of the SERVER spans (alias s) by an index that
	// orders them by start time: the tenant's (tenant_id, kind,
	// start_time, trace_id), or for a tenant with half the rows the
	// (kind, start_time, trace_id) one with row-level security's filter
	// (migration 0008).
	timeIndex = regexp.MustCompile(`Index Scan (Backward )?using spans_\w*start_time\w* on spans_\d+ s`)
	// seqScan is a sequential scan of a partition holding rows.
	seqScan = regexp.MustCompile(`Seq Scan on spans_\d+ \w+ +\(cost=[0-9.]+\.\.[1-9]`)
)

// A call page's previous/next links must not scan a tenant's history: over
// 40,000 calls (and their CLIENT spans), each is an index walk from the call's start that stops at
// the first row (a Limit over an index scan, no sequential scan, no sort).
func TestCallPage_Neighbours_WalkTheTenantTimeIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC()
	pool := schematest.DB(t, now.Add(-48*time.Hour), now.Add(24*time.Hour))
	if _, err := pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, start_time, end_time, duration_ms, name, kind, status_code, tenant_id,
    api_key_id, request_model, stream, http_status)
SELECT md5(i::text), left(md5('s' || i), 16), $1::timestamptz - i * interval '3 seconds',
    $1::timestamptz - i * interval '3 seconds' + interval '1 second', 1000, 'POST /v1/chat/completions', 'server',
    'unset', CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, 'k', 'gpt-4o-mini', i % 3 = 0, 200
FROM generate_series(1, 40000) i`, now); err != nil {
		t.Fatal(err)
	}
	// A CLIENT span under each.
	if _, err := pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind, status_code,
    tenant_id, api_key_id, request_model, stream, http_status, upstream_attempt)
SELECT trace_id, left(md5('c' || trace_id), 16), span_id, start_time, end_time, duration_ms, 'chat gpt-4o-mini',
    'client', status_code, tenant_id, api_key_id, request_model, stream, http_status, 1
FROM loom.spans WHERE kind = 'server'`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE loom.spans"); err != nil {
		t.Fatal(err)
	}
	start := now.Add(-10 * time.Hour)
	// A filter that matches almost nothing (here: errors, of which there
	// are none) may rather read the range from the call to now by the same
	// index and sort it: the planner's choice, bounded by that range; it
	// is logged, not held to the walk.
	for _, tc := range []struct {
		name, query string
		walk        bool
	}{
		{"no filter", "", true},
		{"streamed, last 24 h", "stream=true&range=24h", true},
		{"one model, errors", "model=gpt-4o-mini&status=error", false},
	} {
		for _, newer := range []bool{true, false} {
			q, _ := url.ParseQuery(tc.query)
			f, err := parseCallFilter(q, session{tenant: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			sql, args := neighbourSQL(f, now, start, "ffffffffffffffffffffffffffffffff", newer)
			var plan []string
			err = schema.ReadAsTenant(ctx, pool, "acme", 0, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, "EXPLAIN "+sql, args...)
				if err != nil {
					return err
				}
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			if !tc.walk {
				if !strings.Contains(text, "tenant_id") {
					t.Errorf("%s (newer %v): no index of the tenant's is used:\n%s", tc.name, newer, text)
				}
				t.Logf("%s (newer %v):\n%s", tc.name, newer, text)
				continue
			}
			if !strings.HasPrefix(strings.TrimSpace(plan[0]), "Limit") || seqScan.MatchString(text) ||
				fullSort.MatchString(text) || !timeIndex.MatchString(text) {
				t.Errorf("%s (newer %v): not an index walk that stops at the first row:\n%s", tc.name, newer, text)
			}
		}
	}
}
