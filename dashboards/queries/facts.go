package queries

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Facts: the dashboards' hourly rollup (migration 0010, loom.panel_hourly).
//
// A panel that aggregates a range reads, over a range longer than
// RollupAfter and with no model or provider chosen, a fact instead of the
// spans: the additive pieces of its numbers per UTC hour and tenant
// (counts, sums, a latency histogram). proxy/rollup writes each ended hour's
// facts with the Fact's SQL; the panel reads the rows of the range's whole
// hours that no span has changed since (no mark in loom.panel_dirty), and
// computes the rest with the same SQL from the spans: the marked hours and
// the range's cut first and last hours. Either way a row holds the same
// numbers, so a panel reads the same from both, only faster from the
// rollup. Percentiles alone change: from a histogram they are approximate
// (Bin), where the spans give them exactly.
//
// A fact's columns are named for their place (k1..k3 group keys, bin,
// n1..n7 counts and sums, x an exact numeric sum, t_min and t_max); each
// fact below says what it puts in them, and its panels read them so.

// RollupAfter is the range beyond which a panel reads its fact: a chart
// over it has buckets of whole hours (proxy/console dashRange), and from
// the spans every panel of the overview over 24 hours at a million spans
// took over half a second. Shorter ranges read the spans, exact and fast.
const RollupAfter = 6 * time.Hour

// rollupAfter is RollupAfter in SQL.
var rollupAfter = fmt.Sprintf("interval '%d seconds'", int64(RollupAfter/time.Second))

// Bin is the histogram bin of a positive value (an SQL expression):
// binsPerDoubling bins per doubling, so a bin spans 9% and its middle,
// which a percentile from the rollup reports, is within 4.4% of every
// value in it. Zero and below (and NULL) are bin zeroBin.
func Bin(v string) string {
	return fmt.Sprintf("CASE WHEN %[1]s > 0 THEN floor(ln(%[1]s) * %[2]d / ln(2))::integer ELSE %[3]d END", v, binsPerDoubling, zeroBin)
}

const (
	binsPerDoubling = 8
	zeroBin         = -100000
)

// binValue is the value a bin stands for: its geometric middle (0 for
// zeroBin).
func binValue(bin string) string {
	return fmt.Sprintf("CASE WHEN %[1]s = %[2]d THEN 0 ELSE power(2, (%[1]s + 0.5::float8) / %[3]d) END", bin, zeroBin, binsPerDoubling)
}

// Fact is one kind of row of loom.panel_hourly.
type Fact struct {
	ID string
	// Cols are the columns SQL selects after tenant_id, by their names in
	// loom.panel_hourly; the others are NULL.
	Cols []string
	// SQL computes the fact of the spans in the window w: one row per
	// tenant and group keys.
	SQL func(w Window) string
	// AllTenants facts are also summed over all tenants (a histogram's
	// rows: see migration 0010); the admin's all-tenant panels read those.
	AllTenants bool
	// Maxes are the count columns that add up by their greatest (a
	// highest number), where the others add up by their sum.
	Maxes []string
	// Daily facts (a table's: many rows an hour, read over the whole
	// range) are also summed per UTC day, and a range reads its whole
	// unmarked days from those: a day has about as many rows as an hour.
	Daily bool
}

// Window is where a fact's SQL reads: start times (the pipeline's: the
// times spans were stored) in [Lo, Hi), SQL expressions; Tenant, when not "", is a
// condition on a tenant_id column ("%s" stands for it) that the spans must
// meet, so that a tenant's live hour reads the tenant's spans only.
type Window struct {
	Lo, Hi string
	Tenant string
}

// tenant is w's tenant condition on column col, as an AND clause.
func (w Window) tenant(col string) string {
	if w.Tenant == "" {
		return ""
	}
	return "\n  AND " + fmt.Sprintf(w.Tenant, col)
}

// columns are loom.panel_hourly's fact columns, in order, with their types
// (a fact's unused columns are NULLs of them).
var columns = []struct{ name, typ string }{
	{"k1", "text"}, {"k2", "text"}, {"k3", "text"}, {"bin", "integer"},
	{"n1", "bigint"}, {"n2", "bigint"}, {"n3", "bigint"}, {"n4", "bigint"},
	{"n5", "bigint"}, {"n6", "bigint"}, {"n7", "bigint"},
	{"x", "numeric"}, {"t_min", "timestamptz"}, {"t_max", "timestamptz"},
}

// ColumnList is every fact column of loom.panel_hourly, comma separated.
func ColumnList() string { return columnList("") }

// columnList is ColumnList with prefix p (a table alias and its dot)
// before each name.
func columnList(p string) string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = p + c.name
	}
	return strings.Join(names, ", ")
}

// Select is f's SQL over w with every fact column, in ColumnList's order
// after tenant_id (NULLs where f has none).
func (f Fact) Select(w Window) string {
	var b strings.Builder
	b.WriteString("SELECT l.tenant_id")
	for _, c := range columns {
		if slices.Contains(f.Cols, c.name) {
			b.WriteString(", l." + c.name)
		} else {
			b.WriteString(", NULL::" + c.typ + " AS " + c.name)
		}
	}
	b.WriteString("\nFROM (" + f.SQL(w) + ") l")
	return b.String()
}

// Sums is the SQL that adds up f's rows (alias r) over tenants or hours:
// what its all-tenant and daily rows hold.
func (f Fact) Sums() string {
	var sel []string
	for _, c := range columns {
		switch {
		case !slices.Contains(f.Cols, c.name):
			sel = append(sel, "NULL::"+c.typ)
		case c.name == "t_min":
			sel = append(sel, "min(r.t_min)")
		case c.name == "t_max" || slices.Contains(f.Maxes, c.name):
			sel = append(sel, "max(r."+c.name+")")
		case c.name[0] == 'n' || c.name == "x":
			sel = append(sel, "sum(r."+c.name+")")
		default:
			sel = append(sel, "r."+c.name)
		}
	}
	return strings.Join(sel, ", ")
}

// Keys are f's group keys (those of its columns it does not add up),
// with prefix p: what its all-tenant rows are grouped by.
func (f Fact) Keys(p string) []string {
	var keys []string
	for _, c := range columns {
		if slices.Contains(f.Cols, c.name) && (c.name[0] == 'k' || c.name == "bin") {
			keys = append(keys, p+c.name)
		}
	}
	return keys
}

// Facts returns every fact, in a stable order.
func Facts() []Fact {
	return []Fact{factRequests, factLatency, factOverhead, factTTFC, factAttempts, factStreams, factTokensBy,
		factSpendByKey, factSpendByModel, factFailures, factFallbacks, factKeys, factUsageSource,
		factIngested, factIngestLag, factRuns}
}

// isError is a SERVER span (alias s) that answered an error.
const isError = "(s.status_code = 'error' OR s.http_status >= 400)"

// isLimited is a SERVER span (alias s) refused by a limit.
const isLimited = "(s.error_type = 'rate_limit_exceeded' OR s.attributes->>'loom.outcome' = 'rate_limited')"

func serverIn(w Window) string {
	return "FROM loom.spans s\nWHERE s.kind = 'server' AND s.start_time >= " + w.Lo + " AND s.start_time < " + w.Hi + w.tenant("s.tenant_id")
}

func clientIn(w Window) string {
	return "FROM loom.spans c\nWHERE c.kind = 'client' AND c.start_time >= " + w.Lo + " AND c.start_time < " + w.Hi + w.tenant("c.tenant_id")
}

// histogram is a fact of the bins of value v over the spans of from
// (alias s).
func histogram(v, from string) string {
	return "SELECT s.tenant_id, " + Bin(v) + " AS bin, count(*) AS n1\n" + from + "\n  AND " + v + " IS NOT NULL\nGROUP BY 1, 2"
}

var (
	// requests: SERVER spans. n1 requests, n2 errors, n3 clients that
	// left, n4 requests a limit refused.
	factRequests = Fact{ID: "requests", Cols: []string{"n1", "n2", "n3", "n4"}, SQL: func(w Window) string {
		return "SELECT s.tenant_id, count(*) AS n1,\n" +
			"  count(*) FILTER (WHERE " + isError + ") AS n2,\n" +
			"  count(*) FILTER (WHERE s.client_disconnected) AS n3,\n" +
			"  count(*) FILTER (WHERE " + isLimited + ") AS n4\n" + serverIn(w) + "\nGROUP BY 1"
	}}
	// latency: the bins of what clients waited for (overview_latency).
	factLatency = Fact{ID: "latency", Cols: []string{"bin", "n1"}, AllTenants: true, SQL: func(w Window) string {
		return histogram("s.duration_ms", serverIn(w)+"\n  AND s.client_disconnected IS NOT TRUE")
	}}
	// overhead: the bins of Loom's overhead.
	factOverhead = Fact{ID: "overhead", Cols: []string{"bin", "n1"}, AllTenants: true, SQL: func(w Window) string {
		return histogram("s.overhead_ms", serverIn(w))
	}}
	// ttfc: the bins of every attempt's time to first chunk; k1 'stream'
	// for streamed attempts.
	factTTFC = Fact{ID: "ttfc", Cols: []string{"k1", "bin", "n1"}, AllTenants: true, SQL: func(w Window) string {
		return "SELECT c.tenant_id, CASE WHEN c.stream THEN 'stream' END AS k1, " + Bin("c.time_to_first_chunk_ms") + " AS bin, count(*) AS n1\n" +
			clientIn(w) + "\n  AND c.time_to_first_chunk_ms IS NOT NULL\nGROUP BY 1, 2, 3"
	}}
	// attempts: CLIENT spans, every attempt, by k1 the cost currency. n1
	// served, n2 failed, n3 failovers, n4 fallbacks, n5 and n6 input and
	// output tokens, n7 attempts with a cost, x their cost.
	factAttempts = Fact{ID: "attempts", Cols: []string{"k1", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "x"}, SQL: func(w Window) string {
		return "SELECT c.tenant_id, c.cost_currency AS k1,\n" +
			"  count(*) FILTER (WHERE c.error_type IS NULL) AS n1,\n" +
			"  count(*) FILTER (WHERE c.error_type IS NOT NULL) AS n2,\n" +
			"  count(*) FILTER (WHERE " + isFailover + ") AS n3,\n" +
			"  count(*) FILTER (WHERE c.error_type IS NULL AND " + fallbackModel + " IS NOT NULL) AS n4,\n" +
			"  sum(c.input_tokens) AS n5, sum(c.output_tokens) AS n6,\n" +
			"  count(c.cost) AS n7, sum(c.cost) AS x\n" + clientIn(w) + "\nGROUP BY 1, 2"
	}}
	// streams: streamed attempts: n1 of them, n2 their chunks.
	factStreams = Fact{ID: "streams", Cols: []string{"n1", "n2"}, SQL: func(w Window) string {
		return "SELECT c.tenant_id, count(*) AS n1, sum(c.chunks) AS n2\n" + clientIn(w) + "\n  AND c.stream\nGROUP BY 1"
	}}
	// tokens_by: calls (last attempts) by k1 model and k2 provider. n1
	// calls, n2 and n3 input and output tokens.
	factTokensBy = Fact{ID: "tokens_by", Daily: true, Cols: []string{"k1", "k2", "n1", "n2", "n3"}, SQL: func(w Window) string {
		return "SELECT c.tenant_id, c.request_model AS k1, c.provider AS k2,\n" +
			"  count(*) AS n1, sum(c.input_tokens) AS n2, sum(c.output_tokens) AS n3\n" +
			clientIn(w) + "\n  AND " + lastAttempt("c", w.Lo, w.Hi) + "\nGROUP BY 1, 2, 3"
	}}
	// spend_by_key: priced attempts by k1 key and k2 currency: n1 of
	// them, x their cost.
	factSpendByKey = Fact{ID: "spend_by_key", Daily: true, Cols: []string{"k1", "k2", "n1", "x"}, SQL: func(w Window) string {
		return "SELECT c.tenant_id, c.api_key_id AS k1, c.cost_currency AS k2, count(*) AS n1, sum(c.cost) AS x\n" +
			clientIn(w) + "\n  AND c.cost IS NOT NULL\nGROUP BY 1, 2, 3"
	}}
	// spend_by_model: the same by k1 model and k2 currency.
	factSpendByModel = Fact{ID: "spend_by_model", Cols: []string{"k1", "k2", "n1", "x"}, SQL: func(w Window) string {
		return "SELECT c.tenant_id, c.request_model AS k1, c.cost_currency AS k2, count(*) AS n1, sum(c.cost) AS x\n" +
			clientIn(w) + "\n  AND c.cost IS NOT NULL\nGROUP BY 1, 2, 3"
	}}
	// failures: failed attempts by k1 deployment ('' for none), k2
	// provider and k3 error type. n1 of them, n2 those a later attempt
	// followed, t_max the last.
	factFailures = Fact{ID: "failures", Daily: true, Cols: []string{"k1", "k2", "k3", "n1", "n2", "t_max"}, SQL: func(w Window) string {
		return "SELECT c.tenant_id, coalesce(c.deployment, '') AS k1, c.provider AS k2, c.error_type AS k3,\n" +
			"  count(*) AS n1, count(*) FILTER (WHERE NOT " + lastAttempt("c", w.Lo, w.Hi) + ") AS n2, max(c.start_time) AS t_max\n" +
			clientIn(w) + "\n  AND c.error_type IS NOT NULL\nGROUP BY 1, 2, 3, 4"
	}}
	// fallbacks: attempts a fallback model's deployment served, by k1 the
	// model asked for and k2 the fallback: n1 of them.
	factFallbacks = Fact{ID: "fallbacks", Daily: true, Cols: []string{"k1", "k2", "n1"}, SQL: func(w Window) string {
		return "SELECT c.tenant_id, s.request_model AS k1, " + fallbackModel + " AS k2, count(*) AS n1\n" +
			"FROM loom.spans c\nJOIN loom.spans s ON s.trace_id = c.trace_id AND s.span_id = c.parent_span_id AND s.kind = 'server'\n" +
			"  AND s.start_time >= " + w.Lo + " - " + CallWindow + " AND s.start_time < " + w.Hi + "\n" +
			"WHERE c.kind = 'client' AND c.start_time >= " + w.Lo + " AND c.start_time < " + w.Hi + w.tenant("c.tenant_id") +
			"\n  AND c.error_type IS NULL AND " + fallbackModel + " IS NOT NULL\nGROUP BY 1, 2, 3"
	}}
	// keys: requests by k1 key: n1 of them, n2 those a limit refused,
	// t_max the last.
	factKeys = Fact{ID: "keys", Daily: true, Cols: []string{"k1", "n1", "n2", "t_max"}, SQL: func(w Window) string {
		return "SELECT s.tenant_id, s.api_key_id AS k1, count(*) AS n1,\n" +
			"  count(*) FILTER (WHERE " + isLimited + ") AS n2, max(s.start_time) AS t_max\n" + serverIn(w) + "\nGROUP BY 1, 2"
	}}
	// usage_source: streamed calls (last attempts) by k1 where their
	// usage came from ('none'): n1 of them.
	factUsageSource = Fact{ID: "usage_source", Cols: []string{"k1", "n1"}, SQL: func(w Window) string {
		return "SELECT c.tenant_id, coalesce(c.usage_source, 'none') AS k1, count(*) AS n1\n" +
			clientIn(w) + "\n  AND c.stream\n  AND " + lastAttempt("c", w.Lo, w.Hi) + "\nGROUP BY 1, 2"
	}}
	// ingested: spans by the hour they were stored, not started (those
	// stored within a day of their start: storedSoon), with no tenant (the
	// pipeline's facts are the admin's alone): n1 of them.
	factIngested = Fact{ID: "ingested", Cols: []string{"n1"}, SQL: func(w Window) string {
		return "SELECT NULL::text AS tenant_id, count(*) AS n1\n" + ingestedIn(w) + "\nGROUP BY 1"
	}}
	// ingest_lag: the bins of the time from a span's end to its storing.
	factIngestLag = Fact{ID: "ingest_lag", Cols: []string{"bin", "n1"}, SQL: func(w Window) string {
		return "SELECT NULL::text AS tenant_id, " + Bin(ingestLag) + " AS bin, count(*) AS n1\n" + ingestedIn(w) +
			"\n  AND end_time IS NOT NULL\nGROUP BY 1, 2"
	}}
	// runs: a run's numbered calls, by k1 instance and k2 run (''): t_min
	// its first span, n1 the last number its stop marker gives, n2 the
	// highest stored, n3 the numbers stored (a number's SERVER span, and
	// any duplicate of it, start at one time, so in one hour), n4 1 when it
	// stopped cleanly.
	factRuns = Fact{ID: "runs", Daily: true, Maxes: []string{"n1", "n2", "n4"}, Cols: []string{"k1", "k2", "n1", "n2", "n3", "n4", "t_min"}, SQL: func(w Window) string {
		return "SELECT NULL::text AS tenant_id, s.instance_id AS k1, coalesce(s.run_id, '') AS k2,\n" +
			"  " + runLastSeq + " AS n1,\n" +
			"  max(s.seq) AS n2,\n" +
			"  count(DISTINCT s.seq) FILTER (WHERE s.kind = 'server') AS n3,\n" +
			"  CASE WHEN " + runStopped + " THEN 1 ELSE 0 END AS n4,\n" +
			"  min(s.start_time) AS t_min\n" +
			"FROM loom.spans s\nWHERE s.start_time >= " + w.Lo + " AND s.start_time < " + w.Hi + "\n" + isRunSpan + "\nGROUP BY 2, 3"
	}}
)

// ingestLag is how long after its end a span was stored, in ms.
// A span stored "before" it ended (the proxy's clock ahead of Postgres's)
// has a lag of 0, in both reads: a histogram has no bins below zero.
const ingestLag = "greatest(extract(epoch FROM ingested_at - end_time) * 1000, 0)"

// isFailover is a CLIENT span (alias c) that served a call after an
// earlier attempt failed.
const isFailover = "c.error_type IS NULL AND c.upstream_attempt > 1"

// runLastSeq is the last number a run's stop marker gives, over its spans
// (alias s); runStopped whether it stopped cleanly.
const (
	runLastSeq = "max((s.attributes->>'loom.run.last_seq')::bigint) FILTER (WHERE s.kind = 'internal')"
	runStopped = "bool_or(s.kind = 'internal' AND s.attributes->>'loom.run.event' = 'stop')"
)

// isRunSpan keeps the spans that number a run's calls (alias s): numbered
// SERVER spans and the run's own markers.
const isRunSpan = "  AND s.instance_id IS NOT NULL\n" +
	"  AND ((s.kind = 'server' AND s.seq IS NOT NULL) OR (s.kind = 'internal' AND s.name = 'loom run'))"

// storedSoon keeps spans stored within a day of their start: what the
// pipeline's panels count, in any window of ingest times, so that a fact's
// hour holds what a range over it does.
const storedSoon = "start_time >= ingested_at - interval '1 day'"

func ingestedIn(w Window) string {
	return "FROM loom.spans\nWHERE ingested_at >= " + w.Lo + " AND ingested_at < " + w.Hi +
		"\n  AND start_time >= (" + w.Lo + ")::timestamptz - interval '1 day' AND " + storedSoon
}

// factVars are the variables of a dashboard that a panel's fact has to honour:
// tenant (a fact's rows are per tenant) and the others, which a fact does
// not break down by, so that a panel with one of them chosen reads the
// spans.
type factVars struct {
	tenant bool
	others []string
}

var (
	allVars    = factVars{tenant: true, others: []string{"model", "provider"}}
	tenantVars = factVars{tenant: true, others: []string{"model"}}
	noVars     = factVars{}
)

// rolled is the SQL of a panel that reads fact f when it can, and raw (its
// query over the spans) when not: f serves a range longer than
// RollupAfter with every variable but tenant on All. read is the panel's
// query over f's rows, the relation f (hour, tenant_id and the fact
// columns), a series' bucketed by factBucket; order orders the panel's
// rows by its output columns ("" for a single row). Both branches return
// the same columns; Postgres plans the branch the constants rule out as an
// empty result and never runs it.
func rolled(f Fact, v factVars, read, raw, order string) Source {
	use := "$__timeTo()::timestamptz - $__timeFrom()::timestamptz > " + rollupAfter
	for _, o := range v.others {
		use += " AND " + AllValue + " IN ($" + o + ")"
	}
	// scopes are the conditions on f's rows (alias r) of who reads what,
	// each read apart: an index serves each (fact, all_tenants or
	// tenant_id, daily, hour), where a condition the planner cannot
	// settle (the reader's role) would leave it to read every fact's
	// rows of the range by the hour index.
	var scopes []string
	live := ""
	switch {
	case !v.tenant:
		scopes = []string{"NOT r.all_tenants"}
	case f.AllTenants:
		// The all-tenant rows when every tenant is chosen and the reader
		// is not a tenant (row-level security hides those rows from a
		// tenant, who reads its own instead); a one-time condition of
		// each read, which runs one of them.
		everyone := AllValue + " IN ($tenant) AND (SELECT coalesce(current_setting('loom.tenant_id', true), '') = '')"
		scopes = []string{"r.all_tenants AND " + everyone,
			"NOT r.all_tenants AND " + Filter("r.tenant_id", "tenant") + "\n  AND NOT (" + everyone + ")"}
		live = Filter("%s", "tenant")
	default:
		scopes = []string{"NOT r.all_tenants AND " + Filter("r.tenant_id", "tenant")}
		live = Filter("%s", "tenant")
	}
	cols := "r.hour, r.tenant_id, " + columnList("r.")
	// The marks, read once into an array: the few marked hours against
	// thousands of rows (an anti-join probes the marks once a row).
	unmarked := "r.hour <> ALL ((SELECT coalesce(array_agg(d.hour), '{}') FROM loom.panel_dirty d)::timestamptz[])"
	var rows string
	if f.Daily {
		// The whole unmarked days from the daily rows, the rest of the
		// range's unmarked whole hours from the hourly. (A Daily fact is
		// a table's, never AllTenants: one scope.)
		rows = "WITH days AS (" + rangeDays + "), f AS (\n" +
			"SELECT " + cols + "\nFROM days\nJOIN loom.panel_hourly r ON r.fact = '" + f.ID + "' AND NOT r.daily\n" +
			"  AND r.hour >= days.lo AND r.hour < days.hi AND r.hour + interval '1 hour' <= days.hi\n" +
			"WHERE NOT days.whole AND " + scopes[0] + "\n  AND " + unmarked + "\n" +
			"UNION ALL\n" +
			"SELECT " + cols + "\nFROM days\nJOIN loom.panel_hourly r ON r.fact = '" + f.ID + "' AND r.daily AND r.hour = days.d\n" +
			"WHERE days.whole AND " + scopes[0] + "\n"
	} else {
		var reads []string
		for _, scope := range scopes {
			reads = append(reads, "SELECT "+cols+"\nFROM loom.panel_hourly r\n"+
				"WHERE r.fact = '"+f.ID+"' AND NOT r.daily AND r.hour >= $__timeFrom() AND r.hour < $__timeTo()\n"+
				"  AND r.hour + interval '1 hour' <= $__timeTo()\n"+
				"  AND "+scope+"\n  AND "+unmarked+"\n")
		}
		rows = "WITH f AS (\n" + strings.Join(reads, "UNION ALL\n")
	}
	sql := "SELECT * FROM (\n" + rows +
		"UNION ALL\n" +
		"SELECT w.h, l.*\nFROM (" + liveHours + ") w\nCROSS JOIN LATERAL (" + f.Select(Window{Lo: "w.lo", Hi: "w.hi", Tenant: live}) + ") l\n" +
		")\n" + read + "\n) q WHERE " + use + "\n" +
		"UNION ALL\n" +
		"SELECT * FROM (\n" + raw + "\n) q WHERE NOT (" + use + ")"
	if order != "" {
		sql = "SELECT * FROM (\n" + sql + "\n) u\nORDER BY " + order
	}
	return Source{SQL: sql, Raw: raw, Fact: f.ID}
}

// rangeDays are the UTC days the range touches, each with the part of it
// in the range [lo, hi), whole when the range holds all of it and none of
// its hours is marked: a Daily fact's daily rows hold such a day. Days are
// 24 hours, whatever the session's time zone.
const rangeDays = "SELECT d, greatest(d, $__timeFrom()::timestamptz) AS lo, least(d + interval '24 hours', $__timeTo()::timestamptz) AS hi,\n" +
	"    d >= $__timeFrom()::timestamptz AND d + interval '24 hours' <= $__timeTo()::timestamptz\n" +
	"      AND NOT EXISTS (SELECT 1 FROM loom.panel_dirty m WHERE m.hour >= d AND m.hour < d + interval '24 hours') AS whole\n" +
	"  FROM generate_series(date_trunc('day', $__timeFrom()::timestamptz, 'UTC'), $__timeTo()::timestamptz - interval '1 microsecond', interval '24 hours') d"

// liveHours are the hours of the range that a fact reads from the spans,
// each with the part of it in the range [lo, hi): the first and last when
// the range cuts them, and those marked (changed since their rollup, or
// not yet rolled up: the current hour is marked by its own spans).
const liveHours = "SELECT h, greatest(h, $__timeFrom()::timestamptz) AS lo, least(h + interval '1 hour', $__timeTo()::timestamptz) AS hi\n" +
	"  FROM generate_series(date_trunc('hour', $__timeFrom()::timestamptz, 'UTC'), $__timeTo()::timestamptz - interval '1 microsecond', interval '1 hour') h\n" +
	"  WHERE h < $__timeFrom()::timestamptz OR h + interval '1 hour' > $__timeTo()::timestamptz\n" +
	"    OR EXISTS (SELECT 1 FROM loom.panel_dirty d WHERE d.hour = h)"

// percentilesOf is the read of a histogram fact: p50, p95 and p99 per
// bucket, each the middle of the bin that holds it (within 4.4% of the
// value percentile_disc gives over the spans). cond narrows the rows of f.
func percentilesOf(cond string) string {
	p := func(q, name string) string { return "  min(v) FILTER (WHERE below >= " + q + " * total) AS " + name }
	return "SELECT time,\n" + p("0.5", "p50") + ",\n" + p("0.95", "p95") + ",\n" + p("0.99", "p99") + "\n" +
		"FROM (SELECT time, " + binValue("bin") + " AS v,\n" +
		"    sum(n) OVER (PARTITION BY time ORDER BY bin) AS below, sum(n) OVER (PARTITION BY time) AS total\n" +
		"  FROM (SELECT " + factBucket + ", f.bin, sum(f.n1)::float8 AS n FROM f" + cond + " GROUP BY 1, 2) b) c\n" +
		"GROUP BY 1"
}
