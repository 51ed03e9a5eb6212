package cli_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/proxy/cli"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
	"github.com/loom-gateway/loom/proxy/tenant"
	"github.com/loom-gateway/loom/proxy/tracing/tracingtest"
)

// grpcCollector is a real OTLP/gRPC endpoint in front of an in-memory
// collector.
type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	col  tracingtest.Collector
	srv  *grpc.Server
	addr string
}

func (g *grpcCollector) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := g.col.Send(ctx, b); err != nil {
		return nil, err
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// startCollector serves on addr ("127.0.0.1:0" for any port).
func startCollector(t *testing.T, addr string) *grpcCollector {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := &grpcCollector{srv: grpc.NewServer(), addr: ln.Addr().String()}
	coltracepb.RegisterTraceServiceServer(g.srv, g)
	go func() { _ = g.srv.Serve(ln) }()
	t.Cleanup(g.srv.Stop)
	return g
}

// serving is one `loom serve` in this process; stop is its SIGTERM.
type serving struct {
	url    string
	stop   context.CancelFunc
	served chan error
}

func startServe(t *testing.T, path, listen string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{url: "http://" + listen, stop: cancel, served: make(chan error, 1)}
	go func() { s.served <- cli.Main(ctx, []string{"serve", "-config", path}, io.Discard, io.Discard) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(s.url + "/readyz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("loom serve did not start: %v", <-s.served)
		}
	}
	return s
}

// shutdownConfig is a gateway in front of mock, tracing to otlp through a
// spool in dir.
func shutdownConfig(t *testing.T, listen, mock, otlp, dir, hash string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "loom.yaml")
	yaml := fmt.Sprintf(`listen: %q
timeouts: {shutdown: 3s}
tracing: {endpoint: "http://%s", export_timeout: 1s, spool: {dir: %q}}
deployments:
  - {name: mock, provider: openai, base_url: "http://%s/v1", api_key: sk-upstream, forward_headers: ["x-mock-*"]}
tenants:
  - id: acme
    keys: [{id: acme-1, sha256: %s}]
    models: [{name: gpt-4o-mini, deployment: mock}]
`, listen, otlp, dir, mock, hash)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startMock(t *testing.T) string {
	t.Helper()
	mock := mockupstream.New(mockupstream.Config{APIKey: "sk-upstream"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mock.Serve(ln) }()
	t.Cleanup(func() { _ = mock.Shutdown(context.Background()) })
	return ln.Addr().String()
}

func chat(t *testing.T, url, key string, header map[string]string, stream bool) (*http.Response, error) {
	t.Helper()
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","stream":%t,"messages":[{"role":"user","content":"hi"}]}`, stream)
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return http.DefaultClient.Do(req)
}

// SIGTERM: the stream in flight finishes whole, the run's calls and its
// stop marker reach the collector, and serve returns cleanly.
func TestServe_SIGTERM_FinishesTheStreamAndClosesTheRun(t *testing.T) {
	listen, _ := twoFreeAddrs(t)
	key, hash, _ := tenant.NewKey()
	col := startCollector(t, "127.0.0.1:0")
	path := shutdownConfig(t, listen, startMock(t), col.addr, t.TempDir(), hash)
	s := startServe(t, path, listen)

	resp, err := chat(t, s.url, key, map[string]string{"x-mock-chunks": "10", "x-mock-chunk-delay-ms": "100"}, true)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil { // the stream has begun
		t.Fatal(err)
	}
	s.stop()
	rest, err := io.ReadAll(r)
	resp.Body.Close()
	if err != nil || !strings.Contains(string(rest), "data: [DONE]") {
		t.Fatalf("the stream in flight was cut at SIGTERM: %v\n%s", err, rest)
	}
	if err := <-s.served; err != nil {
		t.Fatalf("loom serve: %v", err)
	}
	calls, stops := 0, 0
	for _, sp := range col.col.Spans() {
		for _, kv := range sp.Attributes {
			if kv.Key == sa.RunLastSeq && kv.Value.AsInt64() == 1 {
				stops++
			}
			if kv.Key == sa.Seq {
				calls++
			}
		}
	}
	if calls != 2 || stops != 1 {
		t.Fatalf("collector got %d call spans and %d stop markers with last_seq 1, want 2 and 1", calls, stops)
	}
}

// SIGTERM with the collector away: serve still returns within its bound,
// and the next start of the same spool ships the stopped run's calls.
func TestServe_SIGTERMWithCollectorAway_NextStartShipsTheRun(t *testing.T) {
	listen, otlp := twoFreeAddrs(t)
	key, hash, _ := tenant.NewKey()
	path := shutdownConfig(t, listen, startMock(t), otlp, t.TempDir(), hash)
	s := startServe(t, path, listen)
	for range 5 {
		resp, err := chat(t, s.url, key, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	start := time.Now()
	s.stop()
	if err := <-s.served; err != nil {
		t.Fatalf("loom serve with the collector away: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v with a 3s bound", d)
	}

	col := startCollector(t, otlp)
	s = startServe(t, path, listen)
	defer func() { s.stop(); <-s.served }()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		seqs, stopped := map[int64]bool{}, false
		for _, sp := range col.col.Spans() {
			for _, kv := range sp.Attributes {
				if kv.Key == sa.Seq {
					seqs[kv.Value.AsInt64()] = true
				}
				if kv.Key == sa.RunLastSeq && kv.Value.AsInt64() == 5 {
					stopped = true
				}
			}
		}
		if len(seqs) == 5 && stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart the collector has seqs %v and stop marker %v", seqs, stopped)
		}
	}
}
