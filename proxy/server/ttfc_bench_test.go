package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// BenchmarkTimeToFirstEvent is what a streaming client waits for its
// first event through Loom (ns/op), beside straight to the mock: the
// stream's head and first event are held until the upstream sent that
// event (routing's "nothing reached the client" line), which must cost
// nothing on the happy path.
func BenchmarkTimeToFirstEvent(b *testing.B) {
	mockLn := fasthttputil.NewInmemoryListener()
	mock := mockupstream.New(mockupstream.Config{APIKey: upstreamSecret, LogLimit: 16})
	go func() { _ = mock.Serve(mockLn) }()
	defer mockLn.Close()
	key, hash, _ := tenant.NewKey()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
deployments:
  - {name: mock, provider: openai, base_url: "http://mock.local/v1", api_key: %s, forward_headers: ["x-mock-*"]}
tenants:
  - id: bench
    keys: [{id: bench-key, sha256: %s}]
    models: [{name: gpt-4o-mini, deployment: mock}]
`, upstreamSecret, hash)))
	if err != nil {
		b.Fatal(err)
	}
	loom, err := server.New(cfg, server.Options{Dial: func(string, time.Duration) (net.Conn, error) { return mockLn.Dial() }})
	if err != nil {
		b.Fatal(err)
	}
	loomLn := fasthttputil.NewInmemoryListener()
	go func() { _ = loom.Serve(loomLn) }()
	defer loomLn.Close()
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
