package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/process"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenant"
	"github.com/loom-gateway/loom/proxy/tracing"
)

// collectorBin is the real otelcol-loom, built once for the package.
var collectorBin string

func TestMain(m *testing.M) {
	os.Exit(process.RunWithBinaries(m, func(dir string) { collectorBin = filepath.Join(dir, "otelcol-loom") },
		"github.com/loom-gateway/loom/otelcol/cmd/otelcol-loom"))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// collector is one otelcol-loom process that can be killed and started
// again on the same ports and the same file storage.
type collector struct {
	config  string
	grpc    string // OTLP gRPC listen address
	http    string // OTLP/HTTP listen address
	health  string
	logPath string
	proc    *process.Process
}

func startCollector(t testing.TB, dbURL string) *collector {
	t.Helper()
	return startCollectorWith(t, dbURL, "")
}

// startCollectorWith is startCollector with more settings of the postgres
// exporter, as YAML lines indented under it (e.g. "    ledger: {...}\n").
func startCollectorWith(t testing.TB, dbURL, exporterYAML string) *collector {
	t.Helper()
	dir := t.TempDir()
	c := &collector{grpc: freeAddr(t), http: freeAddr(t), health: freeAddr(t), logPath: filepath.Join(dir, "otelcol.log")}
	c.config = filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf(`
extensions:
  file_storage: {directory: %q, create_directory: true}
  health_check: {endpoint: %q}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
      http: {endpoint: %q}
processors:
  memory_limiter: {check_interval: 1s, limit_mib: 1024, spike_limit_mib: 256}
exporters:
  postgres:
    endpoint: %q
    timeout: 10s
    sending_queue:
      enabled: true
      storage: file_storage
      num_consumers: 4
      sizer: bytes
      queue_size: 1073741824
      batch: {sizer: items, min_size: 1000, max_size: 5000, flush_timeout: 100ms}
    retry_on_failure: {enabled: true, initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0}
%sservice:
  extensions: [file_storage, health_check]
  telemetry:
    metrics: {level: none}
    logs: {level: info}
  pipelines:
    traces: {receivers: [otlp], processors: [memory_limiter], exporters: [postgres]}
`, filepath.Join(dir, "storage"), c.health, c.grpc, c.http, dbURL, exporterYAML)
	if err := os.WriteFile(c.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs the collector and waits until its health check answers. It
// may run on any goroutine, so it returns its error.
func (c *collector) start() error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// The child holds its own descriptor of the log from here on.
	defer logf.Close()
	cmd := exec.Command(collectorBin, "--config", c.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if c.proc, err = process.Start(cmd); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + c.health + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.proc.Done():
			return fmt.Errorf("otelcol-loom exited at start:\n%s", c.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("otelcol-loom not healthy after 60s:\n%s", c.log())
		}
	}
}

// kill ends the collector the hard way: no flush, no goodbye.
func (c *collector) kill() { c.proc.Kill() }

// stop is SIGTERM, then a kill after process.Grace. A collector that never
// started has nothing to stop.
func (c *collector) stop() {
	if c.proc != nil {
		_ = c.proc.Stop(process.Grace)
	}
}

func (c *collector) log() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// gateway is a real Loom, in process, in front of the mock upstream, with
// tracing to a collector.
type gateway struct {
	t      testing.TB
	mock   *mockupstream.Server
	srv    *server.Server
	tracer *tracing.Tracer
	url    string
	keys   map[string]string // tenant id -> key
	client *http.Client
}

// Tenants and their routes in the test configuration.
var models = map[string]struct{ public, upstream string }{
	"acme":    {"gpt-4o-mini", "gpt-4o-mini-2024-07-18"},
	"globex":  {"globex-model", "gpt-4o"},
	"initech": {"initech-model", "gpt-4.1-mini"},
}

func startGateway(t testing.TB, otlpAddr string) *gateway {
	return startGatewayWith(t, otlpAddr, "grpc")
}

// startGatewayWith is startGateway with the OTLP protocol: grpc or http.
func startGatewayWith(t testing.TB, otlpAddr, protocol string) *gateway {
	t.Helper()
	return startGatewayOpts(t, otlpAddr, gatewayOptions{protocol: protocol})
}

// gatewayOptions vary the gateway of a test.
type gatewayOptions struct {
	protocol string // OTLP: grpc (default) or http
	// captureAcme turns on content capture for tenant acme, this many bytes.
	captureAcme int
	// prices is a top-level prices: section of the configuration.
	prices string
}

func startGatewayOpts(t testing.TB, otlpAddr string, o gatewayOptions) *gateway {
	t.Helper()
	if o.protocol == "" {
		o.protocol = "grpc"
	}
	g := &gateway{t: t, keys: map[string]string{}}
	g.mock = mockupstream.New(mockupstream.Config{APIKey: "sk-upstream-e2e", LogLimit: -1})
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.mock.Serve(mln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = g.mock.Shutdown(ctx)
	})
	var tenants strings.Builder
	for _, id := range []string{"acme", "globex", "initech"} {
		key, hash, err := tenant.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		g.keys[id] = key
		fmt.Fprintf(&tenants, "  - id: %s\n    keys: [{id: %s-key, sha256: %s}]\n    models: [{name: %s, deployment: mock, upstream_model: %s}]\n",
			id, id, hash, models[id].public, models[id].upstream)
		if id == "acme" && o.captureAcme > 0 {
			fmt.Fprintf(&tenants, "    content: {capture: true, max_bytes: %d}\n", o.captureAcme)
		}
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
timeouts: {connect: 1s, first_byte: 10s, stream_idle: 10s, drain: 5s, shutdown: 5s}
tracing:
  endpoint: http://%s
  protocol: %s
  batch_timeout: 50ms
  batch_size: 512
  # Short, so that a collector away for seconds also exercises Loom's own
  # retry of a failed batch, not only the exporter's.
  export_timeout: 5s
  retry_max_elapsed: 1s
deployments:
  - {name: mock, provider: openai, base_url: "http://%s/v1", api_key: sk-upstream-e2e, forward_headers: ["x-mock-*"]}
tenants:
%s%s`, otlpAddr, o.protocol, mln.Addr(), tenants.String(), o.prices)))
	if err != nil {
		t.Fatal(err)
	}
	g.tracer, err = tracing.New(context.Background(), cfg.Tracing, tracing.Options{ServiceVersion: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	g.srv, err = server.New(cfg, server.Options{Sink: g.tracer})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.srv.Shutdown(ctx)
		_ = g.tracer.Shutdown(ctx)
	})
	g.url = "http://" + ln.Addr().String()
	g.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	t.Cleanup(g.client.CloseIdleConnections)
	return g
}

// flush waits until every span ended so far reached the collector.
func (g *gateway) flush(timeout time.Duration) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := g.tracer.Flush(ctx); err != nil {
		g.t.Fatalf("flush spans: %v (stats %+v)", err, g.tracer.Stats())
	}
	if s := g.tracer.Stats(); s.Dropped != 0 {
		g.t.Fatalf("the proxy dropped spans: %+v", s)
	}
}

func connect(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// waitRows polls until query's single count reaches want, and fails if it
// passes it.
func waitRows(t testing.TB, db *pgxpool.Pool, want int64, timeout time.Duration, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var n int64
	for {
		err := db.QueryRow(context.Background(), query, args...).Scan(&n)
		if err == nil && n >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows after %v, want %d (last error %v): %s", n, timeout, want, err, query)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n != want {
		t.Fatalf("%d rows, want exactly %d: %s", n, want, query)
	}
}
