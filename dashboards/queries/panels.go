package queries

import "strings"

// CLIENT spans (one per upstream attempt) carry the provider, the upstream
// model, tokens and the streaming measures; SERVER spans carry the request:
// its status, duration, overhead, tenant, key and sequence number. Only the
// attempt that served carries usage; a failed attempt carries error_type and
// loom.upstream.failure_reason, and counting calls from CLIENT spans takes
// the last attempt only (LastAttempt).
var (
	// server keeps SERVER spans (alias s) of the chosen tenants, models and
	// providers in the time range.
	server = where("s.kind = 'server'", "$__timeFilter(s.start_time)",
		Filter("s.tenant_id", "tenant"), Filter("s.request_model", "model"), providerOfServer("s"))
	// client keeps CLIENT spans (alias c) likewise.
	client = where("c.kind = 'client'", "$__timeFilter(c.start_time)",
		Filter("c.tenant_id", "tenant"), Filter("c.request_model", "model"), Filter("c.provider", "provider"))
	// tenantServer and tenantClient are server and client for the Tenant
	// dashboard, which has no provider variable.
	tenantServer = where("s.kind = 'server'", "$__timeFilter(s.start_time)",
		Filter("s.tenant_id", "tenant"), Filter("s.request_model", "model"))
	tenantClient = where("c.kind = 'client'", "$__timeFilter(c.start_time)",
		Filter("c.tenant_id", "tenant"), Filter("c.request_model", "model"))
)

func where(conds ...string) string { return "WHERE " + strings.Join(conds, "\n  AND ") }

const (
	bucket    = "$__timeGroupAlias(s.start_time, $__interval)"
	bucketC   = "$__timeGroupAlias(c.start_time, $__interval)"
	perSecond = "/ ($__interval_ms / 1000.0)"
	perMinute = "/ ($__interval_ms / 60000.0)"
	// fallbackModel is the tenant model whose deployment an attempt went
	// to, when it is a fallback of the model the client asked for.
	fallbackModel = "c.attributes->>'loom.upstream.fallback_model'"
)

// percentiles are exact over the spans: percentile_disc, a value some
// span has, as the rollup's percentilesOf approximates.
func percentiles(col string) string {
	return "percentile_disc(0.5) WITHIN GROUP (ORDER BY " + col + ") AS p50,\n" +
		"  percentile_disc(0.95) WITHIN GROUP (ORDER BY " + col + ") AS p95,\n" +
		"  percentile_disc(0.99) WITHIN GROUP (ORDER BY " + col + ") AS p99"
}

func series(sel, from, where string) string {
	return "SELECT " + sel + "\nFROM " + from + "\n" + where + "\nGROUP BY 1\nORDER BY 1"
}

// Reads of a fact's rows (the relation f), bucketed by the same macro as
// the spans' reads, so that both branches of a panel give its time column
// one type (Grafana's macro makes epoch seconds, Expand a timestamptz).
// The facts are hourly: Grafana's intervals either divide an hour, so an
// hour's row is the point at its start and its counts are the hour's, or
// are whole hours (the console's always are, over RollupAfter). Rates
// divide by the hours a point holds: the interval rounded up to whole
// hours.
const (
	factBucket     = "$__timeGroupAlias(f.hour, $__interval)"
	factBucketSecs = "(ceil($__interval_ms / 3600000.0) * 3600)::float8"
	factPerSecond  = "/ " + factBucketSecs
	factPerMinute  = "/ (" + factBucketSecs + " / 60)"
)

func factSeries(sel string) string {
	return "SELECT " + factBucket + ",\n  " + sel + "\nFROM f\nGROUP BY 1"
}

// All returns every panel of every dashboard, in dashboard then display order.
func All() []Panel {
	return []Panel{
		// Overview.
		{ID: "overview_requests", Title: "Requests/s", Dashboard: Overview, Kind: TimeSeries, Unit: "reqps",
			Source: rolled(factRequests, allVars, factSeries("sum(f.n1) "+factPerSecond+" AS \"requests/s\""),
				series(bucket+",\n  count(*) "+perSecond+" AS \"requests/s\"", "loom.spans s", server), "1")},
		{ID: "overview_error_rate", Title: "Error rate", Dashboard: Overview, Kind: TimeSeries, Unit: "percentunit",
			Source: rolled(factRequests, allVars, factSeries("sum(f.n2)::numeric / sum(f.n1) AS \"error rate\""),
				series(bucket+",\n  avg(CASE WHEN "+isError+" THEN 1.0 ELSE 0.0 END) AS \"error rate\"", "loom.spans s", server), "1")},
		// Latency is what clients waited for. A client that left mid-stream
		// waited for none of the rest, but its SERVER span ends only once
		// Loom has drained the upstream for the usage (loom.upstream.drained),
		// up to the drain limit after the client left: it is left out.
		{ID: "overview_latency", Title: "Latency", Dashboard: Overview, Kind: TimeSeries, Unit: "ms",
			Source: rolled(factLatency, allVars, percentilesOf(""),
				series(bucket+",\n  "+percentiles("s.duration_ms"), "loom.spans s", server+"\n  AND s.client_disconnected IS NOT TRUE"), "1")},
		{ID: "overview_overhead", Title: "Gateway overhead", Dashboard: Overview, Kind: TimeSeries, Unit: "ms",
			Source: rolled(factOverhead, allVars, percentilesOf(""),
				series(bucket+",\n  "+percentiles("s.overhead_ms"), "loom.spans s", server), "1")},
		{ID: "overview_ttfc", Title: "Time to first chunk", Dashboard: Overview, Kind: TimeSeries, Unit: "ms",
			Source: rolled(factTTFC, allVars, percentilesOf(""),
				series(bucketC+",\n  "+percentiles("c.time_to_first_chunk_ms"), "loom.spans c", client+"\n  AND c.time_to_first_chunk_ms IS NOT NULL"), "1")},
		{ID: "overview_tokens", Title: "Tokens/s", Dashboard: Overview, Kind: TimeSeries, Unit: "short",
			Source: rolled(factAttempts, allVars, factSeries("coalesce(sum(f.n5), 0) "+factPerSecond+" AS \"input\",\n  coalesce(sum(f.n6), 0) "+factPerSecond+" AS \"output\""),
				series(bucketC+",\n  coalesce(sum(c.input_tokens), 0) "+perSecond+" AS \"input\",\n  coalesce(sum(c.output_tokens), 0) "+perSecond+" AS \"output\"", "loom.spans c", client), "1")},
		{ID: "overview_tokens_by", Title: "Tokens by tenant, model and provider", Dashboard: Overview, Kind: Table, Unit: "short",
			Source: rolled(factTokensBy, allVars, "SELECT f.tenant_id AS tenant, f.k1 AS model, f.k2 AS provider,\n  sum(f.n1) AS calls,\n  coalesce(sum(f.n2), 0) AS input_tokens,\n  coalesce(sum(f.n3), 0) AS output_tokens\nFROM f\nGROUP BY 1, 2, 3",
				"SELECT c.tenant_id AS tenant, c.request_model AS model, c.provider,\n"+
					"  count(*) AS calls,\n  coalesce(sum(c.input_tokens), 0) AS input_tokens,\n  coalesce(sum(c.output_tokens), 0) AS output_tokens\n"+
					"FROM loom.spans c\n"+client+"\n  AND "+LastAttempt("c")+"\nGROUP BY 1, 2, 3",
				"input_tokens + output_tokens DESC, tenant, model, provider")},
		// Spend: loom.cost is on the CLIENT span of the attempt that served
		// (failed attempts have no usage, so no cost), in its price
		// entry's currency; a call no price covered has none (NULL, not 0)
		// and is left out. Sums are numeric, exact.
		{ID: "overview_spend", Title: "Spend", Dashboard: Overview, Kind: TimeSeries, Unit: "short",
			Source: rolled(factAttempts, allVars, "SELECT "+factBucket+",\n  f.k1 AS metric,\n  sum(f.x) AS spend\nFROM f\nWHERE f.n7 > 0\nGROUP BY 1, 2",
				"SELECT "+bucketC+",\n  c.cost_currency AS metric,\n  sum(c.cost) AS spend\nFROM loom.spans c\n"+
					client+"\n  AND c.cost IS NOT NULL\nGROUP BY 1, 2", "1, 2")},
		// By key, not by key and model: the usage page has both, and the
		// pairs are nearly as many as the calls (a key calls many models).
		{ID: "overview_spend_by", Title: "Spend by tenant and key", Dashboard: Overview, Kind: Table, Unit: "short",
			Source: rolled(factSpendByKey, allVars, "SELECT f.tenant_id AS tenant, f.k1 AS key, f.k2 AS currency,\n  sum(f.n1) AS calls,\n  sum(f.x) AS spend\nFROM f\nGROUP BY 1, 2, 3",
				"SELECT c.tenant_id AS tenant, c.api_key_id AS key, c.cost_currency AS currency,\n"+
					"  count(*) AS calls,\n  sum(c.cost) AS spend\nFROM loom.spans c\n"+client+
					"\n  AND c.cost IS NOT NULL\nGROUP BY 1, 2, 3", "spend DESC, tenant, key, currency")},
		// Routing: every upstream attempt is a CLIENT span. An attempt
		// without error_type served; a failover is a call served by an
		// attempt after the first; a fallback one served by another model's
		// deployment.
		{ID: "overview_attempts", Title: "Failovers and attempts", Dashboard: Overview, Kind: TimeSeries, Unit: "short",
			Source: rolled(factAttempts, allVars, factSeries(
				"sum(f.n1) "+factPerMinute+" AS \"served attempts/min\",\n"+
					"  sum(f.n2) "+factPerMinute+" AS \"failed attempts/min\",\n"+
					"  sum(f.n3) "+factPerMinute+" AS \"failovers/min\",\n"+
					"  sum(f.n4) "+factPerMinute+" AS \"fallbacks/min\""),
				series(bucketC+",\n"+
					"  count(*) FILTER (WHERE c.error_type IS NULL) "+perMinute+" AS \"served attempts/min\",\n"+
					"  count(*) FILTER (WHERE c.error_type IS NOT NULL) "+perMinute+" AS \"failed attempts/min\",\n"+
					"  count(*) FILTER (WHERE "+isFailover+") "+perMinute+" AS \"failovers/min\",\n"+
					"  count(*) FILTER (WHERE c.error_type IS NULL AND "+fallbackModel+" IS NOT NULL) "+perMinute+" AS \"fallbacks/min\"",
					"loom.spans c", client), "1")},
		{ID: "overview_attempt_failures", Title: "Failed attempts by deployment", Dashboard: Overview, Kind: Table, Unit: "short",
			Source: rolled(factFailures, allVars, "SELECT f.k1 AS deployment, f.k2 AS provider, f.k3 AS error_type,\n  sum(f.n1) AS failures,\n  sum(f.n2) AS failed_over,\n  max(f.t_max) AS last_seen\nFROM f\nGROUP BY 1, 2, 3",
				"SELECT coalesce(c.deployment, '') AS deployment, c.provider, c.error_type,\n"+
					"  count(*) AS failures,\n  count(*) FILTER (WHERE NOT "+LastAttempt("c")+") AS failed_over,\n"+
					"  max(c.start_time) AS last_seen\nFROM loom.spans c\n"+client+"\n  AND c.error_type IS NOT NULL\n"+
					"GROUP BY 1, 2, 3", "failures DESC, deployment, provider, error_type")},
		{ID: "overview_fallbacks", Title: "Fallback models used", Dashboard: Overview, Kind: Table, Unit: "short",
			Source: rolled(factFallbacks, allVars, "SELECT f.k1 AS model, f.k2 AS fallback,\n  sum(f.n1) AS calls\nFROM f\nGROUP BY 1, 2",
				"SELECT s.request_model AS model, "+fallbackModel+" AS fallback,\n  count(*) AS calls\n"+
					"FROM loom.spans c\nJOIN loom.spans s ON s.trace_id = c.trace_id AND s.span_id = c.parent_span_id AND s.kind = 'server'\n"+
					"  AND s.start_time BETWEEN $__timeFrom()::timestamptz - "+CallWindow+" AND $__timeTo()\n"+
					client+"\n  AND c.error_type IS NULL AND "+fallbackModel+" IS NOT NULL\nGROUP BY 1, 2", "calls DESC, model, fallback")},

		// Tenant.
		{ID: "tenant_requests", Title: "Requests/s", Dashboard: Tenant, Kind: TimeSeries, Unit: "reqps",
			Source: rolled(factRequests, tenantVars, factSeries("sum(f.n1) "+factPerSecond+" AS \"requests/s\""),
				series(bucket+",\n  count(*) "+perSecond+" AS \"requests/s\"", "loom.spans s", tenantServer), "1")},
		{ID: "tenant_tokens", Title: "Tokens", Dashboard: Tenant, Kind: TimeSeries, Unit: "short",
			Source: rolled(factAttempts, tenantVars, factSeries("coalesce(sum(f.n5), 0) AS \"input\",\n  coalesce(sum(f.n6), 0) AS \"output\""),
				series(bucketC+",\n  coalesce(sum(c.input_tokens), 0) AS \"input\",\n  coalesce(sum(c.output_tokens), 0) AS \"output\"", "loom.spans c", tenantClient), "1")},
		// By model, not by key and model: a chart of every pair is one
		// line per call or two (the usage page has spend by key).
		{ID: "tenant_spend", Title: "Spend by model", Dashboard: Tenant, Kind: TimeSeries, Unit: "short",
			Source: rolled(factSpendByModel, tenantVars, "SELECT "+factBucket+",\n  coalesce(f.k1, '') || ' (' || f.k2 || ')' AS metric,\n  sum(f.x) AS spend\nFROM f\nGROUP BY 1, 2",
				"SELECT "+bucketC+",\n  coalesce(c.request_model, '') || ' (' || c.cost_currency || ')' AS metric,\n"+
					"  sum(c.cost) AS spend\nFROM loom.spans c\n"+tenantClient+"\n  AND c.cost IS NOT NULL\nGROUP BY 1, 2", "1, 2")},
		{ID: "tenant_limits_hit", Title: "Limits hit", Dashboard: Tenant, Kind: Stat, Unit: "short",
			Source: rolled(factRequests, tenantVars, "SELECT coalesce(sum(f.n4), 0) AS \"limits hit\"\nFROM f",
				"SELECT count(*) AS \"limits hit\"\nFROM loom.spans s\n"+tenantServer+"\n  AND "+isLimited, "")},
		{ID: "tenant_keys_in_use", Title: "Keys in use", Dashboard: Tenant, Kind: Stat, Unit: "short",
			Source: rolled(factKeys, tenantVars, "SELECT count(DISTINCT f.k1) AS \"keys in use\"\nFROM f",
				"SELECT count(DISTINCT s.api_key_id) AS \"keys in use\"\nFROM loom.spans s\n"+tenantServer, "")},
		{ID: "tenant_keys", Title: "Keys", Dashboard: Tenant, Kind: Table, Unit: "short",
			Source: rolled(factKeys, tenantVars, "SELECT f.k1 AS key, sum(f.n1) AS requests,\n  sum(f.n2) AS limited,\n  max(f.t_max) AS last_used\nFROM f\nGROUP BY 1",
				"SELECT s.api_key_id AS key, count(*) AS requests,\n"+
					"  count(*) FILTER (WHERE "+isLimited+") AS limited,\n"+
					"  max(s.start_time) AS last_used\nFROM loom.spans s\n"+tenantServer+"\nGROUP BY 1", "requests DESC, key")},

		// Streaming.
		{ID: "stream_ttfc", Title: "Time to first chunk", Dashboard: Stream, Kind: TimeSeries, Unit: "ms",
			Source: rolled(factTTFC, allVars, percentilesOf(" WHERE f.k1 = 'stream'"),
				series(bucketC+",\n  "+percentiles("c.time_to_first_chunk_ms"), "loom.spans c", client+"\n  AND c.stream\n  AND c.time_to_first_chunk_ms IS NOT NULL"), "1")},
		{ID: "stream_chunks", Title: "Chunks/s", Dashboard: Stream, Kind: TimeSeries, Unit: "short",
			Source: rolled(factStreams, allVars, factSeries("coalesce(sum(f.n2), 0) "+factPerSecond+" AS \"chunks/s\""),
				series(bucketC+",\n  coalesce(sum(c.chunks), 0) "+perSecond+" AS \"chunks/s\"", "loom.spans c", client+"\n  AND c.stream"), "1")},
		{ID: "stream_disconnects", Title: "Client disconnects", Dashboard: Stream, Kind: TimeSeries, Unit: "short",
			Source: rolled(factRequests, allVars, factSeries("sum(f.n3) AS \"disconnects\""),
				series(bucket+",\n  count(*) FILTER (WHERE s.client_disconnected) AS \"disconnects\"", "loom.spans s", server), "1")},
		{ID: "stream_usage_source", Title: "Usage source", Dashboard: Stream, Kind: TimeSeries, Unit: "short",
			Source: rolled(factUsageSource, allVars, "SELECT "+factBucket+",\n  f.k1 AS metric,\n  sum(f.n1) AS calls\nFROM f\nGROUP BY 1, 2",
				"SELECT "+bucketC+",\n  coalesce(c.usage_source, 'none') AS metric,\n  count(*) AS calls\nFROM loom.spans c\n"+
					client+"\n  AND c.stream\n  AND "+LastAttempt("c")+"\nGROUP BY 1, 2", "1, 2")},

		// Pipeline health, by the time spans were stored. Spans are
		// partitioned on start_time: bounding it a day before the range
		// keeps ingested_at scans to a few partitions, and so a span
		// stored more than a day after it started (a spool replayed that
		// late) is left out (storedSoon), here and in the facts alike.
		{ID: "pipeline_ingested", Title: "Spans ingested/s", Dashboard: Pipeline, Kind: TimeSeries, Unit: "short",
			Source: rolled(factIngested, noVars, factSeries("sum(f.n1) "+factPerSecond+" AS \"spans/s\""),
				"SELECT $__timeGroupAlias(ingested_at, $__interval),\n  count(*) "+perSecond+" AS \"spans/s\"\nFROM loom.spans\n"+
					"WHERE $__timeFilter(ingested_at)\n  AND start_time >= $__timeFrom()::timestamptz - interval '1 day'\n  AND "+storedSoon+"\nGROUP BY 1", "1")},
		{ID: "pipeline_ingest_lag", Title: "Ingest lag", Dashboard: Pipeline, Kind: TimeSeries, Unit: "ms",
			Source: rolled(factIngestLag, noVars, percentilesOf(""),
				series("$__timeGroupAlias(ingested_at, $__interval),\n  "+percentiles(ingestLag), "loom.spans",
					"WHERE $__timeFilter(ingested_at)\n  AND start_time >= $__timeFrom()::timestamptz - interval '1 day'\n  AND "+storedSoon+"\n  AND end_time IS NOT NULL"), "1")},
		{ID: "pipeline_dead_letters", Title: "Dead letters", Dashboard: Pipeline, Kind: TimeSeries, Unit: "short",
			Source: Source{SQL: "SELECT $__timeGroupAlias(received_at, $__interval),\n  reason AS metric,\n  count(*) AS spans\nFROM loom.dead_letters\n" +
				"WHERE $__timeFilter(received_at)\nGROUP BY 1, 2\nORDER BY 1, 2"}},
		// loom.seq numbers the calls of each run of an instance from 1
		// without gaps; a run's stop marker gives its last number. Missing
		// SERVER spans in [1, last] are lost calls; a run without a stop
		// marker crashed (or still runs) and may also have lost the calls of
		// its last commit window (loom audit completeness says how many).
		{ID: "pipeline_seq_gaps", Title: "Completeness by run", Dashboard: Pipeline, Kind: Table, Unit: "short",
			Source: rolled(factRuns, noVars, "SELECT f.k1 AS instance, f.k2 AS run, min(f.t_min) AS started,\n"+
				"  greatest(max(f.n1), max(f.n2)) AS numbered,\n  sum(f.n3) AS stored,\n"+
				"  greatest(max(f.n1), max(f.n2)) - sum(f.n3) AS missing,\n"+
				"  CASE WHEN max(f.n4) = 1 THEN 'cleanly' ELSE 'no (crashed or running)' END AS stopped\nFROM f\nGROUP BY 1, 2",
				"SELECT s.instance_id AS instance, coalesce(s.run_id, '') AS run, min(s.start_time) AS started,\n"+
					"  greatest("+runLastSeq+", max(s.seq)) AS numbered,\n"+
					"  count(DISTINCT s.seq) FILTER (WHERE s.kind = 'server') AS stored,\n"+
					"  greatest("+runLastSeq+", max(s.seq))\n"+
					"    - count(DISTINCT s.seq) FILTER (WHERE s.kind = 'server') AS missing,\n"+
					"  CASE WHEN "+runStopped+" THEN 'cleanly'\n"+
					"    ELSE 'no (crashed or running)' END AS stopped\nFROM loom.spans s\n"+
					"WHERE $__timeFilter(s.start_time)\n"+isRunSpan+"\nGROUP BY 1, 2", "missing DESC, started")},

		// Calls.
		{ID: "calls_recent", Title: "Recent calls", Dashboard: Calls, Kind: Table, Unit: "",
			Source: Source{SQL: "SELECT s.start_time, s.tenant_id AS tenant,\n  coalesce(c.response_model, c.request_model, s.request_model) AS model,\n" +
				"  c.provider, s.http_status AS status, s.status_code,\n  c.input_tokens, c.output_tokens,\n  c.cost, c.cost_currency AS currency,\n  s.duration_ms, s.trace_id\n" +
				"FROM loom.spans s\nLEFT JOIN loom.spans c ON c.trace_id = s.trace_id AND c.parent_span_id = s.span_id AND c.kind = 'client'\n" +
				"  AND c.start_time BETWEEN $__timeFrom() AND $__timeTo()::timestamptz + " + CallWindow + "\n" +
				"  AND " + LastAttempt("c") + "\n" +
				server + "\nORDER BY s.start_time DESC\nLIMIT 500"}},
	}
}
