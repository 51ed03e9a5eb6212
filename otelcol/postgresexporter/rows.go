package postgresexporter

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/loom-gateway/loom/proxy/spanattr"
)

// spanRow is one row of loom.spans, with its events and content, and where
// it came from (to re-encode it if it must go to dead letters).
type spanRow struct {
	traceID, spanID  string
	parentSpanID     pgtype.Text
	start            time.Time
	end              pgtype.Timestamptz
	durationMS       pgtype.Float8
	name, kind       string
	statusCode       string
	statusMessage    pgtype.Text
	serviceName      pgtype.Text
	scopeName        pgtype.Text
	instanceID       pgtype.Text
	runID            pgtype.Text // loom.run.id
	seq              pgtype.Int8
	tenantID         pgtype.Text
	apiKeyID         pgtype.Text
	provider         pgtype.Text
	operation        pgtype.Text
	requestModel     pgtype.Text
	responseModel    pgtype.Text
	responseID       pgtype.Text
	finishReasons    []byte // a JSON array of strings, nil for NULL
	inputTokens      pgtype.Int8
	outputTokens     pgtype.Int8
	cacheReadTokens  pgtype.Int8
	reasoningTokens  pgtype.Int8
	totalTokens      pgtype.Int8
	stream           pgtype.Bool
	ttfcMS           pgtype.Float8
	overheadMS       pgtype.Float8
	httpStatus       pgtype.Int4
	upstreamAttempt  pgtype.Int4
	usageSource      pgtype.Text
	clientDisconnect pgtype.Bool
	chunks           pgtype.Int4
	errorType        pgtype.Text
	serverAddress    pgtype.Text
	deployment       pgtype.Text
	cost             pgtype.Text // loom.cost as a decimal, cast to numeric by the insert
	costCurrency     pgtype.Text
	priceID          pgtype.Text
	attributes       []byte
	resource         []byte // shared by the rows of one resource
	links            []byte // nil for NULL

	events  []eventRow
	content *contentRow

	src source
}

// source is where a span came from, to re-encode it for loom.dead_letters.
type source struct {
	res   ptrace.ResourceSpans
	scope ptrace.ScopeSpans
	span  ptrace.Span
}

// eventRow is one row of loom.span_events.
type eventRow struct {
	traceID, spanID string
	spanStart       time.Time
	tenantID        pgtype.Text // the span's, for row-level security
	seq             int32
	time            time.Time
	name            string
	attributes      []byte
}

// contentRow is one row of loom.span_content.
type contentRow struct {
	traceID, spanID string
	start           time.Time
	tenantID        pgtype.Text
	input, output   []byte // JSON, nil for NULL
}

// columnSetter moves an attribute's value into a typed column. It reports
// false when the value does not fit the column exactly; the attribute then
// stays in the attributes jsonb, so nothing is lost.
type columnSetter func(r *spanRow, v pcommon.Value) bool

// typedColumns maps the attributes Loom emits (proxy/spanattr) to columns.
var typedColumns = map[string]columnSetter{
	spanattr.InstanceID:         text(func(r *spanRow) *pgtype.Text { return &r.instanceID }),
	spanattr.RunID:              text(func(r *spanRow) *pgtype.Text { return &r.runID }),
	spanattr.Seq:                int8Col(func(r *spanRow) *pgtype.Int8 { return &r.seq }),
	spanattr.TenantID:           text(func(r *spanRow) *pgtype.Text { return &r.tenantID }),
	spanattr.APIKeyID:           text(func(r *spanRow) *pgtype.Text { return &r.apiKeyID }),
	spanattr.GenAIProviderName:  text(func(r *spanRow) *pgtype.Text { return &r.provider }),
	spanattr.GenAIOperationName: text(func(r *spanRow) *pgtype.Text { return &r.operation }),
	// A CLIENT span names the model in gen_ai.request.model, a SERVER span
	// (which carries no gen_ai.*) in loom.request.model: one column, so
	// dashboards filter both rows alike. Should a span carry both, the
	// first fills the column and the other stays in the attributes jsonb.
	spanattr.GenAIRequestModel:               textOnce(func(r *spanRow) *pgtype.Text { return &r.requestModel }),
	spanattr.RequestModel:                    textOnce(func(r *spanRow) *pgtype.Text { return &r.requestModel }),
	spanattr.GenAIResponseModel:              text(func(r *spanRow) *pgtype.Text { return &r.responseModel }),
	spanattr.GenAIResponseID:                 text(func(r *spanRow) *pgtype.Text { return &r.responseID }),
	spanattr.GenAIResponseFinishReasons:      setFinishReasons,
	spanattr.GenAIUsageInputTokens:           int8Col(func(r *spanRow) *pgtype.Int8 { return &r.inputTokens }),
	spanattr.GenAIUsageOutputTokens:          int8Col(func(r *spanRow) *pgtype.Int8 { return &r.outputTokens }),
	spanattr.GenAIUsageCacheReadInputTokens:  int8Col(func(r *spanRow) *pgtype.Int8 { return &r.cacheReadTokens }),
	spanattr.GenAIUsageReasoningOutputTokens: int8Col(func(r *spanRow) *pgtype.Int8 { return &r.reasoningTokens }),
	spanattr.UsageTotalTokens:                int8Col(func(r *spanRow) *pgtype.Int8 { return &r.totalTokens }),
	spanattr.GenAIRequestStream:              boolOnce(func(r *spanRow) *pgtype.Bool { return &r.stream }),
	spanattr.RequestStream:                   boolOnce(func(r *spanRow) *pgtype.Bool { return &r.stream }),
	spanattr.GenAIResponseTimeToFirstChunk:   millis(func(r *spanRow) *pgtype.Float8 { return &r.ttfcMS }),
	spanattr.GatewayOverhead:                 millis(func(r *spanRow) *pgtype.Float8 { return &r.overheadMS }),
	spanattr.HTTPResponseStatusCode:          int4Col(func(r *spanRow) *pgtype.Int4 { return &r.httpStatus }),
	spanattr.UpstreamAttempt:                 int4Col(func(r *spanRow) *pgtype.Int4 { return &r.upstreamAttempt }),
	spanattr.UsageSource:                     text(func(r *spanRow) *pgtype.Text { return &r.usageSource }),
	spanattr.ClientDisconnected:              boolCol(func(r *spanRow) *pgtype.Bool { return &r.clientDisconnect }),
	spanattr.Chunks:                          int4Col(func(r *spanRow) *pgtype.Int4 { return &r.chunks }),
	spanattr.ErrorType:                       text(func(r *spanRow) *pgtype.Text { return &r.errorType }),
	spanattr.ServerAddress:                   text(func(r *spanRow) *pgtype.Text { return &r.serverAddress }),
	spanattr.Deployment:                      text(func(r *spanRow) *pgtype.Text { return &r.deployment }),
	spanattr.Cost:                            setCost,
	spanattr.CostCurrency:                    text(func(r *spanRow) *pgtype.Text { return &r.costCurrency }),
	spanattr.CostPriceID:                     text(func(r *spanRow) *pgtype.Text { return &r.priceID }),
}

// setCost stores loom.cost, a double in currency units, as the shortest
// decimal that reads back as the same double: the proxy's exact amount
// (at most 12 decimal places and well inside 15 significant digits) comes
// back digit for digit, so the numeric column holds what the catalog
// priced, not a binary fraction. An int is taken as it is; anything else,
// or a NaN or infinity, stays in the attributes jsonb.
func setCost(r *spanRow, v pcommon.Value) bool {
	var s string
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
		s = strconv.FormatFloat(f, 'f', -1, 64)
	case pcommon.ValueTypeInt:
		s = strconv.FormatInt(v.Int(), 10)
	default:
		return false
	}
	r.cost = pgtype.Text{String: s, Valid: true}
	return true
}

// textOnce and boolOnce set a column that two attributes can fill: the
// column takes the first, and a later one stays in the attributes jsonb.
func textOnce(col func(*spanRow) *pgtype.Text) columnSetter {
	set := text(col)
	return func(r *spanRow, v pcommon.Value) bool { return !col(r).Valid && set(r, v) }
}

func boolOnce(col func(*spanRow) *pgtype.Bool) columnSetter {
	set := boolCol(col)
	return func(r *spanRow, v pcommon.Value) bool { return !col(r).Valid && set(r, v) }
}

// Text columns take strings only: turning a number into text would be a
// guess about its format.
func text(col func(*spanRow) *pgtype.Text) columnSetter {
	return func(r *spanRow, v pcommon.Value) bool {
		if v.Type() != pcommon.ValueTypeStr {
			return false
		}
		*col(r) = pgtype.Text{String: v.Str(), Valid: true}
		return true
	}
}

func int8Col(col func(*spanRow) *pgtype.Int8) columnSetter {
	return func(r *spanRow, v pcommon.Value) bool {
		n, ok := exactInt(v, math.MinInt64, math.MaxInt64)
		*col(r) = pgtype.Int8{Int64: n, Valid: ok}
		return ok
	}
}

func int4Col(col func(*spanRow) *pgtype.Int4) columnSetter {
	return func(r *spanRow, v pcommon.Value) bool {
		n, ok := exactInt(v, math.MinInt32, math.MaxInt32)
		*col(r) = pgtype.Int4{Int32: int32(n), Valid: ok}
		return ok
	}
}

// exactInt reads an integer given as an int, a double with no fraction, or a
// decimal string, within [lo, hi].
func exactInt(v pcommon.Value, lo, hi int64) (int64, bool) {
	var n int64
	switch v.Type() {
	case pcommon.ValueTypeInt:
		n = v.Int()
	case pcommon.ValueTypeDouble:
		f := v.Double()
		// 2^63 is exactly representable; anything at or past it overflows.
		if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
			return 0, false
		}
		n = int64(f)
	case pcommon.ValueTypeStr:
		var err error
		if n, err = strconv.ParseInt(v.Str(), 10, 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return n, n >= lo && n <= hi
}

// millis stores a duration given in seconds (as the conventions define) as
// milliseconds.
func millis(col func(*spanRow) *pgtype.Float8) columnSetter {
	return func(r *spanRow, v pcommon.Value) bool {
		var f float64
		switch v.Type() {
		case pcommon.ValueTypeDouble:
			f = v.Double()
		case pcommon.ValueTypeInt:
			f = float64(v.Int())
		case pcommon.ValueTypeStr:
			var err error
			if f, err = strconv.ParseFloat(v.Str(), 64); err != nil {
				return false
			}
		default:
			return false
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
		*col(r) = pgtype.Float8{Float64: f * 1000, Valid: true}
		return true
	}
}

func boolCol(col func(*spanRow) *pgtype.Bool) columnSetter {
	return func(r *spanRow, v pcommon.Value) bool {
		var b bool
		switch {
		case v.Type() == pcommon.ValueTypeBool:
			b = v.Bool()
		case v.Type() == pcommon.ValueTypeStr && (v.Str() == "true" || v.Str() == "false"):
			b = v.Str() == "true"
		default:
			return false
		}
		*col(r) = pgtype.Bool{Bool: b, Valid: true}
		return true
	}
}

// setFinishReasons takes a slice of strings (the convention) or a single
// string (one reason).
func setFinishReasons(r *spanRow, v pcommon.Value) bool {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		r.finishReasons = appendString(append(r.finishReasons[:0], '['), v.Str())
		r.finishReasons = append(r.finishReasons, ']')
		return true
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		for i := range s.Len() {
			if s.At(i).Type() != pcommon.ValueTypeStr {
				return false
			}
		}
		r.finishReasons = appendValue(nil, v)
		return true
	}
	return false
}

// contentJSON is a content attribute as JSON: the conventions carry messages
// as a JSON string; one that is not JSON is kept as a JSON string, and so is
// JSON holding \u0000, which jsonb refuses (better stored as text than
// dead-lettered).
func contentJSON(v pcommon.Value) []byte {
	if s := v.Str(); v.Type() == pcommon.ValueTypeStr && !strings.Contains(s, `\u0000`) && json.Valid([]byte(s)) {
		return []byte(s)
	}
	return appendValue(nil, v)
}

var kinds = map[ptrace.SpanKind]string{
	ptrace.SpanKindServer:   "server",
	ptrace.SpanKindClient:   "client",
	ptrace.SpanKindInternal: "internal",
	ptrace.SpanKindProducer: "producer",
	ptrace.SpanKindConsumer: "consumer",
}

func kindName(k ptrace.SpanKind) string {
	if n, ok := kinds[k]; ok {
		return n
	}
	return "unspecified"
}

func statusName(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "ok"
	case ptrace.StatusCodeError:
		return "error"
	}
	return "unset"
}

// optText is s as a nullable column: empty means absent in OTLP.
func optText(s string) pgtype.Text {
	return pgtype.Text{String: s, Valid: s != ""}
}
