package console

// The console's own SQL: the drill-down into calls (a filtered, paged list
// and one call's spans), which no dashboard panel has. The dashboard pages
// run dashboards/queries instead (see dashboards.go). A call is its SERVER
// span (what the client saw) with the CLIENT span under it (Loom's request
// upstream: tokens, TTFC). No query filters by tenant for isolation:
// row-level security does that.

// callsFrom joins each call's SERVER span to its CLIENT span: the attempt
// that served (or failed last), the highest upstream_attempt, when the
// call moved between deployments (one CLIENT span per attempt).
const callsFrom = `
FROM loom.spans s
LEFT JOIN loom.spans c ON c.trace_id = s.trace_id AND c.parent_span_id = s.span_id AND c.kind = 'client'
  AND NOT EXISTS (SELECT 1 FROM loom.spans l WHERE l.trace_id = c.trace_id AND l.parent_span_id = c.parent_span_id
    AND l.kind = 'client' AND coalesce(l.upstream_attempt, 1) > coalesce(c.upstream_attempt, 1))
WHERE s.kind = 'server' AND ` + isCall

// isCall keeps the requests that are calls of a model: the SERVER spans of
// the routes that generate (chat completions, completions, embeddings,
// responses, messages, their Azure forms) or count a prompt's tokens.
// Listing models, looking up or deleting a stored response, and unknown
// URLs are requests, not calls: they have no model, tokens or provider.
// The route is the SERVER span's http.route (its operation column is
// empty: gen_ai.* attributes go on the CLIENT span, and a call refused
// before any upstream has none).
const isCall = `s.attributes->>'http.route' IN (
  '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/responses/compact',
  '/v1/responses/input_tokens', '/v1/messages', '/v1/messages/count_tokens',
  '/openai/deployments/{deployment-id}/chat/completions', '/openai/deployments/{deployment-id}/completions',
  '/openai/deployments/{deployment-id}/embeddings', '/openai/responses', '/openai/v1/chat/completions',
  '/openai/v1/completions', '/openai/v1/embeddings', '/openai/v1/responses')`

// isError is a failed call: an error status or an HTTP error answer.
const isError = `(s.status_code = 'error' OR coalesce(s.http_status, 0) >= 400)`

// callsSelect lists calls; filters and paging are appended.
const callsSelect = `
SELECT s.trace_id, s.start_time, coalesce(s.tenant_id, ''), coalesce(s.api_key_id, ''),
       coalesce(s.request_model, c.request_model, ''), coalesce(c.provider, s.provider, ''),
       coalesce(s.stream, c.stream, false), s.status_code, coalesce(s.http_status, 0), ` + isError + `,
       coalesce(s.client_disconnected, false), coalesce(s.error_type, c.error_type, ''),
       c.input_tokens, c.output_tokens, s.duration_ms, c.time_to_first_chunk_ms, s.overhead_ms,
       c.cost::text, c.cost_currency` + callsFrom

// spansSQL is every span of a trace, every column but ingestion bookkeeping.
const spansSQL = `SELECT * FROM loom.spans WHERE trace_id = $1 ORDER BY start_time, span_id`

// contentSQL is a trace's captured prompts and completions.
const contentSQL = `
SELECT span_id, coalesce(jsonb_pretty(input_messages), ''), coalesce(jsonb_pretty(output_messages), '')
FROM loom.span_content WHERE trace_id = $1 ORDER BY start_time, span_id`
