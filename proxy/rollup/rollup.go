// Package rollup keeps the hourly rollups: loom.usage_hourly, the usage
// rollup, and loom.panel_hourly, the dashboards' facts (dashboards/queries
// Facts, migration 0010). It says what a call's usage is: the one
// definition both the usage rollup and the console's live reads use, so
// that an hour reads the same from either.
//
// Both rollups are caches that are never silently wrong (migrations 0009
// and 0010): every write to loom.spans marks its hours in loom.usage_dirty
// and loom.panel_dirty in the same transaction, readers take marked hours
// from the spans, and Refresh recomputes both rollups of marked hours and
// removes only the marks it saw unchanged. It must never remove a mark it did not recompute, nor
// write an hour from a snapshot older than the marks it removes.
package rollup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/dashboards/queries"
)

// IsCall keeps the SERVER spans (alias s) that are calls. A SERVER span
// is named "METHOD route", or just the method when the request matched no
// route (tracing's appendServerName): a request for an unknown URL has no
// route, and GET /v1/models (and /v1/models/{model}) is answered from the
// gateway's snapshot and generates nothing, so neither is a call. The
// name is a typed column with statistics, so the planner estimates this
// well, where a test on the attributes' http.route it cannot.
const IsCall = `s.name LIKE '% /%' AND s.name NOT LIKE '% /v1/models%'`

// attempts is the number of upstream attempts a SERVER span (alias s)
// records: loom.upstream.attempts, written only when the call failed over
// (so 1 without it); anything but a JSON number counts as 1 rather than
// failing the read.
const attempts = `CASE WHEN jsonb_typeof(s.attributes->'loom.upstream.attempts') = 'number'
    THEN (s.attributes->>'loom.upstream.attempts')::numeric ELSE 1 END`

// attemptSlack is how long after its call's SERVER span a CLIENT span may
// start: every attempt starts before anything reaches the client, so
// within the routing attempts' connect and first-byte timeouts (minutes
// with the defaults). Migrations 0009 and 0010's trigger relies on it too: a CLIENT
// span marks its own hour and the one before.
const attemptSlack = "interval '1 hour'"

// Aggregate is the usage of the calls whose SERVER span starts in [lo, hi)
// (SQL expressions, evaluated once per row of an enclosing LATERAL join),
// one row per tenant, key, model and cost currency: tenant_id, api_key_id,
// model, currency, then the sums as loom.usage_hourly holds them. tenant, when not "", is an SQL
// expression the calls' tenant must equal: given on both sides of the
// join, so that each reads the tenant's index rather than the range's
// partitions whole (a call's spans all carry its tenant). Rows are still
// subject to row-level security.
//
// Tokens and cost come from the CLIENT span of the attempt that served (or
// failed last), so a call that failed over counts once: the tracing
// encoder numbers a call's attempts 1..n and writes n on the SERVER span
// (omitting it, and the CLIENT span's number counting as 1, when there was
// one attempt; spans from before routing have neither). It is the span
// dashboards/queries LastAttempt keeps, found with one join instead of an
// anti-join. A call with usage but no cost is unpriced (no price covered
// it), never a cost of 0. The model is the one the client asked for,
// falling back to the attempt's.
func Aggregate(lo, hi, tenant string) string {
	sw, cw := "", ""
	if tenant != "" {
		sw, cw = "\n  AND s.tenant_id = "+tenant, " AND c.tenant_id = "+tenant
	}
	return `SELECT s.tenant_id, s.api_key_id, coalesce(s.request_model, c.request_model, '') AS model,
  c.cost_currency AS currency,
  count(*) AS calls,
  count(*) FILTER (WHERE c.cost IS NULL AND (c.input_tokens IS NOT NULL OR c.output_tokens IS NOT NULL)) AS unpriced,
  sum(c.input_tokens)::bigint AS input_tokens, sum(c.output_tokens)::bigint AS output_tokens,
  sum(c.cache_read_tokens)::bigint AS cache_read_tokens, sum(c.reasoning_tokens)::bigint AS reasoning_tokens,
  sum(c.cost) AS cost
FROM loom.spans s
LEFT JOIN loom.spans c ON c.trace_id = s.trace_id AND c.parent_span_id = s.span_id AND c.kind = 'client'
  AND c.start_time >= ` + lo + ` AND c.start_time < ` + hi + ` + ` + attemptSlack + cw + `
  AND coalesce(c.upstream_attempt, 1) = ` + attempts + `
WHERE s.kind = 'server' AND s.start_time >= ` + lo + ` AND s.start_time < ` + hi + `
  AND ` + IsCall + sw + `
GROUP BY 1, 2, 3, 4`
}

// sums adds up rows of Aggregate: numeric sums of bigints and of
// numerics, exact, NULL where every row's is.
const sums = `sum(calls), sum(unpriced), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
  sum(reasoning_tokens), sum(cost)`

// lockKey serialises refreshers (one per collector replica) across the
// database: two recomputing the same hour would both write it.
const lockKey int64 = 0x6c6f6f6d_726f6c6c // "loomroll"

// batchHours is how many hours one refresh transaction recomputes: small
// enough that a refresh holds its rows briefly, large enough that a
// backlog (a migrated store, a replayed spool) clears in few rounds.
const batchHours = 6

// maxBatches bounds one Refresh, so that a long backlog is cleared over
// several calls (the next one goes on).
const maxBatches = 100

// Beginner is what Refresh needs from a connection: *pgxpool.Pool and
// *pgx.Conn satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Refresh recomputes the marked hours that have ended by now (the current
// hour changes until it ends, and readers take it from the spans anyway),
// the newest first, batchHours per transaction, each once, until none is
// left, ctx ends or it has run maxBatches transactions. It returns how
// many hours it wrote. When another refresher holds the lock it returns at
// once, having done nothing: that one is at it.
//
// Each hour once: an hour that writers mark again while it is recomputed
// keeps its mark (the previous hour does while the current one has
// traffic: a CLIENT span marks the hour before its own), and taking it
// again at once would only recompute it again, a batch after another.
func Refresh(ctx context.Context, db Beginner, now time.Time) (int, error) {
	done := []time.Time{} // an empty array, not NULL, to the query
	for range maxBatches {
		hours, err := refreshBatch(ctx, db, now, done)
		done = append(done, hours...)
		if err != nil || len(hours) == 0 || ctx.Err() != nil {
			return len(done), err
		}
	}
	return len(done), nil
}

// seenMarks are the marks of one table a refresh read: hour, writer and
// count, side by side.
type seenMarks struct {
	hours   []time.Time
	writers []int32
	counts  []int64
}

// errBusy is refreshBatch's answer when another refresher holds the lock.
var errBusy = errors.New("rollup: another refresher is running")

// refreshBatch recomputes the newest batchHours marked ended hours not in
// done, and returns them.
func refreshBatch(ctx context.Context, db Beginner, now time.Time, done []time.Time) ([]time.Time, error) {
	var took []time.Time
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", lockKey).Scan(&ok); err != nil {
			return fmt.Errorf("rollup: lock: %w", err)
		}
		if !ok {
			return errBusy
		}
		// The marks of the newest ended hours, as they are now, of both
		// rollups (table: the mark's table): the hours' spans are read by
		// a later statement, so from a snapshot that holds every span
		// these marks stand for.
		rows, err := tx.Query(ctx, `WITH m AS (
  SELECT 'usage_dirty' AS tab, hour, writer, n FROM loom.usage_dirty
  UNION ALL
  SELECT 'panel_dirty', hour, writer, n FROM loom.panel_dirty
)
SELECT tab, hour, writer, n FROM m
WHERE hour IN (SELECT DISTINCT hour FROM m WHERE hour <= $1 AND hour <> ALL($3::timestamptz[])
  ORDER BY hour DESC LIMIT $2)`,
			now.Add(-time.Hour), batchHours, done)
		if err != nil {
			return fmt.Errorf("rollup: marks: %w", err)
		}
		var (
			hours []time.Time
			seen  = map[time.Time]bool{}
			marks = map[string]*seenMarks{"usage_dirty": {}, "panel_dirty": {}}
		)
		var (
			tab string
			h   time.Time
			w   int32
			c   int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&tab, &h, &w, &c}, func() error {
			if !seen[h] {
				seen[h] = true
				hours = append(hours, h)
			}
			m := marks[tab]
			m.hours, m.writers, m.counts = append(m.hours, h), append(m.writers, w), append(m.counts, c)
			return nil
		}); err != nil {
			return fmt.Errorf("rollup: marks: %w", err)
		}
		if len(hours) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM loom.usage_hourly WHERE hour = ANY($1)`, hours); err != nil {
			return fmt.Errorf("rollup: clear usage: %w", err)
		}
		if _, err := tx.Exec(ctx, `
WITH a AS MATERIALIZED (
  SELECT w.h, a.*
  FROM unnest($1::timestamptz[]) AS w(h)
  CROSS JOIN LATERAL (`+Aggregate("w.h", "w.h + interval '1 hour'", "")+`) a
)
INSERT INTO loom.usage_hourly (hour, tenant_id, dim, dim_value, currency, calls, unpriced,
  input_tokens, output_tokens, cache_read_tokens, reasoning_tokens, cost)
SELECT h, tenant_id, 'key', api_key_id, currency, `+sums+`
FROM a GROUP BY h, tenant_id, api_key_id, currency
UNION ALL
SELECT h, tenant_id, 'model', model, currency, `+sums+`
FROM a GROUP BY h, tenant_id, model, currency`, hours); err != nil {
			return fmt.Errorf("rollup: write usage: %w", err)
		}
		if err := writeFacts(ctx, tx, hours); err != nil {
			return err
		}
		// Only the marks seen above, with the count seen: a writer that
		// marked an hour again meanwhile bumped n, and keeps its mark
		// (this statement waits for its transaction, then re-checks n).
		for _, tab := range []string{"usage_dirty", "panel_dirty"} {
			m := marks[tab]
			if _, err := tx.Exec(ctx, `
DELETE FROM loom.`+tab+` d
USING unnest($1::timestamptz[], $2::integer[], $3::bigint[]) AS m(hour, writer, n)
WHERE d.hour = m.hour AND d.writer = m.writer AND d.n = m.n`, m.hours, m.writers, m.counts); err != nil {
				return fmt.Errorf("rollup: unmark %s: %w", tab, err)
			}
		}
		took = hours
		return nil
	})
	if errors.Is(err, errBusy) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return took, nil
}

// writeFacts recomputes the dashboards' facts (dashboards/queries Facts)
// of hours: each fact's rows per tenant, then, for a fact read over all
// tenants, their sums.
func writeFacts(ctx context.Context, tx pgx.Tx, hours []time.Time) error {
	if _, err := tx.Exec(ctx, `DELETE FROM loom.panel_hourly WHERE NOT daily AND hour = ANY($1)`, hours); err != nil {
		return fmt.Errorf("rollup: clear facts: %w", err)
	}
	cols := queries.ColumnList()
	for _, f := range queries.Facts() {
		w := queries.Window{Lo: "w.h", Hi: "w.h + interval '1 hour'"}
		if _, err := tx.Exec(ctx, `INSERT INTO loom.panel_hourly (fact, hour, tenant_id, `+cols+`)
SELECT $2, w.h, l.*
FROM unnest($1::timestamptz[]) AS w(h)
CROSS JOIN LATERAL (`+f.Select(w)+`) l`, hours, f.ID); err != nil {
			return fmt.Errorf("rollup: fact %s: %w", f.ID, err)
		}
		if !f.AllTenants {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO loom.panel_hourly (fact, hour, all_tenants, tenant_id, `+cols+`)
SELECT $2, r.hour, true, NULL, `+f.Sums()+`
FROM loom.panel_hourly r
WHERE r.fact = $2 AND r.hour = ANY($1) AND NOT r.daily AND NOT r.all_tenants
GROUP BY `+strings.Join(append([]string{"r.hour"}, f.Keys("r.")...), ", "), hours, f.ID); err != nil {
			return fmt.Errorf("rollup: fact %s over all tenants: %w", f.ID, err)
		}
	}
	return writeDays(ctx, tx, hours)
}

// writeDays recomputes the daily rows of the Daily facts for the UTC days
// of hours, from their hourly rows. A reader takes a day's daily rows only
// when none of its hours is marked; the refresh that removed the last of
// its marks recomputed them after writing its hours, from the others'
// rows, which were current (unmarked) then, so they hold the day's spans.
func writeDays(ctx context.Context, tx pgx.Tx, hours []time.Time) error {
	var days []time.Time
	for _, h := range hours {
		d := h.UTC().Truncate(24 * time.Hour)
		if !slices.Contains(days, d) {
			days = append(days, d)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM loom.panel_hourly WHERE daily AND hour = ANY($1)`, days); err != nil {
		return fmt.Errorf("rollup: clear days: %w", err)
	}
	for _, f := range queries.Facts() {
		if !f.Daily {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO loom.panel_hourly (fact, hour, daily, all_tenants, tenant_id, `+queries.ColumnList()+`)
SELECT $2, w.d, true, r.all_tenants, r.tenant_id, `+f.Sums()+`
FROM unnest($1::timestamptz[]) AS w(d)
JOIN loom.panel_hourly r ON r.fact = $2 AND NOT r.daily AND r.hour >= w.d AND r.hour < w.d + interval '24 hours'
GROUP BY `+strings.Join(append([]string{"w.d", "r.all_tenants", "r.tenant_id"}, f.Keys("r.")...), ", "), days, f.ID); err != nil {
			return fmt.Errorf("rollup: fact %s by day: %w", f.ID, err)
		}
	}
	return nil
}
