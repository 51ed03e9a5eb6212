package console_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/proxy/schema"
)

// seedSpans puts calls calls into loom.spans, as the exporter would have
// stored a week of traffic: each call a SERVER span and the CLIENT span of
// its upstream attempt, 3% with a failed first attempt before the one that
// served (two CLIENT spans), 0.5% GET /v1/models requests with no CLIENT
// span at all. It runs in Postgres (a few INSERT ... SELECT statements over
// generate_series), not row by row from Go, so a million spans take seconds.
//
// The shape is what the console's queries are sensitive to: 20 tenants, one
// with 40% of the calls; 10 keys each; 15 models skewed to the first few,
// over 3 providers; 2% errors, 30% streams (1% of them closed by the
// client), costs on 90% of the served attempts (numeric, USD or EUR),
// captured content for half of tenant-03's calls; start times over the last
// 7 days, denser towards now (about 3 times the week's average in the last
// hour), inserted in time order as the exporter inserts them (the BRIN
// index on start_time relies on that), each ingested 1.2 s after its span
// ended (spool, collector, batch). random() is seeded: every run makes
// the same rows, at times relative to now.
//
// It returns the spans it stored and makes the partitions it needs.
func seedSpans(ctx context.Context, pool *pgxpool.Pool, calls int, now time.Time) (int64, error) {
	now = now.UTC()
	if err := schema.EnsurePartitions(ctx, pool, now.Add(-8*24*time.Hour), now.Add(24*time.Hour)); err != nil {
		return 0, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	var spans int64
	for i, sql := range []string{
		"SELECT setseed(0.16)",
		fmt.Sprintf(seedCallsSQL, now.Format(time.RFC3339Nano), calls),
		seedSpansSQL,
		seedContentSQL,
	} {
		tag, err := tx.Exec(ctx, sql)
		if err != nil {
			return 0, fmt.Errorf("seed step %d: %w", i, err)
		}
		if sql == seedSpansSQL {
			spans = tag.RowsAffected()
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	// Settled statistics and visibility map, as autovacuum leaves a table
	// that has been written for a week: the plans are those of a live store.
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) loom.spans, loom.span_content"); err != nil {
		return 0, fmt.Errorf("seed: vacuum: %w", err)
	}
	return spans, nil
}

// seedCallsSQL draws each call's random choices once (a SERVER span and its
// CLIENT spans must agree), into a temporary table. %s is now, %d the calls.
// The exponent 1.3 puts ~2% of the week's calls in its last hour.
const seedCallsSQL = `
CREATE TEMP TABLE seed ON COMMIT DROP AS
WITH r AS (
    SELECT i,
           timestamptz '%[1]s' - interval '7 days' * power((n - i)::float8 / n, 1.3) - interval '2 seconds' AS t,
           random() AS r_tenant, random() AS r_t2, random() AS r_key, random() AS r_model, random() AS r_err,
           random() AS r_stream, random() AS r_retry, random() AS r_a, random() AS r_b
    FROM (SELECT %[2]d::int AS n) p, generate_series(1, n) i
), m AS (
    SELECT r.*,
           CASE WHEN r_tenant < 0.4 THEN 'tenant-00' ELSE 'tenant-' || lpad((1 + floor(r_t2 * 19))::int::text, 2, '0') END AS tenant,
           floor(power(r_model, 2) * 15)::int AS mi
    FROM r
)
SELECT i, t,
       md5('loom-seed-' || i) AS trace_id,
       substr(md5('server-' || i), 1, 16) AS server_id,
       substr(md5('client-' || i), 1, 16) AS client_id,
       substr(md5('retry-' || i), 1, 16) AS retry_id,
       'loom-' || (i %% 2) AS instance_id,
       (i + 1) / 2 AS seq,
       tenant,
       tenant || '-key-' || floor(r_key * 10)::int AS key_id,
       (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-sonnet-4', 'gpt-4.1-mini', 'claude-haiku-4', 'gpt-4.1', 'o4-mini',
              'claude-opus-4', 'gpt-4o-azure', 'text-embedding-3-small', 'gpt-3.5-turbo', 'claude-3-5-haiku',
              'o3', 'gpt-4.1-nano', 'mistral-large'])[mi + 1] AS model,
       (ARRAY['openai', 'anthropic', 'azure.ai.openai'])[mi %% 3 + 1] AS provider,
       (ARRAY[0.15, 2.5, 3, 0.4, 0.8, 2, 1.1, 15, 2.5, 0.02, 0.5, 0.8, 2, 0.1, 2])[mi + 1]::numeric AS price_in,
       (ARRAY[0.6, 10, 15, 1.6, 4, 8, 4.4, 75, 10, 0, 1.5, 4, 8, 0.4, 6])[mi + 1]::numeric AS price_out,
       r_retry >= 0.995 AS models_request,
       r_err < 0.02 AS failed,
       (ARRAY[429, 500, 502, 504])[1 + floor(r_a * 4)::int] AS fail_status,
       r_stream < 0.3 AS stream,
       r_stream < 0.003 AS client_closed,
       r_retry < 0.03 AS retried,
       r_a < 0.9 AS priced,
       r_b < 0.05 AS eur,
       round((200 + power(r_b, 3) * 20000)::numeric, 3)::float8 AS dur_ms,
       round((80 + r_a * 400)::numeric, 3)::float8 AS ttfc_ms,
       round((0.3 + r_a * 1.5)::numeric, 4)::float8 AS overhead_ms,
       50 + floor(r_a * 4000)::bigint AS tokens_in,
       10 + floor(r_b * 1500)::bigint AS tokens_out,
       tenant = 'tenant-03' AND r_b < 0.5 AS content
FROM m`

// seedSpansSQL stores the SERVER spans, the CLIENT spans of the attempts
// that served (or failed last) and the failed first attempts of retried
// calls, in start time order.
const seedSpansSQL = `
INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind, status_code,
    service_name, scope_name, instance_id, run_id, seq, tenant_id, api_key_id, provider, operation, request_model,
    response_model, response_id, finish_reasons, input_tokens, output_tokens, total_tokens, stream,
    time_to_first_chunk_ms, overhead_ms, http_status, upstream_attempt, usage_source, client_disconnected, chunks,
    error_type, server_address, deployment, cost, cost_currency, price_id, attributes, resource, ingested_at)
SELECT * FROM (
    -- SERVER: what the client saw.
    SELECT trace_id, server_id, NULL::text, t, t + dur_ms * interval '1 millisecond', dur_ms,
           CASE WHEN models_request THEN 'GET /v1/models' ELSE 'POST /v1/chat/completions' END, 'server',
           CASE WHEN failed THEN 'error' ELSE 'unset' END, 'loom', 'loom', instance_id, 'run-1', seq, tenant, key_id,
           NULL::text, NULL::text, CASE WHEN models_request THEN NULL ELSE model END, NULL::text, NULL::text, NULL::text[],
           NULL::bigint, NULL::bigint, NULL::bigint, CASE WHEN models_request THEN NULL ELSE stream END, NULL::float8,
           overhead_ms, CASE WHEN failed THEN fail_status ELSE 200 END, NULL::int, NULL::text,
           CASE WHEN stream THEN client_closed END, NULL::int,
           CASE WHEN failed AND fail_status = 429 THEN 'rate_limit_exceeded' WHEN failed THEN 'upstream_error' END,
           NULL::text, NULL::text, NULL::numeric, NULL::text, NULL::text,
           jsonb_build_object('http.route', CASE WHEN models_request THEN '/v1/models' ELSE '/v1/chat/completions' END,
               'loom.outcome', CASE WHEN failed AND fail_status = 429 THEN 'rate_limited' WHEN failed THEN 'error' ELSE 'ok' END),
           '{"service.name": "loom"}'::jsonb, t + (dur_ms + 1200) * interval '1 millisecond'
    FROM seed
    UNION ALL
    -- CLIENT: the attempt that served, or failed last.
    SELECT trace_id, client_id, server_id, t + CASE WHEN retried THEN interval '40 ms' ELSE interval '0.5 ms' END,
           t + (dur_ms - 0.5) * interval '1 millisecond', dur_ms - CASE WHEN retried THEN 40.5 ELSE 1 END,
           'chat ' || model, 'client', CASE WHEN failed THEN 'error' ELSE 'unset' END, 'loom', 'loom', instance_id,
           'run-1', NULL::bigint, tenant, key_id, provider, 'chat', model, CASE WHEN NOT failed THEN model END,
           CASE WHEN NOT failed THEN 'chatcmpl-' || substr(trace_id, 1, 20) END,
           CASE WHEN NOT failed THEN ARRAY['stop'] END,
           CASE WHEN NOT failed THEN tokens_in END, CASE WHEN NOT failed THEN tokens_out END,
           CASE WHEN NOT failed THEN tokens_in + tokens_out END, stream,
           CASE WHEN stream AND NOT failed THEN ttfc_ms END, NULL::float8,
           CASE WHEN failed THEN fail_status ELSE 200 END, CASE WHEN retried THEN 2 ELSE 1 END,
           CASE WHEN NOT failed THEN 'provider' END, CASE WHEN stream THEN client_closed END,
           CASE WHEN stream AND NOT failed THEN (tokens_out / 3)::int END,
           CASE WHEN failed THEN 'upstream_error' END, provider || '.example.com',
           provider || CASE WHEN retried THEN '-b' ELSE '-a' END,
           CASE WHEN priced AND NOT failed THEN round((tokens_in * price_in + tokens_out * price_out) / 1000000, 8) END,
           CASE WHEN priced AND NOT failed THEN CASE WHEN eur THEN 'EUR' ELSE 'USD' END END,
           CASE WHEN priced AND NOT failed THEN 'price-' || model END,
           '{"server.port": 443}'::jsonb, '{"service.name": "loom"}'::jsonb, t + (dur_ms + 1200) * interval '1 millisecond'
    FROM seed WHERE NOT models_request
    UNION ALL
    -- The failed first attempt of a retried call.
    SELECT trace_id, retry_id, server_id, t + interval '0.5 ms', t + interval '30 ms', 29.5,
           'chat ' || model, 'client', 'error', 'loom', 'loom', instance_id, 'run-1', NULL::bigint, tenant, key_id,
           provider, 'chat', model, NULL, NULL, NULL, NULL, NULL, NULL, stream, NULL, NULL, 503, 1, NULL, NULL, NULL,
           'upstream_error', provider || '.example.com', provider || '-a', NULL, NULL, NULL,
           '{"server.port": 443, "loom.upstream.failure_reason": "status 503"}'::jsonb, '{"service.name": "loom"}'::jsonb,
           t + interval '1230 ms'
    FROM seed WHERE retried AND NOT models_request
) spans
ORDER BY 4`

// seedContentSQL captures the prompt and completion of the calls whose
// tenant has content capture on.
const seedContentSQL = `
INSERT INTO loom.span_content (trace_id, span_id, start_time, tenant_id, input_messages, output_messages)
SELECT trace_id, client_id, t + CASE WHEN retried THEN interval '40 ms' ELSE interval '0.5 ms' END, tenant,
       jsonb_build_array(jsonb_build_object('role', 'user', 'parts',
           jsonb_build_array(jsonb_build_object('type', 'text', 'content', 'Summarise ticket #' || i)))),
       jsonb_build_array(jsonb_build_object('role', 'assistant', 'parts',
           jsonb_build_array(jsonb_build_object('type', 'text', 'content', 'Ticket #' || i || ' asks for a refund.'))))
FROM seed WHERE content AND NOT models_request AND NOT failed`
