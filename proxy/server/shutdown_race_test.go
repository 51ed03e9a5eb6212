package server_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
)

// A Shutdown that comes before Serve has started (loom serve cancelled
// right after it logged "serving") still ends Serve; it used to serve on,
// and `loom serve` waited for it for ever.
func TestServe_ShutdownBeforeServeStarts_ServeReturns(t *testing.T) {
	srv, ln := idleServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve after Shutdown still serving after 5 s")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener still accepts connections")
	}
}

// The other order, Shutdown while Serve runs, still returns nil from both.
func TestServe_ShutdownWhileServing_BothReturnNil(t *testing.T) {
	srv, ln := idleServer(t)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	for range 100 {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
}

// idleServer is a Loom with one deployment nothing calls, and a listener
// for it to serve.
func idleServer(t *testing.T) (*server.Server, net.Listener) {
	t.Helper()
	cfg, err := config.Parse([]byte(`deployments:
  - {name: openai, provider: openai, base_url: "http://127.0.0.1:1/v1", api_key: sk-x}
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return srv, ln
}
