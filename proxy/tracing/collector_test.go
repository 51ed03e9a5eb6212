package tracing

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/loom-gateway/loom/proxy/config"
)

// fakeCollector is an otlptrace.Client that does what the production gRPC
// client and a collector do with a batch: it encodes the exporter's
// []*tracepb.ResourceSpans as an OTLP request with proto.Marshal (which
// refuses a string that is not UTF-8, as grpc's codec does) and refuses a
// request over limit bytes, as a collector's receiver does. Both answers are
// the status errors the real ones give. Behind otlptrace.New it exercises
// the production conversion from SDK spans.
type fakeCollector struct {
	limit   int  // 0: no limit
	discard bool // count requests but keep nothing (fuzzing runs long)

	mu        sync.Mutex
	spans     []*tracepb.Span
	sizes     []int // encoded size of each accepted request
	marshal   []error
	oversized int
}

func (c *fakeCollector) Start(context.Context) error { return nil }
func (c *fakeCollector) Stop(context.Context) error  { return nil }

func (c *fakeCollector) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.marshal = append(c.marshal, err)
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	if c.limit > 0 && len(b) > c.limit {
		c.oversized++
		return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", len(b), c.limit)
	}
	if c.discard {
		return nil
	}
	c.sizes = append(c.sizes, len(b))
	for _, r := range rs {
		for _, ss := range r.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	return nil
}

// accepted returns the spans taken so far, by name.
func (c *fakeCollector) accepted() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...)
}

func (c *fakeCollector) marshalErrors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.marshal...)
}

// newCollectorTracer is a tracer exporting through the real OTLP exporter
// into c.
func newCollectorTracer(t testing.TB, c *fakeCollector, cfgs ...func(*config.Tracing)) *Tracer {
	t.Helper()
	exp, err := otlptrace.New(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	for _, f := range cfgs {
		f(&cfg)
	}
	tr, err := New(context.Background(), cfg, Options{ServiceVersion: "test", Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
