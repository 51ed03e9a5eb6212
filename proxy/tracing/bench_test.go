package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
)

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkRecord is what tracing costs per call on the request's own
// goroutine: two SDK spans built from a record and queued.
func BenchmarkRecord(b *testing.B) {
	for _, bc := range []struct {
		name string
		rec  func() *call.Record
	}{
		{"streamed-chat", streamedChat},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr, err := New(context.Background(), config.DefaultTracing, Options{Exporter: discard{}})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			r := bc.rec()
			b.ReportAllocs()
			for b.Loop() {
				tr.Record(r)
			}
		})
	}
}

// The SDK allocates per span (the span, its attribute copy, the snapshot,
// a dedupe map); Loom's own part must stay a handful. Pinned so that a
// change that adds per-call garbage is noticed.
func TestRecord_AllocationBudget(t *testing.T) {
	tr, err := New(context.Background(), config.DefaultTracing, Options{Exporter: discard{}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	r := streamedChat()
	if n := testing.AllocsPerRun(200, func() { tr.Record(r) }); n > 36 {
		t.Fatalf("Record allocates %.0f times per call, budget 36", n)
	}
}

// BenchmarkSanitize is what the hostile-input defences add per call:
// building both spans' attributes with every string checked (valid and
// short: the fast path, no copy), and the queue's size estimate of a span.
func BenchmarkSanitize(b *testing.B) {
	r := streamedChat()
	a := make([]attribute.KeyValue, 0, 64)
	b.Run("attributes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a = appendServer(a[:0], r, 1, "inst-1")
			a = appendClient(a[:0], r, 1, "inst-1")
		}
	})
	b.Run("span-size", func(b *testing.B) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		_, s := tp.Tracer("t").Start(context.Background(), clientName(r), trace.WithAttributes(appendClient(nil, r, 1, "inst-1")...))
		s.End()
		span := rec.Ended()[0]
		b.ReportAllocs()
		for b.Loop() {
			_ = spanSize(span)
		}
	})
}
