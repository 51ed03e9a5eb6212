package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

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
