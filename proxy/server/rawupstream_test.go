package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// rawUpstream is an upstream scripted at the TCP level, for what a
// well-behaved HTTP server cannot do: fall silent mid-body, trickle, close a
// kept-alive connection, reset. It records every request it read.
type rawUpstream struct {
	ln net.Listener

	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
}

// rawHandler answers one request on conn; it returns false to close the
// connection afterwards. n counts the requests the upstream has read, from 1.
type rawHandler func(conn net.Conn, req *http.Request, n int) (keep bool)

func startRawUpstream(t *testing.T, h rawHandler) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer conn.Close()
				// A handler that falls silent blocks on the test's end, not forever.
				stop := context.AfterFunc(t.Context(), func() { _ = conn.Close() })
				defer stop()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(req.Body)
					u.mu.Lock()
					u.requests = append(u.requests, req)
					u.bodies = append(u.bodies, string(body))
					n := len(u.requests)
					u.mu.Unlock()
					if !h(conn, req, n) {
						return
					}
				}
			}()
		}
	}()
	return u
}

func (u *rawUpstream) url() string { return "http://" + u.ln.Addr().String() + "/v1" }

func (u *rawUpstream) seen() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.requests...)
}

// holdUntilClosed keeps conn open and silent until Loom closes it (or the
// test ends): an upstream that has stopped sending but not hung up.
func holdUntilClosed(conn net.Conn) {
	_, _ = io.Copy(io.Discard, conn)
}

// startRawStack runs Loom in front of upstreamURL with one deployment
// ("raw", more entries of its flow map in deployment) and tenant acme
// (key keyA) whose model "m" it serves. timeouts overrides entries of the
// timeouts map.
func startRawStack(t *testing.T, upstreamURL, deployment, timeouts string) *stack {
	t.Helper()
	keyA, hashA, _ := tenant.NewKey()
	if timeouts == "" {
		timeouts = "connect: 1s, first_byte: 10s, stream_idle: 10s"
	}
	yaml := fmt.Sprintf(`
listen: 127.0.0.1:0
timeouts: {drain: 1s, shutdown: 2s, %s}
deployments:
  - {name: raw, provider: openai, base_url: %s, api_key: %s%s}
tenants:
  - id: acme
    keys: [{id: acme-key-1, sha256: %s}]
    models: [{name: m, deployment: raw}]
`, timeouts, upstreamURL, upstreamSecret, prefixed(deployment), hashA)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{t: t, cfg: cfg, keyA: keyA, notify: make(chan struct{}, 1)}
	st.serve(server.Options{Sink: call.SinkFunc(st.record)})
	return st
}

// A whole chat answer, as a kept-alive response.
const rawAnswer = `{"id":"chatcmpl-raw","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

func writeAnswer(conn net.Conn, extraHeaders string) {
	fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s",
		extraHeaders, len(rawAnswer), rawAnswer)
}
