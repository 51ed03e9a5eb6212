package mockupstream

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// BenchmarkMock measures the mock's own cost per request, which must stay far below the gateway overhead
// that benchmarks built on it try to resolve.
func BenchmarkMock(b *testing.B) {
	cases := []struct {
		name, path, body string
		headers          []string
	}{
		{name: "chat", path: "/v1/chat/completions", body: chatBody},
		{name: "chat-stream-5", path: "/v1/chat/completions",
			body: `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`},
		{name: "embeddings", path: "/v1/embeddings", body: `{"model":"e","input":"hello world"}`},
		{name: "messages-stream-5", path: "/v1/messages", headers: anthropicHeaders(),
			body: `{"model":"c","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{name: "responses-stream-5", path: "/v1/responses", body: `{"model":"m","input":"hi","stream":true,"store":false}`},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			srv := New(Config{LogLimit: 100})
			ln := fasthttputil.NewInmemoryListener()
			go func() { _ = srv.Serve(ln) }()
			defer ln.Close()
			client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.SetRequestURI("http://mock" + bc.path)
			req.SetBodyString(bc.body)
			for i := 0; i+1 < len(bc.headers); i += 2 {
				req.Header.Set(bc.headers[i], bc.headers[i+1])
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("%v %d", err, resp.StatusCode())
				}
			}
		})
	}
}
