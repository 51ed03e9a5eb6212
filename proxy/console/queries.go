package console

import "github.com/loom-gateway/loom/dashboards/queries"

// The console's own SQL: the drill-down into calls (a filtered, paged list
// and one call's spans), which no dashboard panel has. The dashboard pages
// run dashboards/queries instead (see dashboards.go). A call is its SERVER
// span (what the client saw) with the CLIENT span under it (Loom's request
// upstream: tokens, TTFC). No query filters by tenant for isolation:
// row-level security does that.

// callsFrom joins each call's SERVER span to its CLIENT span: the attempt
// that served (or failed last), the highest upstream_attempt, when the
// call moved between deployments (one CLIENT span per attempt). The
// attempt is a LATERAL lookup, one call at a time, by the primary key in
// the call's own partitions (its attempts start after its SERVER span and
// within the hour: queries.CallWindow): a page walks the calls newest
// first by index and stops when it has its rows, where a join would hash
// every CLIENT span in the store whenever a filter reads the CLIENT side.
const callsFrom = `
FROM loom.spans s
LEFT JOIN LATERAL (SELECT * FROM loom.spans a WHERE a.trace_id = s.trace_id AND a.parent_span_id = s.span_id
    AND a.kind = 'client' AND a.start_time BETWEEN s.start_time AND s.start_time + ` + queries.CallWindow + `
    AND NOT EXISTS (SELECT 1 FROM loom.spans l WHERE l.trace_id = a.trace_id AND l.parent_span_id = a.parent_span_id
      AND l.kind = 'client' AND coalesce(l.upstream_attempt, 1) > coalesce(a.upstream_attempt, 1)
      AND l.start_time BETWEEN a.start_time AND s.start_time + ` + queries.CallWindow + `)
  LIMIT 1) c ON true
WHERE s.kind = 'server'`

// isError is a failed call: an error status or an HTTP error answer.
const isError = `(s.status_code = 'error' OR coalesce(s.http_status, 0) >= 400)`

// callsSelect lists calls; filters and paging are appended.
const callsSelect = `
SELECT s.trace_id, s.start_time, coalesce(s.tenant_id, ''), coalesce(s.api_key_id, ''),
       coalesce(s.request_model, c.request_model, ''), coalesce(s.stream, c.stream, false),
       s.status_code, coalesce(s.http_status, 0), ` + isError + `,
       c.input_tokens, c.output_tokens, s.duration_ms, c.time_to_first_chunk_ms,
       c.cost::text, c.cost_currency` + callsFrom
