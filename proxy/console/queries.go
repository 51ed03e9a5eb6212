package console

// The console's SQL. A call is its SERVER span (what the client saw) with
// the CLIENT span under it (Loom's request upstream: tokens, TTFC). These
// are written here rather than taken from dashboards/queries, whose Expand
// (Grafana macros to plain SQL) did not exist when the console was written.
// No query filters by tenant for isolation: row-level security does that.

// callsFrom joins each call's SERVER span to its CLIENT span.
const callsFrom = `
FROM loom.spans s
LEFT JOIN loom.spans c ON c.trace_id = s.trace_id AND c.parent_span_id = s.span_id AND c.kind = 'client'
WHERE s.kind = 'server'`

// isError is a failed call: an error status or an HTTP error answer.
const isError = `(s.status_code = 'error' OR coalesce(s.http_status, 0) >= 400)`

// overviewSQL is one row per time bucket: $1 from, $2 to, $3 bucket width.
const overviewSQL = `
SELECT date_bin($3::interval, s.start_time, $1::timestamptz) AS bucket,
       count(*),
       count(*) FILTER (WHERE ` + isError + `),
       coalesce(sum(c.input_tokens), 0)::bigint,
       coalesce(sum(c.output_tokens), 0)::bigint,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY s.duration_ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY s.duration_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY s.overhead_ms),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY c.time_to_first_chunk_ms)` + callsFrom + `
  AND s.start_time >= $1 AND s.start_time < $2
GROUP BY 1 ORDER BY 1`

// totalsSQL is overviewSQL over the whole range.
const totalsSQL = `
SELECT count(*),
       count(*) FILTER (WHERE ` + isError + `),
       coalesce(sum(c.input_tokens), 0)::bigint,
       coalesce(sum(c.output_tokens), 0)::bigint,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY s.duration_ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY s.duration_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY s.overhead_ms),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY c.time_to_first_chunk_ms)` + callsFrom + `
  AND s.start_time >= $1 AND s.start_time < $2`

// callsSelect lists calls; filters and paging are appended.
const callsSelect = `
SELECT s.trace_id, s.start_time, coalesce(s.tenant_id, ''), coalesce(s.api_key_id, ''),
       coalesce(s.request_model, c.request_model, ''), coalesce(s.stream, c.stream, false),
       s.status_code, coalesce(s.http_status, 0), ` + isError + `,
       c.input_tokens, c.output_tokens, s.duration_ms, c.time_to_first_chunk_ms` + callsFrom

// spansSQL is every span of a trace, every column but ingestion bookkeeping.
const spansSQL = `SELECT * FROM loom.spans WHERE trace_id = $1 ORDER BY start_time, span_id`

// contentSQL is a trace's captured prompts and completions.
const contentSQL = `
SELECT span_id, coalesce(jsonb_pretty(input_messages), ''), coalesce(jsonb_pretty(output_messages), '')
FROM loom.span_content WHERE trace_id = $1 ORDER BY start_time, span_id`
