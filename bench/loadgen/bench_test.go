package loadgen

import (
	"bufio"
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkHTTPCall is the client's cost per call on loopback, the part of the generator's CPU that
// is not pacing.
func BenchmarkHTTPCall(b *testing.B) {
	for _, stream := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "stream"}[stream]
		b.Run(name, func(b *testing.B) {
			addr, _ := serveB(b, func(ctx *fasthttp.RequestCtx) {
				if !stream {
					_, _ = ctx.WriteString(`{"choices":[]}`)
					return
				}
				ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
					_, _ = w.WriteString("data: {}\n\n")
					_ = w.Flush()
					_, _ = w.WriteString("data: [DONE]\n\n")
				})
			})
			call := NewHTTPCall(Target{Addr: addr, Path: "/v1/chat/completions", Body: []byte(`{"model":"m"}`),
				Stream: stream, OverheadHeader: "X-Loom-Overhead-Ms"}, 1)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := call(ctx, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRecord(b *testing.B) {
	var r recorder
	now := time.Now()
	s := Sample{TTFC: time.Millisecond, Overhead: 300 * time.Microsecond, Service: 2 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		r.record(now, now.Add(time.Microsecond), now.Add(3*time.Millisecond), s, nil, false)
	}
}
