package server_test

import (
	"bufio"
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// BenchmarkTimeToFirstEvent is what a streaming client waits for its
// first event through Loom (ns/op), beside straight to the mock: the
// stream's head and first event are held until the upstream sent that
// event (routing's "nothing reached the client" line), which must cost
// nothing on the happy path.
func BenchmarkTimeToFirstEvent(b *testing.B) {
	mockLn, loomLn, _, key := inMemoryGateway(b)
	for _, tg := range []struct {
		name string
		ln   *fasthttputil.InmemoryListener
		key  string
	}{{"direct", mockLn, upstreamSecret}, {"via-loom", loomLn, key}} {
		b.Run(tg.name, func(b *testing.B) {
			ln := tg.ln
			client := &fasthttp.HostClient{Addr: "bench.local", StreamResponseBody: true,
				Dial: func(string) (net.Conn, error) { return ln.Dial() }}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://bench.local/v1/chat/completions")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.Header.Set("Authorization", "Bearer "+tg.key)
			req.Header.Set("x-mock-chunks", "2")
			req.SetBodyString(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi."}],"stream":true}`)
			var waited time.Duration
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("%v %d", err, resp.StatusCode())
				}
				r := bufio.NewReader(resp.BodyStream())
				for {
					line, err := r.ReadSlice('\n')
					if err != nil {
						b.Fatal(err)
					}
					if bytes.HasPrefix(line, []byte("data: {")) {
						break
					}
				}
				waited += time.Since(start)
				_ = resp.CloseBodyStream() // the rest of the stream is not timed
			}
			b.ReportMetric(float64(waited.Nanoseconds())/float64(b.N), "ns-to-first-event")
		})
	}
}
