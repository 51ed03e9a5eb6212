// Package tracingtest is an in-memory OTLP collector for tests: plug its
// Send into tracing.Options and read back what Loom exported as the OTel
// SDK's span stubs, decoded from the very bytes that would have gone to a
// real collector.
package tracingtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/loom-gateway/loom/proxy/spanattr"
)

// Collector keeps every span it was sent. Its zero value is ready.
type Collector struct {
	// Answer, when set, is called for each request before it is kept: a
	// non-nil error refuses the request (nothing is kept).
	Answer func(req *coltracepb.ExportTraceServiceRequest) error

	mu       sync.Mutex
	requests int
	spans    tracetest.SpanStubs
	raw      []*tracepb.Span
}

// Send decodes req with the official OTLP types, as a collector would: a
// request that does not decode is an error.
func (c *Collector) Send(_ context.Context, req []byte) (int64, error) {
	var r coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(req, &r); err != nil {
		return 0, fmt.Errorf("tracingtest: request does not decode: %w", err)
	}
	if c.Answer != nil {
		if err := c.Answer(&r); err != nil {
			return 0, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	for _, rs := range r.ResourceSpans {
		res := resource.NewSchemaless(Attributes(rs.GetResource().GetAttributes())...)
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.raw = append(c.raw, s)
				c.spans = append(c.spans, Stub(s, res, ss.GetScope().GetName()))
			}
		}
	}
	return 0, nil
}

// Spans returns the spans received so far, in order.
func (c *Collector) Spans() tracetest.SpanStubs {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append(tracetest.SpanStubs(nil), c.spans...)
}

// GetSpans returns the calls' spans received so far, in order: Spans
// without the run markers (named as the SDK's in-memory exporter's method,
// so tests read alike).
func (c *Collector) GetSpans() tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range c.Spans() {
		if s.Name != spanattr.RunSpanName {
			out = append(out, s)
		}
	}
	return out
}

// Markers returns the run markers received so far.
func (c *Collector) Markers() tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range c.Spans() {
		if s.Name == spanattr.RunSpanName {
			out = append(out, s)
		}
	}
	return out
}

// Raw returns the spans received so far as the OTLP types decoded them.
func (c *Collector) Raw() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.raw...)
}

// Requests is the number of export requests received.
func (c *Collector) Requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

// Reset forgets what was received.
func (c *Collector) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spans, c.raw, c.requests = nil, nil, 0
}

// Stub converts one decoded span to the SDK's stub.
func Stub(s *tracepb.Span, res *resource.Resource, scope string) tracetest.SpanStub {
	var tid trace.TraceID
	var sid, pid trace.SpanID
	copy(tid[:], s.TraceId)
	copy(sid[:], s.SpanId)
	copy(pid[:], s.ParentSpanId)
	stub := tracetest.SpanStub{
		Name:                 s.Name,
		SpanContext:          trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(s.Flags & 0xff)}),
		SpanKind:             kind(s.Kind),
		StartTime:            time.Unix(0, int64(s.StartTimeUnixNano)),
		EndTime:              time.Unix(0, int64(s.EndTimeUnixNano)),
		Attributes:           Attributes(s.Attributes),
		Resource:             res,
		InstrumentationScope: instrumentation.Scope{Name: scope},
	}
	if len(s.ParentSpanId) == 8 {
		// The flags say whether the parent is remote (OTLP 1.x bits 8 and 9).
		remote := s.Flags&0x300 == 0x300
		stub.Parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: pid, Remote: remote})
	}
	switch s.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_ERROR:
		stub.Status.Code = codes.Error
	case tracepb.Status_STATUS_CODE_OK:
		stub.Status.Code = codes.Ok
	}
	stub.Status.Description = s.GetStatus().GetMessage()
	for _, e := range s.Events {
		stub.Events = append(stub.Events, sdkEvent(e))
	}
	return stub
}

func kind(k tracepb.Span_SpanKind) trace.SpanKind {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return trace.SpanKindServer
	case tracepb.Span_SPAN_KIND_CLIENT:
		return trace.SpanKindClient
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return trace.SpanKindProducer
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return trace.SpanKindConsumer
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return trace.SpanKindInternal
	}
	return trace.SpanKindUnspecified
}

// Attributes converts OTLP attributes to the SDK's, keeping their types.
func Attributes(kvs []*commonpb.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, attr(kv.Key, kv.Value))
	}
	return out
}

func attr(k string, v *commonpb.AnyValue) attribute.KeyValue {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return attribute.String(k, x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return attribute.Bool(k, x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return attribute.Int64(k, x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return attribute.Float64(k, x.DoubleValue)
	case *commonpb.AnyValue_ArrayValue:
		vals := x.ArrayValue.GetValues()
		if len(vals) == 0 {
			return attribute.StringSlice(k, nil)
		}
		switch vals[0].GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			s := make([]string, len(vals))
			for i, e := range vals {
				s[i] = e.GetStringValue()
			}
			return attribute.StringSlice(k, s)
		case *commonpb.AnyValue_IntValue:
			s := make([]int64, len(vals))
			for i, e := range vals {
				s[i] = e.GetIntValue()
			}
			return attribute.Int64Slice(k, s)
		case *commonpb.AnyValue_DoubleValue:
			s := make([]float64, len(vals))
			for i, e := range vals {
				s[i] = e.GetDoubleValue()
			}
			return attribute.Float64Slice(k, s)
		case *commonpb.AnyValue_BoolValue:
			s := make([]bool, len(vals))
			for i, e := range vals {
				s[i] = e.GetBoolValue()
			}
			return attribute.BoolSlice(k, s)
		}
	case *commonpb.AnyValue_BytesValue:
		return attribute.String(k, string(x.BytesValue))
	}
	return attribute.String(k, fmt.Sprintf("<unsupported %T>", v.GetValue()))
}

func sdkEvent(e *tracepb.Span_Event) sdktrace.Event {
	return sdktrace.Event{Name: e.Name, Time: time.Unix(0, int64(e.TimeUnixNano)), Attributes: Attributes(e.Attributes)}
}
