package tracing

import (
	"context"
	"errors"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/loom-gateway/loom/proxy/config"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// fakeCollector does with a request what a collector's OTLP receiver does:
// it decodes it with the official types (which refuse a string that is not
// UTF-8, as the receiver's codec does) and refuses one over limit bytes.
// Both refusals come back as the refusals the real sender reports.
type fakeCollector struct {
	limit   int  // 0: no limit
	discard bool // count requests but keep nothing (fuzzing runs long)

	mu        sync.Mutex
	spans     []*tracepb.Span
	sizes     []int // size of each accepted request
	decode    []error
	oversized int
}

func (c *fakeCollector) Send(_ context.Context, req []byte) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit > 0 && len(req) > c.limit {
		c.oversized++
		return 0, &refusal{"gRPC ResourceExhausted: grpc: received message larger than max"}
	}
	var r coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(req, &r); err != nil {
		c.decode = append(c.decode, err)
		return 0, &refusal{"gRPC Internal: grpc: error unmarshalling request: " + err.Error()}
	}
	if c.discard {
		return 0, nil
	}
	c.sizes = append(c.sizes, len(req))
	for _, rs := range r.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	return 0, nil
}

// accepted returns the calls' spans taken so far (run markers aside).
func (c *fakeCollector) accepted() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range c.spans {
		if s.Name != sa.RunSpanName {
			out = append(out, s)
		}
	}
	return out
}

func (c *fakeCollector) decodeErrors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.decode...)
}

// newCollectorTracer is a tracer with a spool of its own shipping into c.
func newCollectorTracer(t testing.TB, c *fakeCollector, cfgs ...func(*config.Tracing)) *Tracer {
	t.Helper()
	cfg := testConfig()
	cfg.Spool.Dir = t.TempDir()
	for _, f := range cfgs {
		f(&cfg)
	}
	tr, err := New(context.Background(), cfg, Options{ServiceVersion: "test", Send: c.Send})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

var errUnavailable = errors.New("collector unavailable")
