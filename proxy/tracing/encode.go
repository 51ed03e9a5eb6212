package tracing

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/price"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// The encoder writes a call's spans straight from its call.Record as OTLP
// protobuf (opentelemetry/proto/collector/trace/v1), appending to a buffer
// the caller reuses: no SDK span objects, no attribute slices, and on the
// normal path no allocation at all (pinned by TestEncode_AllocationBudget).
// Every string it writes is valid UTF-8 and capped by the same rules as
// the SDK path (sanitize.go): a proto3 string that is not UTF-8 makes the
// whole request undecodable.
//
// Its output is, span for span, what the SDK path with the otlptrace
// exporter produced (TestEncode_MatchesSDKPath checks it field by field),
// plus loom.run.id on both spans of a call.

// scopeName is the instrumentation scope of every span Loom emits.
const scopeName = "github.com/loom-gateway/loom/proxy"

// Field tags (field number << 3 | wire type) of the OTLP messages written
// here; see opentelemetry/proto/trace/v1/trace.proto.
const (
	tagResourceSpans = 1<<3 | 2 // ExportTraceServiceRequest.resource_spans

	tagRSResource   = 1<<3 | 2 // ResourceSpans.resource
	tagRSScopeSpans = 2<<3 | 2 // ResourceSpans.scope_spans
	tagResourceAttr = 1<<3 | 2 // Resource.attributes
	tagSSScope      = 1<<3 | 2 // ScopeSpans.scope
	tagSSSpans      = 2<<3 | 2 // ScopeSpans.spans
	tagScopeName    = 1<<3 | 2 // InstrumentationScope.name

	tagTraceID      = 1<<3 | 2
	tagSpanID       = 2<<3 | 2
	tagTraceState   = 3<<3 | 2
	tagParentSpanID = 4<<3 | 2
	tagName         = 5<<3 | 2
	tagKind         = 6 << 3 // varint
	tagStart        = 7<<3 | 1
	tagEnd          = 8<<3 | 1
	tagSpanAttr     = 9<<3 | 2
	tagStatus       = 15<<3 | 2
	// Span.flags is field 16, fixed32: its tag takes two varint bytes.
	tagFlags0, tagFlags1 = 0x85, 0x01

	tagStatusMessage = 2<<3 | 2
	tagStatusCode    = 3 << 3 // varint

	tagKVKey   = 1<<3 | 2
	tagKVValue = 2<<3 | 2

	tagAnyString = 1<<3 | 2
	tagAnyBool   = 2 << 3 // varint
	tagAnyInt    = 3 << 3 // varint
	tagAnyDouble = 4<<3 | 1
	tagAnyArray  = 5<<3 | 2
	tagArrayVals = 1<<3 | 2
)

// OTLP enum values and flag bits.
const (
	kindInternal = 1
	kindServer   = 2
	kindClient   = 3

	statusError = 2

	flagHasIsRemote = 0x100 // SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
	flagIsRemote    = 0x200 // SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
)

// encoder encodes calls and run markers for one instance. It holds only
// what every call shares, encoded once, and is safe for concurrent use.
type encoder struct {
	resource []byte // ResourceSpans.resource: tag, length, Resource
	scope    []byte // ScopeSpans.scope: tag, length, InstrumentationScope
	instance []byte // the span attribute loom.instance.id: tag, length, KeyValue
}

// callIDs are a call's place in its instance's numbering.
type callIDs struct {
	Seq int64  // loom.seq
	Run string // loom.run.id
}

// runMarker is the opening (RunStart) or closing (RunStop) record of a run.
type runMarker struct {
	Event          string // spanattr.RunStart or spanattr.RunStop
	Run            string
	At             time.Time
	LastSeq        int64         // stop: the run's last loom.seq
	CommitInterval time.Duration // start: the spool's commit window
	LossBound      int64         // start: the most calls a crash can lose
}

// newEncoder encodes the resource as tracing.New describes it to the SDK:
// service.name, service.version and service.instance.id, merged over
// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME as the SDK's WithResource
// does, in the SDK's order (sorted by key).
func newEncoder(serviceVersion, instance string) *encoder {
	instance = call.Clean(instance, maxShort)
	res, err := resource.Merge(resource.Environment(), resource.NewSchemaless(
		attribute.String(sa.ServiceName, sa.ServiceNameLoom),
		attribute.String(sa.ServiceVersion, call.Clean(serviceVersion, maxShort)),
		attribute.String(sa.ServiceInstanceID, instance),
	))
	if err != nil {
		// A malformed environment: keep Loom's own attributes, as the SDK
		// does when the merge fails.
		res = resource.NewSchemaless(
			attribute.String(sa.ServiceName, sa.ServiceNameLoom),
			attribute.String(sa.ServiceVersion, call.Clean(serviceVersion, maxShort)),
			attribute.String(sa.ServiceInstanceID, instance))
	}
	e := &encoder{}
	var start int
	e.resource, start = openLen(nil, tagRSResource, 1)
	for _, kv := range res.Attributes() {
		e.resource = appendAttr(e.resource, tagResourceAttr, kv)
	}
	e.resource = closeLen(e.resource, start, 1)
	e.scope, start = openLen(nil, tagSSScope, 1)
	e.scope = appendString(e.scope, tagScopeName, scopeName)
	e.scope = closeLen(e.scope, start, 1)
	e.instance = appendStrKV(nil, sa.InstanceID, instance)
	return e
}

// appendCall appends r's spans to dst as one ExportTraceServiceRequest
// entry (field 1: a ResourceSpans with this instance's resource and one
// ScopeSpans), so that any number of appendCall outputs concatenated are an
// ExportTraceServiceRequest as they stand. The SERVER span is always
// there; the CLIENT span, child of the SERVER span, when r.UpstreamStart is
// set. A valid r.TraceParent gives the trace id and the SERVER span's
// remote parent; otherwise the trace id is new. Either way it is written
// to r.TraceID.
func (e *encoder) appendCall(dst []byte, r *call.Record, ids callIDs) []byte {
	// Today's SDK path: the W3C propagator reads the client's traceparent,
	// every span is sampled (a caller's sampled=0 must not erase a billable
	// call), and the child keeps the parent's other flags and trace state.
	var parent trace.SpanContext
	if len(r.TraceParent) > 0 {
		parent = trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), (*traceParentView)(&r.TraceParent)))
	}
	var ctx spanCtx
	if parent.TraceID().IsValid() {
		ctx.trace = parent.TraceID()
		ctx.parent = parent.SpanID()
		ctx.remote = parent.IsRemote()
		ctx.state = parent.TraceState().String()
	} else {
		ctx.trace = newTraceID()
	}
	ctx.flags = uint32(parent.TraceFlags() | trace.FlagsSampled)
	ctx.span = newSpanID()
	r.TraceID = ctx.trace // for whoever reads the record after the sink: exemplars
	run := call.Clean(ids.Run, maxShort)

	dst, rs := openLen(dst, tagResourceSpans, 2)
	dst = append(dst, e.resource...)
	dst, ss := openLen(dst, tagRSScopeSpans, 2)
	dst = append(dst, e.scope...)

	dst, sp := openLen(dst, tagSSSpans, 2)
	dst = ctx.appendIDs(dst)
	dst = appendServerName(dst, r)
	dst = append(dst, tagKind, kindServer)
	dst = appendTimes(dst, r.Start, r.End)
	dst = e.appendServerAttrs(dst, r, run, ids.Seq)
	// The SERVER span's status is the client's side of the call.
	dst = appendStatus(dst, r, r.Status >= 500 || r.Outcome == call.OutcomeClientGone || r.Outcome == call.OutcomeUpstreamFailed)
	dst = ctx.appendFlags(dst)
	dst = closeLen(dst, sp, 2)

	// One CLIENT span per upstream attempt, in order: first those that
	// failed before anything reached the client, then the one that served
	// (the record's own fields).
	for i := range r.Attempts {
		client := spanCtx{trace: ctx.trace, parent: ctx.span, span: newSpanID(), flags: ctx.flags, state: ctx.state}
		dst = e.appendAttemptSpan(dst, &client, r, &r.Attempts[i], i+1, run, ids.Seq)
	}
	if !r.UpstreamStart.IsZero() {
		client := spanCtx{trace: ctx.trace, parent: ctx.span, span: newSpanID(), flags: ctx.flags, state: ctx.state}
		dst, sp = openLen(dst, tagSSSpans, 2)
		dst = client.appendIDs(dst)
		dst = appendClientName(dst, r)
		dst = append(dst, tagKind, kindClient)
		end := r.UpstreamEnd
		if end.IsZero() {
			end = r.End
		}
		dst = appendTimes(dst, r.UpstreamStart, end)
		dst = e.appendClientAttrs(dst, r, run, ids.Seq)
		dst = appendStatus(dst, r, upstreamFailed(r))
		dst = client.appendFlags(dst)
		dst = closeLen(dst, sp, 2)
	}
	dst = closeLen(dst, ss, 2)
	return closeLen(dst, rs, 2)
}

// appendAttemptSpan appends the CLIENT span of a's failed attempt, number
// n of the call: the call's attributes, where it went, why it failed. No
// usage: only the attempt that served is counted.
func (e *encoder) appendAttemptSpan(dst []byte, c *spanCtx, r *call.Record, a *call.Attempt, n int, run string, seq int64) []byte {
	dst, sp := openLen(dst, tagSSSpans, 2)
	dst = c.appendIDs(dst)
	if a.UpstreamModel == "" {
		dst = appendName(dst, call.Clean(string(r.Operation), maxShort))
	} else {
		dst = appendJoined(dst, string(r.Operation), a.UpstreamModel)
	}
	dst = append(dst, tagKind, kindClient)
	end := a.End
	if end.IsZero() {
		end = a.Start
	}
	dst = appendTimes(dst, a.Start, end)
	dst = e.appendCallAttrs(dst, r, run, seq)
	dst = appendStrKV(dst, sa.GenAIOperationName, call.Clean(string(r.Operation), maxShort))
	dst = appendStrKV(dst, sa.GenAIProviderName, call.Clean(a.Provider, maxShort))
	if api := OpenAIAPIType(r, a.Provider); api != "" {
		dst = appendStrKV(dst, sa.OpenAIAPIType, api)
	}
	dst = appendStrKV(dst, sa.GenAIRequestModel, call.Clean(a.UpstreamModel, maxShort))
	dst = appendBoolKV(dst, sa.GenAIRequestStream, r.Stream)
	dst = appendStrKV(dst, sa.ServerAddress, call.Clean(a.ServerAddress, maxShort))
	dst = appendIntKV(dst, sa.ServerPort, int64(a.ServerPort))
	dst = appendStrKV(dst, sa.Deployment, call.Clean(a.Deployment, maxShort))
	dst = appendIntKV(dst, sa.UpstreamAttempt, int64(n))
	if a.FallbackModel != "" {
		dst = appendStrKV(dst, sa.UpstreamFallbackModel, call.Clean(a.FallbackModel, maxShort))
	}
	errType := a.ErrorType
	if errType == "" {
		errType = "upstream_failed"
	}
	dst = appendStrKV(dst, sa.ErrorType, call.Clean(errType, maxShort))
	// The reason is an error's text: it may name the upstream's IP, which
	// spans never carry (see statusMessage).
	reason := scrubAddrs(call.Clean(a.Reason, maxStatus))
	if reason != "" {
		dst = appendStrKV(dst, sa.UpstreamFailureReason, reason)
	}
	if a.Status != 0 {
		dst = appendIntKV(dst, sa.HTTPResponseStatusCode, int64(a.Status))
	}
	msg := reason
	if msg == "" {
		msg = call.Clean(errType, maxStatus)
	}
	dst, st := openLen(dst, tagStatus, 1)
	dst = appendString(dst, tagStatusMessage, msg)
	dst = append(dst, tagStatusCode, statusError)
	dst = closeLen(dst, st, 1)
	dst = c.appendFlags(dst)
	return closeLen(dst, sp, 2)
}

// appendRunMarker appends m as one ExportTraceServiceRequest entry, like
// appendCall: a ResourceSpans holding one INTERNAL span named
// spanattr.RunSpanName, in a trace of its own, starting and ending at m.At.
func (e *encoder) appendRunMarker(dst []byte, m runMarker) []byte {
	ctx := spanCtx{trace: newTraceID(), span: newSpanID(), flags: uint32(trace.FlagsSampled)}
	dst, rs := openLen(dst, tagResourceSpans, 2)
	dst = append(dst, e.resource...)
	dst, ss := openLen(dst, tagRSScopeSpans, 2)
	dst = append(dst, e.scope...)
	dst, sp := openLen(dst, tagSSSpans, 2)
	dst = ctx.appendIDs(dst)
	dst = appendString(dst, tagName, sa.RunSpanName)
	dst = append(dst, tagKind, kindInternal)
	dst = appendTimes(dst, m.At, m.At)
	dst = append(dst, e.instance...)
	dst = appendStrKV(dst, sa.RunID, call.Clean(m.Run, maxShort))
	dst = appendStrKV(dst, sa.RunEvent, call.Clean(m.Event, maxShort))
	switch m.Event {
	case sa.RunStart:
		dst = appendFloatKV(dst, sa.RunCommitInterval, m.CommitInterval.Seconds())
		dst = appendIntKV(dst, sa.RunLossBound, m.LossBound)
	case sa.RunStop:
		dst = appendIntKV(dst, sa.RunLastSeq, m.LastSeq)
	}
	dst = append(dst, tagStatus, 0)
	dst = ctx.appendFlags(dst)
	dst = closeLen(dst, sp, 2)
	dst = closeLen(dst, ss, 2)
	return closeLen(dst, rs, 2)
}

// traceIDOf is the trace id (hex) of the first span of one appendCall or
// appendRunMarker output, for logs; false if encoded is not one.
func traceIDOf(encoded []byte) (string, bool) {
	rs, ok := field(encoded, tagResourceSpans)
	if !ok {
		return "", false
	}
	ss, ok := field(rs, tagRSScopeSpans)
	if !ok {
		return "", false
	}
	sp, ok := field(ss, tagSSSpans)
	if !ok {
		return "", false
	}
	id, ok := field(sp, tagTraceID)
	if !ok || len(id) != len(trace.TraceID{}) {
		return "", false
	}
	return hex.EncodeToString(id), true
}

// field is the first length-delimited field of b with the given tag.
func field(b []byte, tag protowire.Number) ([]byte, bool) {
	want := protowire.Number(tag >> 3)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		if num == want && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			return v, n >= 0
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
	}
	return nil, false
}

// traceParentView carries r.TraceParent to the W3C propagator without a
// copy: a pointer fits in the interface without allocating, and the string
// Get returns lives only during Extract, which parses it into ids and keeps
// none of it. What is left of a traceparent's cost (two allocations) is
// the context the propagator returns.
type traceParentView []byte

func (c *traceParentView) Get(key string) string {
	if key != "traceparent" || len(*c) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(*c), len(*c))
}
func (*traceParentView) Set(string, string) {}
func (*traceParentView) Keys() []string     { return []string{"traceparent"} }

// spanCtx is what a span's ids and flags are made of.
type spanCtx struct {
	trace  trace.TraceID
	span   trace.SpanID
	parent trace.SpanID // zero for a root span
	remote bool         // the parent came from the client
	flags  uint32       // W3C trace flags
	state  string       // W3C trace state
}

func (c *spanCtx) appendIDs(dst []byte) []byte {
	dst = append(dst, tagTraceID, byte(len(c.trace)))
	dst = append(dst, c.trace[:]...)
	dst = append(dst, tagSpanID, byte(len(c.span)))
	dst = append(dst, c.span[:]...)
	if c.state != "" {
		dst = appendString(dst, tagTraceState, c.state)
	}
	if c.parent.IsValid() {
		dst = append(dst, tagParentSpanID, byte(len(c.parent)))
		dst = append(dst, c.parent[:]...)
	}
	return dst
}

// appendFlags writes Span.flags as the otlptrace exporter does: the W3C
// flags, and whether the parent is remote.
func (c *spanCtx) appendFlags(dst []byte) []byte {
	f := c.flags&0xff | flagHasIsRemote
	if c.remote {
		f |= flagIsRemote
	}
	return binary.LittleEndian.AppendUint32(append(dst, tagFlags0, tagFlags1), f)
}

// newTraceID and newSpanID are random and never zero, like the SDK's ids.
// math/rand/v2's top-level source is per-thread ChaCha8 seeded from the
// system: no lock, no allocation.
func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// appendTimes writes a span's start and end as the SDK records them: a zero
// time is the moment of recording, a time before 1970 is 0.
func appendTimes(dst []byte, start, end time.Time) []byte {
	if start.IsZero() || end.IsZero() {
		now := time.Now()
		if start.IsZero() {
			start = now
		}
		if end.IsZero() {
			end = now
		}
	}
	// proto3 leaves a zero out.
	if ns := start.UnixNano(); ns > 0 {
		dst = binary.LittleEndian.AppendUint64(append(dst, tagStart), uint64(ns))
	}
	if ns := end.UnixNano(); ns > 0 {
		dst = binary.LittleEndian.AppendUint64(append(dst, tagEnd), uint64(ns))
	}
	return dst
}

// appendStatus writes an error status with r's message, or the unset
// status (present but empty, as the exporter writes it).
func appendStatus(dst []byte, r *call.Record, failed bool) []byte {
	if !failed {
		return append(dst, tagStatus, 0)
	}
	msg := statusMessage(r)
	dst, st := openLen(dst, tagStatus, 1)
	if msg != "" {
		dst = appendString(dst, tagStatusMessage, msg)
	}
	dst = append(dst, tagStatusCode, statusError)
	return closeLen(dst, st, 1)
}

// appendServerName is serverName without building the string.
func appendServerName(dst []byte, r *call.Record) []byte {
	if r.HTTPRoute == "" {
		return appendName(dst, call.Clean(r.HTTPMethod, maxShort))
	}
	return appendJoined(dst, r.HTTPMethod, r.HTTPRoute)
}

// appendClientName is clientName without building the string.
func appendClientName(dst []byte, r *call.Record) []byte {
	if r.UpstreamModel == "" {
		return appendName(dst, call.Clean(string(r.Operation), maxShort))
	}
	return appendJoined(dst, string(r.Operation), r.UpstreamModel)
}

// appendName writes a span's name; proto3 leaves an empty one out.
func appendName(dst []byte, name string) []byte {
	if name == "" {
		return dst
	}
	return appendString(dst, tagName, name)
}

// appendJoined writes the span name call.Clean(a+" "+b, maxShort), joining
// in place when nothing needs cleaning.
func appendJoined(dst []byte, a, b string) []byte {
	n := len(a) + 1 + len(b)
	if n > maxShort || !utf8.ValidString(a) || !utf8.ValidString(b) {
		return appendString(dst, tagName, call.Clean(a+" "+b, maxShort))
	}
	dst = appendVarint(append(dst, tagName), uint64(n))
	return append(append(append(dst, a...), ' '), b...)
}

// appendCallAttrs writes what both spans of a call carry (spans.go's
// appendCall), with loom.run.id after loom.instance.id.
func (e *encoder) appendCallAttrs(dst []byte, r *call.Record, run string, seq int64) []byte {
	dst = append(dst, e.instance...)
	dst = appendStrKV(dst, sa.RunID, run)
	dst = appendIntKV(dst, sa.Seq, seq)
	dst = appendStrKV(dst, sa.Outcome, call.Clean(string(r.Outcome), maxShort))
	dst = appendFloatKV(dst, sa.GatewayOverhead, r.Overhead.Seconds())
	if r.TenantID != "" {
		dst = appendStrKV(dst, sa.TenantID, call.Clean(r.TenantID, maxShort))
		dst = appendStrKV(dst, sa.APIKeyID, call.Clean(r.KeyID, maxShort))
	}
	if r.ClientDisconnected {
		dst = appendBoolKV(dst, sa.ClientDisconnected, true)
	}
	return dst
}

// appendServerAttrs writes the SERVER span's attributes in spans.go's
// appendServer order: http.* and loom.*, never gen_ai.*.
func (e *encoder) appendServerAttrs(dst []byte, r *call.Record, run string, seq int64) []byte {
	dst = e.appendCallAttrs(dst, r, run, seq)
	dst = appendStrKV(dst, sa.HTTPRequestMethod, call.Clean(r.HTTPMethod, maxShort))
	dst = appendIntKV(dst, sa.HTTPResponseStatusCode, int64(r.Status))
	dst = appendIntKV(dst, sa.HTTPResponseBodySize, r.ClientBytes)
	dst = appendStrKV(dst, sa.URLScheme, "http")
	dst = appendBoolKV(dst, sa.RequestStream, r.Stream)
	if r.ErrorType != "" {
		dst = appendStrKV(dst, sa.ErrorType, call.Clean(r.ErrorType, maxShort))
	}
	if r.HTTPRoute != "" {
		dst = appendStrKV(dst, sa.HTTPRoute, call.Clean(r.HTTPRoute, maxShort))
	}
	if r.Params.RequestBodyBytes > 0 {
		dst = appendIntKV(dst, sa.HTTPRequestBodySize, int64(r.Params.RequestBodyBytes))
	}
	if r.Model != "" {
		dst = appendStrKV(dst, sa.RequestModel, call.Clean(r.Model, maxShort))
	}
	if r.Stream {
		dst = appendIntKV(dst, sa.ChunksSent, int64(r.ChunksSent))
	}
	if len(r.Attempts) > 0 {
		n := len(r.Attempts)
		if !r.UpstreamStart.IsZero() {
			n++
		}
		dst = appendIntKV(dst, sa.UpstreamAttempts, int64(n))
	}
	return dst
}

// OpenAIAPIType is the openai.api.type of a chat call to an OpenAI or
// Azure OpenAI deployment: "responses" for the Responses API, else
// "chat_completions" (a /v1/messages call to such a deployment is
// translated to chat completions); "" for any other provider or operation.
func OpenAIAPIType(r *call.Record, provider string) string {
	if r.Operation != call.OpChat || provider != "openai" && provider != "azure.ai.openai" {
		return ""
	}
	if strings.Contains(r.HTTPRoute, "/responses") {
		return "responses"
	}
	return "chat_completions"
}

// appendClientAttrs writes the CLIENT span's attributes in spans.go's
// appendClient order.
func (e *encoder) appendClientAttrs(dst []byte, r *call.Record, run string, seq int64) []byte {
	dst = e.appendCallAttrs(dst, r, run, seq)
	dst = appendStrKV(dst, sa.GenAIOperationName, call.Clean(string(r.Operation), maxShort))
	dst = appendStrKV(dst, sa.GenAIProviderName, call.Clean(r.Provider, maxShort))
	if api := OpenAIAPIType(r, r.Provider); api != "" {
		dst = appendStrKV(dst, sa.OpenAIAPIType, api)
	}
	dst = appendStrKV(dst, sa.GenAIRequestModel, call.Clean(r.UpstreamModel, maxShort))
	dst = appendBoolKV(dst, sa.GenAIRequestStream, r.Stream)
	dst = appendStrKV(dst, sa.ServerAddress, call.Clean(r.ServerAddress, maxShort))
	dst = appendIntKV(dst, sa.ServerPort, int64(r.ServerPort))
	dst = appendStrKV(dst, sa.Deployment, call.Clean(r.Deployment, maxShort))
	dst = appendIntKV(dst, sa.UpstreamAttempt, int64(r.Attempt()))
	if r.FallbackModel != "" {
		dst = appendStrKV(dst, sa.UpstreamFallbackModel, call.Clean(r.FallbackModel, maxShort))
	}
	dst = appendIntKV(dst, sa.UpstreamBytes, r.UpstreamBytes)
	dst = appendIntKV(dst, sa.ClientBytes, r.ClientBytes)
	// error.type on a CLIENT span means the upstream call failed.
	if r.ErrorType != "" && upstreamFailed(r) {
		dst = appendStrKV(dst, sa.ErrorType, call.Clean(r.ErrorType, maxShort))
	}
	p := &r.Params
	if p.Temperature != nil {
		dst = appendFloatKV(dst, sa.GenAIRequestTemperature, *p.Temperature)
	}
	if p.TopP != nil {
		dst = appendFloatKV(dst, sa.GenAIRequestTopP, *p.TopP)
	}
	if p.MaxTokens != nil {
		dst = appendIntKV(dst, sa.GenAIRequestMaxTokens, *p.MaxTokens)
	}
	if p.N != nil {
		dst = appendIntKV(dst, sa.GenAIRequestChoiceCount, *p.N)
	}
	if p.Seed != nil {
		dst = appendIntKV(dst, sa.GenAIRequestSeed, *p.Seed)
	}
	if p.EncodingFormat != "" {
		one := [1]string{call.Clean(p.EncodingFormat, maxShort)}
		dst = appendStrsKV(dst, sa.GenAIRequestEncodingFormats, one[:])
	}
	if r.UpstreamStatus != 0 {
		dst = appendIntKV(dst, sa.HTTPResponseStatusCode, int64(r.UpstreamStatus))
	}
	if len(r.ResponseID) > 0 {
		dst = appendBytesKV(dst, sa.GenAIResponseID, r.ResponseID)
	}
	if len(r.ResponseModel) > 0 {
		dst = appendBytesKV(dst, sa.GenAIResponseModel, r.ResponseModel)
	}
	if len(r.FinishReasons) > 0 {
		dst = appendStrsKV(dst, sa.GenAIResponseFinishReasons, cleanSlice(r.FinishReasons, maxReason))
	}
	if r.UsageSource != call.UsageNone {
		u := &r.Usage
		dst = appendIntKV(dst, sa.GenAIUsageInputTokens, u.InputTokens)
		dst = appendIntKV(dst, sa.GenAIUsageOutputTokens, u.OutputTokens)
		dst = appendIntKV(dst, sa.UsageTotalTokens, u.TotalTokens)
		dst = appendStrKV(dst, sa.UsageSource, call.Clean(string(r.UsageSource), maxShort))
		if u.HasCached {
			dst = appendIntKV(dst, sa.GenAIUsageCacheReadInputTokens, u.CachedInputTokens)
		}
		if u.HasCacheCreation {
			dst = appendIntKV(dst, sa.GenAIUsageCacheCreationInputTokens, u.CacheCreationInputTokens)
		}
		if u.HasReasoning {
			dst = appendIntKV(dst, sa.GenAIUsageReasoningOutputTokens, u.ReasoningTokens)
		}
		// A cost only with its price entry: none known is no attribute,
		// never 0.
		if r.PriceID != "" {
			dst = appendFloatKV(dst, sa.Cost, price.Amount(r.Cost).Float64())
			dst = appendStrKV(dst, sa.CostCurrency, call.Clean(r.CostCurrency, maxShort))
			dst = appendStrKV(dst, sa.CostPriceID, call.Clean(r.PriceID, maxShort))
		}
	}
	if r.Stream {
		dst = appendIntKV(dst, sa.Chunks, int64(r.Chunks))
		dst = appendIntKV(dst, sa.ChunksSent, int64(r.ChunksSent))
		if ttfc := r.TimeToFirstChunk(); ttfc > 0 {
			dst = appendFloatKV(dst, sa.GenAIResponseTimeToFirstChunk, ttfc.Seconds())
		}
		if r.UsageRequested {
			dst = appendBoolKV(dst, sa.UsageInjected, true)
		}
	}
	if r.Drained {
		dst = appendBoolKV(dst, sa.Drained, true)
		dst = appendBoolKV(dst, sa.DrainComplete, r.DrainComplete)
	}
	if r.Content.Capture {
		// Only for tenants that opted in: content.go builds the attributes
		// (and may allocate), they are written here.
		for _, kv := range appendContent(nil, r) {
			dst = appendAttr(dst, tagSpanAttr, kv)
		}
	}
	return dst
}

// openLen starts a length-delimited field: its tag and reserve bytes for
// the length, which closeLen fills in. reserve is a guess of the length's
// varint size (1 below 128 bytes, 2 below 16 KiB): a right guess costs
// nothing, a wrong one one move of the content.
func openLen(dst []byte, tag byte, reserve int) ([]byte, int) {
	dst = append(dst, tag)
	for range reserve {
		dst = append(dst, 0)
	}
	return dst, len(dst)
}

// closeLen writes the length of the field opened at start (whose reserve
// must be the one given to openLen) as a minimal varint, moving the content
// when the reservation was not its size.
func closeLen(dst []byte, start, reserve int) []byte {
	n := len(dst) - start
	w := sizeVarint(uint64(n))
	if w > reserve {
		for range w - reserve {
			dst = append(dst, 0)
		}
	}
	if w != reserve {
		copy(dst[start-reserve+w:], dst[start:start+n])
	}
	protowire.AppendVarint(dst[:start-reserve], uint64(n))
	return dst[:start-reserve+w+n]
}

// appendVarint is protowire.AppendVarint with the one-byte case inlined:
// nearly every length and number in a span is below 128.
func appendVarint(dst []byte, v uint64) []byte {
	if v < 0x80 {
		return append(dst, byte(v))
	}
	return protowire.AppendVarint(dst, v)
}

// sizeVarint and sizeBytes are protowire's, with the one-byte case inlined.
func sizeVarint(v uint64) int {
	if v < 0x80 {
		return 1
	}
	return protowire.SizeVarint(v)
}

func sizeBytes(n int) int {
	if n < 0x80 {
		return 1 + n
	}
	return protowire.SizeBytes(n)
}

func appendString(dst []byte, tag byte, s string) []byte {
	dst = appendVarint(append(dst, tag), uint64(len(s)))
	return append(dst, s...)
}

// kvHead writes a span attribute's tag, length and key, and the value's
// tag and length: the value (of valueLen bytes) follows.
func kvHead(dst []byte, tag byte, key string, valueLen int) []byte {
	kvLen := 1 + sizeBytes(len(key)) + 1 + sizeBytes(valueLen)
	dst = appendVarint(append(dst, tag), uint64(kvLen))
	dst = appendString(dst, tagKVKey, key)
	return appendVarint(append(dst, tagKVValue), uint64(valueLen))
}

// appendStrKV writes a string attribute; v must be valid UTF-8.
func appendStrKV(dst []byte, key, v string) []byte {
	dst = kvHead(dst, tagSpanAttr, key, 1+sizeBytes(len(v)))
	return appendString(dst, tagAnyString, v)
}

// appendBytesKV writes b as a string attribute cleaned to maxShort, without
// a copy when b is valid and short.
func appendBytesKV(dst []byte, key string, b []byte) []byte {
	if len(b) > maxShort || !utf8.Valid(b) {
		return appendStrKV(dst, key, call.CleanBytes(b, maxShort))
	}
	dst = kvHead(dst, tagSpanAttr, key, 1+sizeBytes(len(b)))
	dst = appendVarint(append(dst, tagAnyString), uint64(len(b)))
	return append(dst, b...)
}

func appendIntKV(dst []byte, key string, v int64) []byte {
	dst = kvHead(dst, tagSpanAttr, key, 1+sizeVarint(uint64(v)))
	return appendVarint(append(dst, tagAnyInt), uint64(v))
}

func appendFloatKV(dst []byte, key string, v float64) []byte {
	dst = kvHead(dst, tagSpanAttr, key, 1+8)
	return binary.LittleEndian.AppendUint64(append(dst, tagAnyDouble), math.Float64bits(v))
}

func appendBoolKV(dst []byte, key string, v bool) []byte {
	dst = kvHead(dst, tagSpanAttr, key, 2)
	b := byte(0)
	if v {
		b = 1
	}
	return append(dst, tagAnyBool, b)
}

// appendStrsKV writes a string array attribute; every string must be valid
// UTF-8.
func appendStrsKV(dst []byte, key string, vs []string) []byte {
	arr := 0
	for _, v := range vs {
		arr += 1 + sizeBytes(1+sizeBytes(len(v)))
	}
	dst = kvHead(dst, tagSpanAttr, key, 1+sizeBytes(arr))
	dst = appendVarint(append(dst, tagAnyArray), uint64(arr))
	for _, v := range vs {
		dst = appendVarint(append(dst, tagArrayVals), uint64(1+sizeBytes(len(v))))
		dst = appendString(dst, tagAnyString, v)
	}
	return dst
}

// appendAttr writes an SDK attribute (the resource's, captured content's)
// as field tag, as the otlptrace exporter converts it. Strings are made
// valid UTF-8 (not capped: their producers cap them).
func appendAttr(dst []byte, tag byte, kv attribute.KeyValue) []byte {
	dst, kvStart := openLen(dst, tag, 1)
	dst = appendString(dst, tagKVKey, validUTF8(string(kv.Key)))
	dst, vStart := openLen(dst, tagKVValue, 1)
	dst = appendAnyValue(dst, kv.Value)
	dst = closeLen(dst, vStart, 1)
	return closeLen(dst, kvStart, 1)
}

// appendAnyValue writes the fields of v's AnyValue.
func appendAnyValue(dst []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		b := byte(0)
		if v.AsBool() {
			b = 1
		}
		return append(dst, tagAnyBool, b)
	case attribute.INT64:
		return appendVarint(append(dst, tagAnyInt), uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return binary.LittleEndian.AppendUint64(append(dst, tagAnyDouble), math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		return appendString(dst, tagAnyString, validUTF8(v.AsString()))
	}
	var elems []attribute.Value
	switch v.Type() {
	case attribute.BOOLSLICE:
		for _, e := range v.AsBoolSlice() {
			elems = append(elems, attribute.BoolValue(e))
		}
	case attribute.INT64SLICE:
		for _, e := range v.AsInt64Slice() {
			elems = append(elems, attribute.Int64Value(e))
		}
	case attribute.FLOAT64SLICE:
		for _, e := range v.AsFloat64Slice() {
			elems = append(elems, attribute.Float64Value(e))
		}
	case attribute.STRINGSLICE:
		for _, e := range v.AsStringSlice() {
			elems = append(elems, attribute.StringValue(e))
		}
	default:
		return dst // the exporter writes an empty AnyValue too
	}
	dst, arr := openLen(dst, tagAnyArray, 1)
	for _, e := range elems {
		var at int
		dst, at = openLen(dst, tagArrayVals, 1)
		dst = appendAnyValue(dst, e)
		dst = closeLen(dst, at, 1)
	}
	return closeLen(dst, arr, 1)
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
