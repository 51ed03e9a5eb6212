package postgresexporter

import (
	"encoding/binary"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/ledger"
)

const benchBatch = 1000

// benchTraces is benchBatch call spans (callTraces' CLIENT and SERVER
// spans, alternating) of one resource.
func benchTraces(start time.Time) ptrace.Traces {
	td, spans := newTraces()
	call := callTraces(start).ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := range benchBatch {
		call.At(i % 2).CopyTo(spans.AppendEmpty())
	}
	return td
}

// renumber gives every span new ids, so each push inserts rather than
// skips duplicates.
func renumber(td ptrace.Traces, n *uint64) {
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for _, s := range spans.All() {
		*n++
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		binary.BigEndian.PutUint64(tid[8:], *n)
		binary.BigEndian.PutUint64(sid[:], *n)
		s.SetTraceID(tid)
		s.SetSpanID(sid)
	}
}

func BenchmarkPush(b *testing.B) {
	b.Run("convert", func(b *testing.B) {
		e, err := newExporter(testConfig("postgres://localhost/x"), nopSettings())
		if err != nil {
			b.Fatal(err)
		}
		td, now := benchTraces(time.Now()), time.Now()
		b.ReportAllocs()
		for b.Loop() {
			rows, _ := e.convert(td, now)
			_ = insertSpans.args(rows)
		}
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "rows/s")
	})
	// The ledger's share of a push's CPU: the entries of a batch's CLIENT
	// spans, each encoded and hashed (the database work is in "postgres").
	b.Run("ledger", func(b *testing.B) {
		e, err := newExporter(testConfig("postgres://localhost/x"), nopSettings())
		if err != nil {
			b.Fatal(err)
		}
		rows, _ := e.convert(benchTraces(time.Now()), time.Now())
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			prev := ledger.ZeroHash
			for i, en := range e.ledgerEntries(rows) {
				en.Index = int64(i + 1)
				buf = en.AppendCanonical(buf[:0])
				prev = ledger.Hash(prev, buf)
			}
		}
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("postgres", func(b *testing.B) {
		url := pgtest.Database(b, pgtest.Start(b))
		e, err := newExporter(testConfig(url), nopSettings())
		if err != nil {
			b.Fatal(err)
		}
		if err := e.start(b.Context(), componenttest.NewNopHost()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = e.shutdown(b.Context()) })
		td := benchTraces(time.Now())
		var n uint64
		b.ReportAllocs()
		for b.Loop() {
			renumber(td, &n)
			if err := e.push(b.Context(), td); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "rows/s")
	})
}
