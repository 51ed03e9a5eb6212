package console

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/proxy/rollup"
	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/schema/schematest"
)

// usageScan is a scan of a partition of spans for the SERVER (s) or
// CLIENT (c) side of the usage join: Seq, or by an index (a bitmap heap
// scan follows its bitmap index scan), with the index's name where a plan
// gives it.
var usageScan = regexp.MustCompile(`(?m)(Seq Scan|Bitmap Heap Scan|Index Scan|Index Only Scan)( using (\w+))? on spans_\d+ ([sc])(_\d+)?\b`)

// usageTenantIndex names the tenant and time index of a partition
// ((tenant_id, kind, start_time, trace_id) since migration 0008).
var usageTenantIndex = regexp.MustCompile(`spans_\w*tenant_id_\w*start_time\w*`)

// usageRowsRead is what an executed scan node of EXPLAIN ANALYZE read:
// its rows per loop, then on the lines below it those its filter removed.
var (
	usageActual  = regexp.MustCompile(`actual time=\S+ rows=(\d+) loops=(\d+)`)
	usageRemoved = regexp.MustCompile(`^\s*Rows Removed by Filter: (\d+)`)
)

// usageSeqRead is how many rows the Seq Scan on plan line i read in all
// (0 when it never ran: a partition pruned when the query ran, which
// EXPLAIN without ANALYZE cannot know for a LATERAL's parameters).
func usageSeqRead(lines []string, i int) int {
	m := usageActual.FindStringSubmatch(lines[i])
	if m == nil {
		return 0
	}
	rows, _ := strconv.Atoi(m[1])
	loops, _ := strconv.Atoi(m[2])
	read := rows * loops
	for _, l := range lines[i+1:] {
		if r := usageRemoved.FindStringSubmatch(l); r != nil {
			n, _ := strconv.Atoi(r[1])
			read += n * loops
			break
		}
		if strings.Contains(l, "->") {
			break
		}
	}
	return read
}

// One tenant's usage, a tenant session's (row-level security) or the
// admin's choice of one, reads that tenant's rows by the tenant and time
// index on both sides of the join, not the range's partitions whole: over
// 40,000 calls of 50 tenants in 7 days; and once rolled up, its rows of
// the rollup by the rollup's tenant index.
func TestUsage_OneTenant_ReadsTheTenantTimeIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC()
	pool := schematest.DB(t, now.Add(-8*24*time.Hour), now.Add(48*time.Hour))
	for _, sql := range []string{`
INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, tenant_id, api_key_id, request_model,
    http_status, attributes)
SELECT md5(i::text), left(md5('s' || i), 16), $1::timestamptz - i * interval '15 seconds', 'POST /v1/chat/completions',
    'server', 'unset', 'tenant-' || i % 50, 'key-' || i % 500, 'model-' || i % 20, 200, '{"http.route": "/v1/chat/completions"}'
FROM generate_series(1, 40000) i`, `
INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, name, kind, status_code, tenant_id, api_key_id,
    request_model, input_tokens, output_tokens, cost, cost_currency, upstream_attempt)
SELECT md5(i::text), left(md5('c' || i), 16), left(md5('s' || i), 16),
    $1::timestamptz - i * interval '15 seconds' + interval '1 millisecond', 'chat model', 'client', 'unset',
    'tenant-' || i % 50, 'key-' || i % 500, 'model-' || i % 20, 100, 20, 0.000123, 'USD', 1
FROM generate_series(1, 40000) i`, `ANALYZE loom.spans`} {
		args := []any{now}
		if sql == `ANALYZE loom.spans` {
			args = nil
		}
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, phase := range []string{"live", "rolled up"} {
		if phase == "rolled up" {
			// What a refreshed store looks like: the range's whole hours
			// from the rollup, read by its tenant index too.
			if _, err := rollup.Refresh(ctx, pool, now); err != nil {
				t.Fatal(err)
			}
		}
		usageOneTenantPlans(t, pool, now, phase)
	}
}

func usageOneTenantPlans(t *testing.T, pool *pgxpool.Pool, now time.Time, phase string) {
	ctx := t.Context()
	for _, c := range []struct {
		name string
		s    session
		q    url.Values
	}{
		{"tenant session", session{tenant: "tenant-7", key: "key-7"}, url.Values{"range": {"7d"}, "group": {"model"}}},
		{"admin, one tenant", session{admin: true}, url.Values{"range": {"7d"}, "group": {"key"}, "tenant": {"tenant-7"}}},
	} {
		u, err := parseUsageQuery(c.q, c.s, now)
		if err != nil {
			t.Fatal(err)
		}
		sql, args := u.pageSQL()
		var plan string
		read := func(tx pgx.Tx) error {
			if err := usageSettings(ctx, tx); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE) "+sql, args...)
			if err != nil {
				return err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, l := range lines {
				plan += l + "\n"
			}
			return err
		}
		if c.s.admin {
			err = schema.ReadAll(ctx, pool, time.Minute, read)
		} else {
			err = schema.ReadAsTenant(ctx, pool, c.s.tenant, time.Minute, read)
		}
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		lines := strings.Split(plan, "\n")
		for i, l := range lines {
			m := usageScan.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			kind, index, side := m[1], m[3], m[4]
			switch {
			case kind == "Seq Scan" && usageSeqRead(lines, i) == 0:
				// An empty partition, or one pruned as the query ran.
				continue
			case kind == "Seq Scan":
				t.Errorf("%s, %s: the %s side reads partitions whole:\n%s", phase, c.name, side, plan)
			case kind != "Bitmap Heap Scan" && !usageTenantIndex.MatchString(index):
				t.Errorf("%s, %s: the %s side reads index %s:\n%s", phase, c.name, side, index, plan)
			}
			seen[side] = true
		}
		// A bitmap heap scan names no index: the plan must hold the
		// tenant index's bitmap scans (the partitions' only other index
		// is the primary key, by trace).
		if !seen["s"] || !seen["c"] || !usageTenantIndex.MatchString(plan) {
			t.Errorf("%s, %s: not both sides by the tenant and time index:\n%s", phase, c.name, plan)
		}
		if phase == "rolled up" && !strings.Contains(plan, "usage_hourly_tenant_hour_idx") {
			t.Errorf("%s, %s: the rollup is not read by its tenant index:\n%s", phase, c.name, plan)
		}
	}
}
