package server_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
	"github.com/loom-gateway/loom/proxy/tracing"
)

// inMemoryGateway serves the mock and a Loom in front of it on in-memory
// listeners, closed when b ends, and returns both listeners, Loom's
// configuration (for a second Loom) and a key of its one tenant.
func inMemoryGateway(b *testing.B) (mockLn, loomLn *fasthttputil.InmemoryListener, cfg *config.Config, key string) {
	mockLn = fasthttputil.NewInmemoryListener()
	mock := mockupstream.New(mockupstream.Config{APIKey: upstreamSecret, LogLimit: 16})
	go func() { _ = mock.Serve(mockLn) }()
	b.Cleanup(func() { mockLn.Close() })

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
	loomLn = fasthttputil.NewInmemoryListener()
	go func() { _ = loom.Serve(loomLn) }()
	b.Cleanup(func() { loomLn.Close() })
	return mockLn, loomLn, cfg, key
}

// discard is a collector that takes everything and keeps nothing.
func discard(context.Context, []byte) (int64, error) { return 0, nil }

// BenchmarkGateway measures the whole request path through in-memory
// listeners: client → Loom → mock upstream, beside the same call straight to
// the mock. Loom's own cost is the difference between the two (ns/op and
// allocs/op both count every party in the process).
func BenchmarkGateway(b *testing.B) {
	mockLn, loomLn, cfg, key := inMemoryGateway(b)

	// The same gateway with tracing on: every call is encoded, spooled to
	// disk and shipped to a collector that discards it, so this measures
	// what tracing costs the proxy, not a collector.
	tcfg := config.DefaultTracing
	tcfg.Spool.Dir = b.TempDir()
	tracer, err := tracing.New(context.Background(), tcfg, tracing.Options{Send: discard})
	if err != nil {
		b.Fatal(err)
	}
	defer tracer.Shutdown(context.Background())
	traced, err := server.New(cfg, server.Options{Sink: tracer, Dial: func(string, time.Duration) (net.Conn, error) { return mockLn.Dial() }})
	if err != nil {
		b.Fatal(err)
	}
	tracedLn := fasthttputil.NewInmemoryListener()
	go func() { _ = traced.Serve(tracedLn) }()
	defer tracedLn.Close()

	// The same gateway with the model priced: every call is looked up in
	// the catalog and costed, and a unary answer carries X-Loom-Cost.
	pcfg := *cfg
	pcfg.Prices = []config.Price{{Model: "gpt-4o-mini", EffectiveFrom: "2020-01-01", Input: "0.15", CachedInput: "0.075", Output: "0.6"}}
	priced, err := server.New(&pcfg, server.Options{Dial: func(string, time.Duration) (net.Conn, error) { return mockLn.Dial() }})
	if err != nil {
		b.Fatal(err)
	}
	pricedLn := fasthttputil.NewInmemoryListener()
	go func() { _ = priced.Serve(pricedLn) }()
	defer pricedLn.Close()

	// Priced, and budgeted in memory: every call reserves its estimate
	// against its tenant's and its key's day and month budgets and settles
	// its cost, and every answer carries x-loom-budget-*.
	bcfg := pcfg
	big := []tenancy.Budget{{Period: "day", Limit: "999999"}, {Period: "month", Limit: "999999"}}
	bcfg.Tenants = slices.Clone(pcfg.Tenants)
	bcfg.Tenants[0].Budgets = big
	bcfg.Tenants[0].Keys = slices.Clone(pcfg.Tenants[0].Keys)
	bcfg.Tenants[0].Keys[0].Budgets = big
	budgeted, err := server.New(&bcfg, server.Options{Dial: func(string, time.Duration) (net.Conn, error) { return mockLn.Dial() }})
	if err != nil {
		b.Fatal(err)
	}
	budgetedLn := fasthttputil.NewInmemoryListener()
	go func() { _ = budgeted.Serve(budgetedLn) }()
	defer budgetedLn.Close()

	targets := []struct {
		name string
		ln   *fasthttputil.InmemoryListener
		key  string
	}{{"direct", mockLn, upstreamSecret}, {"via-loom", loomLn, key}, {"via-loom-priced", pricedLn, key},
		{"via-loom-budgeted", budgetedLn, key}, {"via-loom-traced", tracedLn, key}}
	bodies := []struct{ name, body string }{
		{"non-streaming", `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Explain TCP versus UDP in two sentences with one example each, please."}],"temperature":0.2,"max_tokens":200}`},
		{"streaming-20-chunks", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Count to twenty."}],"stream":true}`},
	}
	for _, bd := range bodies {
		for _, tg := range targets {
			b.Run(bd.name+"/"+tg.name, func(b *testing.B) {
				ln := tg.ln
				client := &fasthttp.HostClient{Addr: "bench.local", Dial: func(string) (net.Conn, error) { return ln.Dial() }}
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI("http://bench.local/v1/chat/completions")
				req.Header.SetMethod("POST")
				req.Header.SetContentType("application/json")
				req.Header.Set("Authorization", "Bearer "+tg.key)
				req.Header.Set("x-mock-chunks", "20")
				req.SetBodyString(bd.body)
				b.ReportAllocs()
				for b.Loop() {
					if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
					}
				}
			})
		}
	}
}
