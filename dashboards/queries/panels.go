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

func percentiles(col string) string {
	return "percentile_cont(0.5) WITHIN GROUP (ORDER BY " + col + ") AS p50,\n" +
		"  percentile_cont(0.95) WITHIN GROUP (ORDER BY " + col + ") AS p95,\n" +
		"  percentile_cont(0.99) WITHIN GROUP (ORDER BY " + col + ") AS p99"
}

func series(sel, from, where string) string {
	return "SELECT " + sel + "\nFROM " + from + "\n" + where + "\nGROUP BY 1\nORDER BY 1"
}

// All returns every panel of every dashboard, in dashboard then display order.
func All() []Panel {
	return []Panel{
		// Overview.
		{ID: "overview_requests", Title: "Requests/s", Dashboard: Overview, Kind: TimeSeries, Unit: "reqps",
			SQL: series(bucket+",\n  count(*) "+perSecond+" AS \"requests/s\"", "loom.spans s", server)},
		{ID: "overview_error_rate", Title: "Error rate", Dashboard: Overview, Kind: TimeSeries, Unit: "percentunit",
			SQL: series(bucket+",\n  avg(CASE WHEN s.status_code = 'error' OR s.http_status >= 400 THEN 1.0 ELSE 0.0 END) AS \"error rate\"", "loom.spans s", server)},
		// Latency is what clients waited for. A client that left mid-stream
		// waited for none of the rest, but its SERVER span ends only once
		// Loom has drained the upstream for the usage (loom.upstream.drained),
		// up to the drain limit after the client left: it is left out.
		{ID: "overview_latency", Title: "Latency", Dashboard: Overview, Kind: TimeSeries, Unit: "ms",
			SQL: series(bucket+",\n  "+percentiles("s.duration_ms"), "loom.spans s", server+"\n  AND s.client_disconnected IS NOT TRUE")},
		{ID: "overview_overhead", Title: "Gateway overhead", Dashboard: Overview, Kind: TimeSeries, Unit: "ms",
			SQL: series(bucket+",\n  "+percentiles("s.overhead_ms"), "loom.spans s", server)},
		{ID: "overview_ttfc", Title: "Time to first chunk", Dashboard: Overview, Kind: TimeSeries, Unit: "ms",
			SQL: series(bucketC+",\n  "+percentiles("c.time_to_first_chunk_ms"), "loom.spans c", client+"\n  AND c.time_to_first_chunk_ms IS NOT NULL")},
		{ID: "overview_tokens", Title: "Tokens/s", Dashboard: Overview, Kind: TimeSeries, Unit: "short",
			SQL: series(bucketC+",\n  coalesce(sum(c.input_tokens), 0) "+perSecond+" AS \"input\",\n  coalesce(sum(c.output_tokens), 0) "+perSecond+" AS \"output\"", "loom.spans c", client)},
		{ID: "overview_tokens_by", Title: "Tokens by tenant, model and provider", Dashboard: Overview, Kind: Table, Unit: "short",
			SQL: "SELECT c.tenant_id AS tenant, c.request_model AS model, c.provider,\n" +
				"  count(*) AS calls,\n  coalesce(sum(c.input_tokens), 0) AS input_tokens,\n  coalesce(sum(c.output_tokens), 0) AS output_tokens\n" +
				"FROM loom.spans c\n" + client + "\n  AND " + LastAttempt("c") + "\nGROUP BY 1, 2, 3\nORDER BY 5 + 6 DESC, 1, 2, 3"},
		// Spend: loom.cost is on the CLIENT span of the attempt that served
		// (failed attempts have no usage, so no cost), in its price
		// entry's currency; a call no price covered has none (NULL, not 0)
		// and is left out. Sums are numeric, exact.
		{ID: "overview_spend", Title: "Spend", Dashboard: Overview, Kind: TimeSeries, Unit: "short",
			SQL: "SELECT " + bucketC + ",\n  c.cost_currency AS metric,\n  sum(c.cost) AS spend\nFROM loom.spans c\n" +
				client + "\n  AND c.cost IS NOT NULL\nGROUP BY 1, 2\nORDER BY 1, 2"},
		{ID: "overview_spend_by", Title: "Spend by tenant, key and model", Dashboard: Overview, Kind: Table, Unit: "short",
			SQL: "SELECT c.tenant_id AS tenant, c.api_key_id AS key, c.request_model AS model, c.cost_currency AS currency,\n" +
				"  count(*) AS calls,\n  sum(c.cost) AS spend\nFROM loom.spans c\n" + client +
				"\n  AND c.cost IS NOT NULL\nGROUP BY 1, 2, 3, 4\nORDER BY 6 DESC, 1, 2, 3, 4"},
		// Routing: every upstream attempt is a CLIENT span. An attempt
		// without error_type served; a failover is a call served by an
		// attempt after the first; a fallback one served by another model's
		// deployment.
		{ID: "overview_attempts", Title: "Failovers and attempts", Dashboard: Overview, Kind: TimeSeries, Unit: "short",
			SQL: series(bucketC+",\n"+
				"  count(*) FILTER (WHERE c.error_type IS NULL) "+perMinute+" AS \"served attempts/min\",\n"+
				"  count(*) FILTER (WHERE c.error_type IS NOT NULL) "+perMinute+" AS \"failed attempts/min\",\n"+
				"  count(*) FILTER (WHERE c.error_type IS NULL AND c.upstream_attempt > 1) "+perMinute+" AS \"failovers/min\",\n"+
				"  count(*) FILTER (WHERE c.error_type IS NULL AND "+fallbackModel+" IS NOT NULL) "+perMinute+" AS \"fallbacks/min\"",
				"loom.spans c", client)},
		{ID: "overview_attempt_failures", Title: "Failed attempts by deployment", Dashboard: Overview, Kind: Table, Unit: "short",
			SQL: "SELECT coalesce(c.deployment, '') AS deployment, c.provider, c.error_type,\n" +
				"  count(*) AS failures,\n  count(*) FILTER (WHERE NOT " + LastAttempt("c") + ") AS failed_over,\n" +
				"  max(c.start_time) AS last_seen\nFROM loom.spans c\n" + client + "\n  AND c.error_type IS NOT NULL\n" +
				"GROUP BY 1, 2, 3\nORDER BY 4 DESC, 1, 2, 3"},
		{ID: "overview_fallbacks", Title: "Fallback models used", Dashboard: Overview, Kind: Table, Unit: "short",
			SQL: "SELECT s.request_model AS model, " + fallbackModel + " AS fallback,\n  count(*) AS calls\n" +
				"FROM loom.spans c\nJOIN loom.spans s ON s.trace_id = c.trace_id AND s.span_id = c.parent_span_id AND s.kind = 'server'\n" +
				"  AND s.start_time BETWEEN $__timeFrom()::timestamptz - " + CallWindow + " AND $__timeTo()\n" +
				client + "\n  AND c.error_type IS NULL AND " + fallbackModel + " IS NOT NULL\nGROUP BY 1, 2\nORDER BY 3 DESC, 1, 2"},

		// Tenant.
		{ID: "tenant_requests", Title: "Requests/s", Dashboard: Tenant, Kind: TimeSeries, Unit: "reqps",
			SQL: series(bucket+",\n  count(*) "+perSecond+" AS \"requests/s\"", "loom.spans s", tenantServer)},
		{ID: "tenant_tokens", Title: "Tokens", Dashboard: Tenant, Kind: TimeSeries, Unit: "short",
			SQL: series(bucketC+",\n  coalesce(sum(c.input_tokens), 0) AS \"input\",\n  coalesce(sum(c.output_tokens), 0) AS \"output\"", "loom.spans c", tenantClient)},
		{ID: "tenant_spend", Title: "Spend by key and model", Dashboard: Tenant, Kind: TimeSeries, Unit: "short",
			SQL: "SELECT " + bucketC + ",\n  coalesce(c.api_key_id, '') || ' ' || coalesce(c.request_model, '') || ' (' || c.cost_currency || ')' AS metric,\n" +
				"  sum(c.cost) AS spend\nFROM loom.spans c\n" + tenantClient + "\n  AND c.cost IS NOT NULL\nGROUP BY 1, 2\nORDER BY 1, 2"},
		{ID: "tenant_limits_hit", Title: "Limits hit", Dashboard: Tenant, Kind: Stat, Unit: "short",
			SQL: "SELECT count(*) AS \"limits hit\"\nFROM loom.spans s\n" + tenantServer +
				"\n  AND (s.error_type = 'rate_limit_exceeded' OR s.attributes->>'loom.outcome' = 'rate_limited')"},
		{ID: "tenant_keys_in_use", Title: "Keys in use", Dashboard: Tenant, Kind: Stat, Unit: "short",
			SQL: "SELECT count(DISTINCT s.api_key_id) AS \"keys in use\"\nFROM loom.spans s\n" + tenantServer},
		{ID: "tenant_keys", Title: "Keys", Dashboard: Tenant, Kind: Table, Unit: "short",
			SQL: "SELECT s.api_key_id AS key, count(*) AS requests,\n" +
				"  count(*) FILTER (WHERE s.error_type = 'rate_limit_exceeded' OR s.attributes->>'loom.outcome' = 'rate_limited') AS limited,\n" +
				"  max(s.start_time) AS last_used\nFROM loom.spans s\n" + tenantServer + "\nGROUP BY 1\nORDER BY 2 DESC, 1"},

		// Streaming.
		{ID: "stream_ttfc", Title: "Time to first chunk", Dashboard: Stream, Kind: TimeSeries, Unit: "ms",
			SQL: series(bucketC+",\n  "+percentiles("c.time_to_first_chunk_ms"), "loom.spans c", client+"\n  AND c.stream")},
		{ID: "stream_chunks", Title: "Chunks/s", Dashboard: Stream, Kind: TimeSeries, Unit: "short",
			SQL: series(bucketC+",\n  coalesce(sum(c.chunks), 0) "+perSecond+" AS \"chunks/s\"", "loom.spans c", client+"\n  AND c.stream")},
		{ID: "stream_disconnects", Title: "Client disconnects", Dashboard: Stream, Kind: TimeSeries, Unit: "short",
			SQL: series(bucket+",\n  count(*) FILTER (WHERE s.client_disconnected) AS \"disconnects\"", "loom.spans s", server)},
		{ID: "stream_usage_source", Title: "Usage source", Dashboard: Stream, Kind: TimeSeries, Unit: "short",
			SQL: "SELECT " + bucketC + ",\n  coalesce(c.usage_source, 'none') AS metric,\n  count(*) AS calls\nFROM loom.spans c\n" +
				client + "\n  AND c.stream\n  AND " + LastAttempt("c") + "\nGROUP BY 1, 2\nORDER BY 1, 2"},

		// Pipeline health. Spans are partitioned on start_time: bounding it
		// a day before the range keeps ingested_at scans to a few partitions.
		{ID: "pipeline_ingested", Title: "Spans ingested/s", Dashboard: Pipeline, Kind: TimeSeries, Unit: "short",
			SQL: "SELECT $__timeGroupAlias(ingested_at, $__interval),\n  count(*) " + perSecond + " AS \"spans/s\"\nFROM loom.spans\n" +
				"WHERE $__timeFilter(ingested_at)\n  AND start_time >= $__timeFrom()::timestamptz - interval '1 day'\nGROUP BY 1\nORDER BY 1"},
		{ID: "pipeline_ingest_lag", Title: "Ingest lag", Dashboard: Pipeline, Kind: TimeSeries, Unit: "ms",
			SQL: series("$__timeGroupAlias(ingested_at, $__interval),\n  "+percentiles("extract(epoch FROM ingested_at - end_time) * 1000"), "loom.spans",
				"WHERE $__timeFilter(ingested_at)\n  AND start_time >= $__timeFrom()::timestamptz - interval '1 day'\n  AND end_time IS NOT NULL")},
		{ID: "pipeline_dead_letters", Title: "Dead letters", Dashboard: Pipeline, Kind: TimeSeries, Unit: "short",
			SQL: "SELECT $__timeGroupAlias(received_at, $__interval),\n  reason AS metric,\n  count(*) AS spans\nFROM loom.dead_letters\n" +
				"WHERE $__timeFilter(received_at)\nGROUP BY 1, 2\nORDER BY 1, 2"},
		// loom.seq numbers the calls of each run of an instance from 1
		// without gaps; a run's stop marker gives its last number. Missing
		// SERVER spans in [1, last] are lost calls; a run without a stop
		// marker crashed (or still runs) and may also have lost the calls of
		// its last commit window (loom audit completeness says how many).
		{ID: "pipeline_seq_gaps", Title: "Completeness by run", Dashboard: Pipeline, Kind: Table, Unit: "short",
			SQL: "SELECT s.instance_id AS instance, coalesce(s.run_id, '') AS run, min(s.start_time) AS started,\n" +
				"  greatest(max((s.attributes->>'loom.run.last_seq')::bigint) FILTER (WHERE s.kind = 'internal'), max(s.seq)) AS numbered,\n" +
				"  count(DISTINCT s.seq) FILTER (WHERE s.kind = 'server') AS stored,\n" +
				"  greatest(max((s.attributes->>'loom.run.last_seq')::bigint) FILTER (WHERE s.kind = 'internal'), max(s.seq))\n" +
				"    - count(DISTINCT s.seq) FILTER (WHERE s.kind = 'server') AS missing,\n" +
				"  CASE WHEN bool_or(s.kind = 'internal' AND s.attributes->>'loom.run.event' = 'stop') THEN 'cleanly'\n" +
				"    ELSE 'no (crashed or running)' END AS stopped\nFROM loom.spans s\n" +
				"WHERE $__timeFilter(s.start_time)\n  AND s.instance_id IS NOT NULL\n" +
				"  AND ((s.kind = 'server' AND s.seq IS NOT NULL) OR (s.kind = 'internal' AND s.name = 'loom run'))\n" +
				"GROUP BY 1, 2\nORDER BY 6 DESC, 3"},

		// Calls.
		{ID: "calls_recent", Title: "Recent calls", Dashboard: Calls, Kind: Table, Unit: "",
			SQL: "SELECT s.start_time, s.tenant_id AS tenant,\n  coalesce(c.response_model, c.request_model, s.request_model) AS model,\n" +
				"  c.provider, s.http_status AS status, s.status_code,\n  c.input_tokens, c.output_tokens,\n  c.cost, c.cost_currency AS currency,\n  s.duration_ms, s.trace_id\n" +
				"FROM loom.spans s\nLEFT JOIN loom.spans c ON c.trace_id = s.trace_id AND c.parent_span_id = s.span_id AND c.kind = 'client'\n" +
				"  AND c.start_time BETWEEN $__timeFrom() AND $__timeTo()::timestamptz + " + CallWindow + "\n" +
				"  AND " + LastAttempt("c") + "\n" +
				server + "\nORDER BY s.start_time DESC\nLIMIT 500"},
	}
}
