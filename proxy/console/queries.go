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
//
// The join is LATERAL, one indexed probe per SERVER span (the primary
// key's trace_id), bounded in time to the call's own (an attempt starts
// after its call and before it ends; a minute either way for clock steps)
// so that only the partitions of its day are probed (no sort: a later
// attempt is found by the same probe). A list walks the
// SERVER spans in start_time order and stops at its page: a plain join
// would let the planner hash every CLIENT span of the week first whenever
// a filter reads a CLIENT column.
const callsFrom = `
FROM loom.spans s
LEFT JOIN LATERAL (
  SELECT * FROM loom.spans c
  WHERE c.trace_id = s.trace_id AND c.parent_span_id = s.span_id AND c.kind = 'client'
    AND c.start_time >= s.start_time - interval '1 minute'
    AND c.start_time <= coalesce(s.end_time, s.start_time) + interval '1 minute'
    AND NOT EXISTS (SELECT 1 FROM loom.spans l WHERE l.trace_id = c.trace_id AND l.parent_span_id = c.parent_span_id
      AND l.kind = 'client' AND l.start_time >= s.start_time - interval '1 minute'
      AND l.start_time <= coalesce(s.end_time, s.start_time) + interval '1 minute'
      AND coalesce(l.upstream_attempt, 1) > coalesce(c.upstream_attempt, 1))
  LIMIT 1) c ON true
WHERE s.kind = 'server' AND ` + isCall

// isCall keeps the requests that are calls of a model: the SERVER spans of
// the routes that generate (chat completions, completions, embeddings,
// responses, messages, their Azure forms) or count a prompt's tokens.
// Listing models, looking up or deleting a stored response, unknown URLs
// and a wrong method on a call's route are requests, not calls: they have
// no model, tokens or provider. The rule reads the SERVER span's name
// (its method and http.route, as the tracer names it), a typed column:
// the planner knows how common each name is, where a condition on the
// attributes' http.route would be a guess that makes it sort whole days
// rather than walk an index. (The operation column is empty on a SERVER
// span: gen_ai.* go on the CLIENT span, and a call refused before any
// upstream has none.)
const isCall = `s.name IN ('POST /v1/chat/completions', 'POST /v1/completions', 'POST /v1/embeddings',
  'POST /v1/responses', 'POST /v1/responses/compact', 'POST /v1/responses/input_tokens', 'POST /v1/messages',
  'POST /v1/messages/count_tokens', 'POST /openai/deployments/{deployment-id}/chat/completions',
  'POST /openai/deployments/{deployment-id}/completions', 'POST /openai/deployments/{deployment-id}/embeddings',
  'POST /openai/responses', 'POST /openai/v1/chat/completions', 'POST /openai/v1/completions',
  'POST /openai/v1/embeddings', 'POST /openai/v1/responses')`

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
