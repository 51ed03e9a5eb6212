package postgresexporter

import (
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// column is one column of a bulk insert: its name, the array type its values
// are sent as, the SQL that turns the unnested value into the stored one (""
// for the value as is), and how to gather its values from the rows.
type column[R any] struct {
	name, array, expr string
	values            func([]R) any
}

func col[R, T any](name, array string, get func(*R) T) column[R] {
	return column[R]{name: name, array: array, values: func(rows []R) any {
		out := make([]T, len(rows))
		for i := range rows {
			out[i] = get(&rows[i])
		}
		return out
	}}
}

// bulkInsert is one INSERT ... SELECT FROM unnest($1::t1[], $2::t2[], ...):
// a whole batch in one statement with one parameter per column, whatever
// the batch size (no 65535-parameter limit, one plan cached by pgx).
type bulkInsert[R any] struct {
	sql  string
	cols []column[R]
}

func newBulkInsert[R any](table, conflict string, cols ...column[R]) bulkInsert[R] {
	names, exprs, params := make([]string, len(cols)), make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
		exprs[i] = "u." + c.name
		if c.expr != "" {
			exprs[i] = c.expr
		}
		params[i] = fmt.Sprintf("$%d::%s", i+1, c.array)
	}
	sql := fmt.Sprintf("INSERT INTO loom.%s (%s)\nSELECT %s\nFROM unnest(%s) AS u(%s)%s",
		table, strings.Join(names, ", "), strings.Join(exprs, ", "), strings.Join(params, ", "),
		strings.Join(names, ", "), conflict)
	return bulkInsert[R]{sql: sql, cols: cols}
}

// args are the statement's arguments for rows: one array per column.
func (b bulkInsert[R]) args(rows []R) []any {
	args := make([]any, len(b.cols))
	for i, c := range b.cols {
		args[i] = c.values(rows)
	}
	return args
}

const onConflict = "\nON CONFLICT DO NOTHING"

type sr = spanRow

var insertSpans = newBulkInsert("spans", onConflict,
	col("trace_id", "text[]", func(r *sr) string { return r.traceID }),
	col("span_id", "text[]", func(r *sr) string { return r.spanID }),
	col("parent_span_id", "text[]", func(r *sr) pgtype.Text { return r.parentSpanID }),
	col("start_time", "timestamptz[]", func(r *sr) time.Time { return r.start }),
	col("end_time", "timestamptz[]", func(r *sr) pgtype.Timestamptz { return r.end }),
	col("duration_ms", "float8[]", func(r *sr) pgtype.Float8 { return r.durationMS }),
	col("name", "text[]", func(r *sr) string { return r.name }),
	col("kind", "text[]", func(r *sr) string { return r.kind }),
	col("status_code", "text[]", func(r *sr) string { return r.statusCode }),
	col("status_message", "text[]", func(r *sr) pgtype.Text { return r.statusMessage }),
	col("service_name", "text[]", func(r *sr) pgtype.Text { return r.serviceName }),
	col("scope_name", "text[]", func(r *sr) pgtype.Text { return r.scopeName }),
	col("instance_id", "text[]", func(r *sr) pgtype.Text { return r.instanceID }),
	col("run_id", "text[]", func(r *sr) pgtype.Text { return r.runID }),
	col("seq", "int8[]", func(r *sr) pgtype.Int8 { return r.seq }),
	col("tenant_id", "text[]", func(r *sr) pgtype.Text { return r.tenantID }),
	col("api_key_id", "text[]", func(r *sr) pgtype.Text { return r.apiKeyID }),
	col("provider", "text[]", func(r *sr) pgtype.Text { return r.provider }),
	col("operation", "text[]", func(r *sr) pgtype.Text { return r.operation }),
	col("request_model", "text[]", func(r *sr) pgtype.Text { return r.requestModel }),
	col("response_model", "text[]", func(r *sr) pgtype.Text { return r.responseModel }),
	col("response_id", "text[]", func(r *sr) pgtype.Text { return r.responseID }),
	// A text[] per row cannot be an element of an array parameter (Postgres
	// arrays are rectangular), so each row's reasons travel as a jsonb array.
	withExpr(col("finish_reasons", "jsonb[]", func(r *sr) []byte { return r.finishReasons }),
		"CASE WHEN u.finish_reasons IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(u.finish_reasons)) END"),
	col("input_tokens", "int8[]", func(r *sr) pgtype.Int8 { return r.inputTokens }),
	col("output_tokens", "int8[]", func(r *sr) pgtype.Int8 { return r.outputTokens }),
	col("cache_read_tokens", "int8[]", func(r *sr) pgtype.Int8 { return r.cacheReadTokens }),
	col("reasoning_tokens", "int8[]", func(r *sr) pgtype.Int8 { return r.reasoningTokens }),
	col("total_tokens", "int8[]", func(r *sr) pgtype.Int8 { return r.totalTokens }),
	col("stream", "bool[]", func(r *sr) pgtype.Bool { return r.stream }),
	col("time_to_first_chunk_ms", "float8[]", func(r *sr) pgtype.Float8 { return r.ttfcMS }),
	col("overhead_ms", "float8[]", func(r *sr) pgtype.Float8 { return r.overheadMS }),
	col("http_status", "int4[]", func(r *sr) pgtype.Int4 { return r.httpStatus }),
	col("upstream_attempt", "int4[]", func(r *sr) pgtype.Int4 { return r.upstreamAttempt }),
	col("usage_source", "text[]", func(r *sr) pgtype.Text { return r.usageSource }),
	col("client_disconnected", "bool[]", func(r *sr) pgtype.Bool { return r.clientDisconnect }),
	col("chunks", "int4[]", func(r *sr) pgtype.Int4 { return r.chunks }),
	col("error_type", "text[]", func(r *sr) pgtype.Text { return r.errorType }),
	col("server_address", "text[]", func(r *sr) pgtype.Text { return r.serverAddress }),
	col("deployment", "text[]", func(r *sr) pgtype.Text { return r.deployment }),
	withExpr(col("cost", "text[]", func(r *sr) pgtype.Text { return r.cost }), "u.cost::numeric"),
	col("cost_currency", "text[]", func(r *sr) pgtype.Text { return r.costCurrency }),
	col("price_id", "text[]", func(r *sr) pgtype.Text { return r.priceID }),
	col("attributes", "jsonb[]", func(r *sr) []byte { return r.attributes }),
	col("resource", "jsonb[]", func(r *sr) []byte { return r.resource }),
	col("links", "jsonb[]", func(r *sr) []byte { return r.links }),
)

var insertEvents = newBulkInsert("span_events", onConflict,
	col("trace_id", "text[]", func(r *eventRow) string { return r.traceID }),
	col("span_id", "text[]", func(r *eventRow) string { return r.spanID }),
	col("span_start_time", "timestamptz[]", func(r *eventRow) time.Time { return r.spanStart }),
	col("tenant_id", "text[]", func(r *eventRow) pgtype.Text { return r.tenantID }),
	col("seq", "int4[]", func(r *eventRow) int32 { return r.seq }),
	col("time", "timestamptz[]", func(r *eventRow) time.Time { return r.time }),
	col("name", "text[]", func(r *eventRow) string { return r.name }),
	col("attributes", "jsonb[]", func(r *eventRow) []byte { return r.attributes }),
)

var insertContent = newBulkInsert("span_content", onConflict,
	col("trace_id", "text[]", func(r *contentRow) string { return r.traceID }),
	col("span_id", "text[]", func(r *contentRow) string { return r.spanID }),
	col("start_time", "timestamptz[]", func(r *contentRow) time.Time { return r.start }),
	col("tenant_id", "text[]", func(r *contentRow) pgtype.Text { return r.tenantID }),
	col("input_messages", "jsonb[]", func(r *contentRow) []byte { return r.input }),
	col("output_messages", "jsonb[]", func(r *contentRow) []byte { return r.output }),
)

// deadRow is one row of loom.dead_letters.
type deadRow struct {
	reason, traceID, spanID, spanName string
	payload                           []byte
}

// Dead letters have no natural key: a batch retried after its commit was
// lost can add a dead letter twice (rare, and harmless to a replay, which is
// idempotent).
var insertDead = newBulkInsert("dead_letters", "",
	col("reason", "text[]", func(r *deadRow) string { return r.reason }),
	col("trace_id", "text[]", func(r *deadRow) string { return r.traceID }),
	col("span_id", "text[]", func(r *deadRow) string { return r.spanID }),
	col("span_name", "text[]", func(r *deadRow) string { return r.spanName }),
	col("payload", "bytea[]", func(r *deadRow) []byte { return r.payload }),
)

func withExpr[R any](c column[R], expr string) column[R] {
	c.expr = expr
	return c
}
