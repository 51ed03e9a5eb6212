package tracing

import (
	"encoding/hex"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// FuzzEncode feeds records with random bytes in every string and byte
// field, and random numbers, to the encoder: whatever the record, its
// output must decode with the official OTLP types (which refuse a string
// that is not UTF-8), hold spanCount spans, be canonical, name its trace to
// traceIDOf, and stay one ResourceSpans per call when outputs are
// concatenated, run markers included. Seeds: addFuzzSeeds and
// testdata/fuzz/FuzzEncode.
func FuzzEncode(f *testing.F) {
	addFuzzSeeds(f)
	e := newEncoder("v\xff1", "inst-\xfe")
	var buf []byte
	f.Fuzz(func(t *testing.T, method, route, model, upstreamModel, tenant, provider, reason string,
		id, request, response []byte, errMsg string, n int64, x float64, flags uint16) {
		r := fuzzedRecord(method, route, model, upstreamModel, tenant, provider, reason, id, request, response, errMsg, n, x, flags)
		buf = e.appendCall(buf[:0], r, callIDs{Seq: n, Run: tenant})
		one := len(buf)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(buf, &req); err != nil {
			t.Fatalf("encoding does not decode: %v", err)
		}
		if len(req.ResourceSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans) != 1 ||
			len(req.ResourceSpans[0].ScopeSpans[0].Spans) != spanCount(r) {
			t.Fatalf("want one ResourceSpans with %d spans: %v", spanCount(r), &req)
		}
		if size := proto.Size(&req); size != one {
			t.Fatalf("%d bytes, canonical %d", one, size)
		}
		if tid, ok := traceIDOf(buf); !ok || tid != hex.EncodeToString(req.ResourceSpans[0].ScopeSpans[0].Spans[0].TraceId) {
			t.Fatalf("traceIDOf = %q, %v", tid, ok)
		}
		buf = e.appendCall(buf, r, callIDs{Seq: n + 1, Run: errMsg})
		buf = e.appendRunMarker(buf, runMarker{Event: sa.RunStart, Run: reason, At: time.Unix(0, n), CommitInterval: time.Duration(n), LossBound: n})
		buf = e.appendRunMarker(buf, runMarker{Event: reason, Run: method, At: time.Unix(n, 0), LastSeq: n})
		req.Reset()
		if err := proto.Unmarshal(buf, &req); err != nil {
			t.Fatalf("concatenated encodings do not decode: %v", err)
		}
		if len(req.ResourceSpans) != 4 {
			t.Fatalf("%d ResourceSpans, want 4 (two calls, two markers)", len(req.ResourceSpans))
		}
	})
}
