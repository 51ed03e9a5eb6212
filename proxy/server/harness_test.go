package server_test

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/limit"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenant"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// fixtures is the in-repo copy of ../shared/fixtures/wire.
var fixtures = filepath.Join("..", "..", "bench", "fixtures", "wire")

// upstreamSecret is the deployments' credential: it must reach the mock and
// never a client.
const upstreamSecret = "sk-upstream-SECRET-do-not-leak"

type stack struct {
	t      testing.TB
	mock   *mockupstream.Server
	loom   *server.Server
	cfg    *config.Config
	url    string // http://127.0.0.1:port, Loom
	keyA   string // tenant acme
	keyB   string // tenant globex
	client *http.Client

	mu      sync.Mutex
	records []*call.Record
	notify  chan struct{}
}

type stackOptions struct {
	drain       time.Duration
	firstByte   time.Duration
	maxBody     int
	upstreamURL string    // overrides the mock's address for the openai deployment
	sink        call.Sink // gets every record too (a tracer)
	contentMax  int       // >0: tenant acme captures content, this many bytes
	acmeLimits  string    // YAML flow map of tenant acme's limits
	keyLimits   string    // YAML flow map of acme-key-1's limits
	acmeBudgets string    // YAML flow list of tenant acme's budgets
	limiter     *limit.Limiter
	// defaultOutput sets default_output_tokens (0: the default).
	defaultOutput int
	logger        *slog.Logger
	timeouts      string      // more entries of the timeouts flow map ("client_read: 1s")
	deployment    string      // more entries of mock-openai's flow map ("max_conns: 4")
	extra         string      // more top-level configuration
	eventGate     func(i int) // the mock's EventGate
	recording     func() bool // server.Options.Recording
}

// serve starts a gateway on st.cfg with opts on a loopback port, stopped
// when the test ends, and a client for it.
func (st *stack) serve(opts server.Options) {
	t := st.t
	var err error
	if st.loom, err = server.New(st.cfg, opts); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = st.loom.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = st.loom.Shutdown(ctx)
	})
	st.url = "http://" + ln.Addr().String()
	st.client = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}}
	t.Cleanup(st.client.CloseIdleConnections)
}

func startStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	mock := mockupstream.New(mockupstream.Config{APIKey: upstreamSecret, ReplayDir: fixtures, EventGate: o.eventGate})
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mock.Serve(mln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = mock.Shutdown(ctx)
	})
	mockURL := "http://" + mln.Addr().String()
	openaiURL := mockURL + "/v1"
	if o.upstreamURL != "" {
		openaiURL = o.upstreamURL
	}
	keyA, hashA, _ := tenant.NewKey()
	keyB, hashB, _ := tenant.NewKey()
	if o.drain == 0 {
		o.drain = 2 * time.Second
	}
	if o.firstByte == 0 {
		o.firstByte = 10 * time.Second
	}
	if o.maxBody == 0 {
		o.maxBody = 1 << 20
	}
	yaml := fmt.Sprintf(`
listen: 127.0.0.1:0
max_body_bytes: %d
default_output_tokens: %d
timeouts: {connect: 1s, first_byte: %s, stream_idle: 10s, drain: %s, shutdown: 5s%s}
%s
deployments:
  - {name: mock-openai, provider: openai, base_url: %s, api_key: %s,
     forward_headers: ["x-mock-*"], forward_response_headers: ["x-mock-*"]%s}
  - name: mock-azure
    provider: azure_openai
    base_url: %s
    api_key: %s
    api_version: "2024-10-21"
    forward_headers: ["x-mock-*"]
tenants:
  - id: acme
    keys: [{id: acme-key-1, sha256: %s, limits: %s}]
    content: {capture: %t, max_bytes: %d}
    limits: %s
    budgets: %s
    models:
      - {name: gpt-4o-mini, deployment: mock-openai, upstream_model: gpt-4o-mini-2024-07-18}
      - {name: gpt-4o, deployment: mock-openai}
      - {name: text-embedding-3-small, deployment: mock-openai}
      - {name: azure-gpt, deployment: mock-azure, upstream_model: gpt35-deploy}
  - id: globex
    keys: [{id: globex-key-1, sha256: %s}]
    models:
      - {name: globex-model, deployment: mock-openai, upstream_model: gpt-4o}
`, o.maxBody, o.defaultOutput, o.firstByte, o.drain, prefixed(o.timeouts), o.extra, openaiURL, upstreamSecret, prefixed(o.deployment), mockURL, upstreamSecret, hashA, orEmpty(o.keyLimits),
		o.contentMax > 0, max(o.contentMax, 1), orEmpty(o.acmeLimits), cmp.Or(o.acmeBudgets, "[]"), hashB)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{t: t, mock: mock, cfg: cfg, keyA: keyA, keyB: keyB, notify: make(chan struct{}, 1)}
	st.serve(server.Options{Sink: call.Sinks(call.SinkFunc(st.record), o.sink), Limiter: o.limiter, Logger: o.logger,
		Recording: o.recording})
	return st
}

// prefixed continues a flow map with more entries, if any.
func prefixed(entries string) string {
	if entries == "" {
		return ""
	}
	return ", " + entries
}

func orEmpty(flow string) string {
	if flow == "" {
		return "{}"
	}
	return flow
}

func (st *stack) record(r *call.Record) {
	st.mu.Lock()
	st.records = append(st.records, r.Clone())
	st.mu.Unlock()
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

// waitRecords waits until n records arrived and returns them all.
func (st *stack) waitRecords(n int) []*call.Record {
	st.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		st.mu.Lock()
		got := append([]*call.Record(nil), st.records...)
		st.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-st.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			st.t.Fatalf("waited for %d records, have %d", n, len(got))
		}
	}
}

// lastRecord waits for the next record after the ones already seen.
func (st *stack) lastRecord(seen int) *call.Record {
	st.t.Helper()
	recs := st.waitRecords(seen + 1)
	return recs[len(recs)-1]
}

func (st *stack) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.records)
}

// do sends a raw request to Loom and returns status, headers and body.
func (st *stack) do(method, path, key string, body string, header map[string]string) (int, http.Header, []byte) {
	st.t.Helper()
	req, err := http.NewRequest(method, st.url+path, strings.NewReader(body))
	if err != nil {
		st.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := st.client.Do(req)
	if err != nil {
		st.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		st.t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, resp.Header, b
}

// sseEvents splits an SSE body into its events (terminator included).
func sseEvents(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\n\n"))
		if i < 0 {
			out = append(out, b)
			break
		}
		out = append(out, b[:i+2])
		b = b[i+2:]
	}
	return out
}
