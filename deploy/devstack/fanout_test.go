package devstack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/collector/pipeline"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/otelcol/distribution"
)

func TestChooseFanout_TLSFollowsTheSchemeAndInsecureIsNeverTheDefault(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not read here"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    *Fanout // nil with wantErr "": no fan-out
		wantErr string
	}{
		{name: "unset: no fan-out", env: map[string]string{}},
		{name: "http:// over gRPC is plaintext", env: map[string]string{EnvOTLPEndpoint: "http://127.0.0.1:4317"},
			want: &Fanout{Endpoint: "127.0.0.1:4317", Insecure: true, Compression: "gzip"}},
		{name: "https:// over gRPC is TLS", env: map[string]string{EnvOTLPEndpoint: "https://tempo.example.com:443"},
			want: &Fanout{Endpoint: "tempo.example.com:443", Compression: "gzip"}},
		{name: "host:port is TLS", env: map[string]string{EnvOTLPEndpoint: "tempo.example.com:4317"},
			want: &Fanout{Endpoint: "tempo.example.com:4317", Compression: "gzip"}},
		{name: "host:port with LOOM_OTLP_INSECURE", env: map[string]string{EnvOTLPEndpoint: "jaeger:4317", EnvOTLPInsecure: "true"},
			want: &Fanout{Endpoint: "jaeger:4317", Insecure: true, Compression: "gzip"}},
		{name: "private CA", env: map[string]string{EnvOTLPEndpoint: "https://otel.internal:4317", EnvOTLPCAFile: ca, EnvOTLPCompression: "zstd"},
			want: &Fanout{Endpoint: "otel.internal:4317", CAFile: ca, Compression: "zstd"}},
		{name: "http protocol, base URL", env: map[string]string{EnvOTLPEndpoint: "https://api.honeycomb.io", EnvOTLPProtocol: "http/protobuf"},
			want: &Fanout{HTTP: true, Endpoint: "https://api.honeycomb.io", Compression: "gzip"}},
		{name: "gRPC wants the port", env: map[string]string{EnvOTLPEndpoint: "https://tempo.example.com"}, wantErr: "host:port"},
		{name: "http protocol, base URL with port", env: map[string]string{EnvOTLPEndpoint: "https://api.honeycomb.io:443/", EnvOTLPProtocol: "http",
			EnvOTLPHeaders: "x-honeycomb-team=abc%3D%3D, X-Other = 1"},
			want: &Fanout{HTTP: true, Endpoint: "https://api.honeycomb.io:443", Compression: "gzip",
				Headers: []string{"x-honeycomb-team", "x-other"}, Env: []string{"LOOM_OTLP_HEADER_0=abc==", "LOOM_OTLP_HEADER_1=1"}}},
		{name: "http protocol, full traces URL", env: map[string]string{EnvOTLPEndpoint: "http://127.0.0.1:4318/otlp/v1/traces", EnvOTLPProtocol: "http"},
			want: &Fanout{HTTP: true, TracesEndpoint: "http://127.0.0.1:4318/otlp/v1/traces", Insecure: true, Compression: "gzip"}},
		{name: "https:// and LOOM_OTLP_INSECURE contradict", env: map[string]string{EnvOTLPEndpoint: "https://x:4317", EnvOTLPInsecure: "1"},
			wantErr: "contradicts"},
		{name: "a CA for plaintext is a mistake", env: map[string]string{EnvOTLPEndpoint: "http://x:4317", EnvOTLPCAFile: ca},
			wantErr: EnvOTLPCAFile},
		{name: "a missing CA file", env: map[string]string{EnvOTLPEndpoint: "https://x:4317", EnvOTLPCAFile: ca + ".gone"},
			wantErr: "ca.pem.gone"},
		{name: "gRPC takes no path", env: map[string]string{EnvOTLPEndpoint: "http://x:4317/v1/traces"}, wantErr: "no path"},
		{name: "unknown protocol, compression and a bad header, all at once",
			env: map[string]string{EnvOTLPEndpoint: "x:4317", EnvOTLPProtocol: "thrift", EnvOTLPCompression: "lz4",
				EnvOTLPHeaders: "token-without-name"},
			wantErr: "thrift"},
		{name: "a header's value is never in an error", env: map[string]string{EnvOTLPEndpoint: "x:4317", EnvOTLPHeaders: "bad name=s3cret"},
			wantErr: "entry 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChooseFanout(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("err = %v, want one naming %q (and no header value)", err, tt.wantErr)
				}
				if tt.name == "unknown protocol, compression and a bad header, all at once" &&
					(!strings.Contains(err.Error(), "lz4") || !strings.Contains(err.Error(), EnvOTLPHeaders)) {
					t.Errorf("err = %v, want every problem named", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("ChooseFanout =\n %+v, want\n %+v", got, tt.want)
			}
		})
	}
}

// loadMerged loads config files the way otelcol-loom --config a --config b
// does (later files merged over earlier ones) and validates the result as
// the collector does before it starts.
func loadMerged(t *testing.T, paths ...string) *otelcol.Config {
	t.Helper()
	factories, err := distribution.Components()
	if err != nil {
		t.Fatal(err)
	}
	set := distribution.Settings("test", "")
	set.ConfigProviderSettings.ResolverSettings.URIs = nil
	for _, p := range paths {
		set.ConfigProviderSettings.ResolverSettings.URIs = append(set.ConfigProviderSettings.ResolverSettings.URIs, "file:"+p)
	}
	provider, err := otelcol.NewConfigProvider(set.ConfigProviderSettings)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := provider.Get(t.Context(), factories)
	if err != nil {
		t.Fatalf("load %v: %v", paths, err)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatalf("validate %v: %v", paths, err)
	}
	return cfg
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRenderFanoutConfig_MergedOverTheCollectorConfig_ValidAndPostgresPipelineUntouched(t *testing.T) {
	t.Setenv(EnvDatabaseURL, "postgres://loom@127.0.0.1:5432/loom")
	t.Setenv("LOOM_OTLP_HEADER_0", "s3cret-token")
	dir := t.TempDir()
	base := writeFile(t, filepath.Join(dir, "otelcol.yaml"),
		RenderCollectorConfig("127.0.0.1:4317", "127.0.0.1:13133", filepath.Join(dir, "otelcol"), "", ""))
	alone := loadMerged(t, base)
	for _, f := range []*Fanout{
		{Endpoint: "127.0.0.1:4317", Insecure: true, Compression: "gzip"},
		{Endpoint: "otel.internal:4317", CAFile: "/etc/ssl/private-ca.pem", Compression: "zstd",
			Headers: []string{"authorization"}, Env: []string{"LOOM_OTLP_HEADER_0=s3cret-token"}},
		{Endpoint: "tempo.example.com:443", Compression: "none"},
		{HTTP: true, Endpoint: "https://api.honeycomb.io:443", Compression: "gzip", Headers: []string{"x-honeycomb-team"}},
		{HTTP: true, TracesEndpoint: "http://127.0.0.1:4318/v1/traces", Insecure: true, Compression: "snappy"},
	} {
		t.Run(f.Describe(), func(t *testing.T) {
			b := RenderFanoutConfig(f)
			if strings.Contains(string(b), "s3cret") {
				t.Fatalf("the fan-out config holds a header's value:\n%s", b)
			}
			cfg := loadMerged(t, base, writeFile(t, filepath.Join(t.TempDir(), "fanout.yaml"), b))

			// Postgres's pipeline is exactly what it is without a fan-out.
			pg := pipeline.NewIDWithName(pipeline.SignalTraces, "postgres")
			if fmt.Sprint(cfg.Service.Pipelines[pg]) != fmt.Sprint(alone.Service.Pipelines[pg]) {
				t.Errorf("traces/postgres = %v, want it as without the fan-out: %v", cfg.Service.Pipelines[pg], alone.Service.Pipelines[pg])
			}
			if !slices.Equal(cfg.Service.Extensions, alone.Service.Extensions) {
				t.Errorf("extensions = %v, want %v", cfg.Service.Extensions, alone.Service.Extensions)
			}
			fan := cfg.Service.Pipelines[pipeline.NewIDWithName(pipeline.SignalTraces, fanoutName)]
			if fan == nil {
				t.Fatalf("no traces/fanout pipeline in %v", cfg.Service.Pipelines)
			}
			var id component.ID
			if err := id.UnmarshalText([]byte(f.ExporterID())); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(fan.Receivers, []component.ID{component.MustNewID("otlp")}) ||
				!slices.Equal(fan.Exporters, []component.ID{id}) {
				t.Errorf("traces/fanout = %+v, want otlp in, %s out", fan, id)
			}
			// Only the batch processor, which always takes what it is given:
			// the fan-out must never return an error to the shared receiver.
			if len(fan.Processors) != 1 || fan.Processors[0].Type().String() != "batch" {
				t.Errorf("traces/fanout processors = %v, want only a batch processor", fan.Processors)
			}

			var queue exporterhelper.QueueBatchConfig
			var tlsInsecure bool
			var caFile, compression string
			var headers map[string]string
			switch c := cfg.Exporters[id].(type) {
			case *otlpexporter.Config:
				if f.HTTP {
					t.Fatalf("exporter %s is gRPC", id)
				}
				if c.ClientConfig.Endpoint != f.Endpoint {
					t.Errorf("endpoint = %q, want %q", c.ClientConfig.Endpoint, f.Endpoint)
				}
				queue = *c.QueueConfig.Get()
				tlsInsecure, caFile, compression = c.ClientConfig.TLS.Insecure, c.ClientConfig.TLS.CAFile, string(c.ClientConfig.Compression)
				headers = map[string]string{}
				for k, v := range c.ClientConfig.Headers.Iter {
					headers[k] = string(v)
				}
			case *otlphttpexporter.Config:
				if !f.HTTP {
					t.Fatalf("exporter %s is HTTP", id)
				}
				if c.ClientConfig.Endpoint != f.Endpoint || c.TracesEndpoint != f.TracesEndpoint {
					t.Errorf("endpoint = %q, traces_endpoint %q; want %q, %q", c.ClientConfig.Endpoint, c.TracesEndpoint, f.Endpoint, f.TracesEndpoint)
				}
				queue = *c.QueueConfig.Get()
				tlsInsecure, caFile, compression = c.ClientConfig.TLS.Insecure, c.ClientConfig.TLS.CAFile, string(c.ClientConfig.Compression)
				headers = map[string]string{}
				for k, v := range c.ClientConfig.Headers.Iter {
					headers[k] = string(v)
				}
			default:
				t.Fatalf("exporter %s is %T", id, cfg.Exporters[id])
			}
			if tlsInsecure != f.Insecure || caFile != f.CAFile {
				t.Errorf("tls = insecure %v, ca_file %q; want %v, %q", tlsInsecure, caFile, f.Insecure, f.CAFile)
			}
			if compression != f.Compression {
				t.Errorf("compression = %q, want %q", compression, f.Compression)
			}
			for i, h := range f.Headers {
				want := ""
				if i == 0 {
					want = "s3cret-token" // from the environment
				}
				if v, ok := headers[h]; !ok || v != want {
					t.Errorf("header %s = %q (%v), want %q from LOOM_OTLP_HEADER_%d", h, v, ok, want, i)
				}
			}
			if queue.BlockOnOverflow || queue.WaitForResult || queue.StorageID != nil || queue.QueueSize != fanoutQueueSpans ||
				queue.Sizer.String() != "items" {
				t.Errorf("sending_queue = %+v, want in memory, %d items, never blocking", queue, fanoutQueueSpans)
			}
		})
	}
}

// otlpBackend is a second OTLP gRPC receiver, as one's own backend: it
// counts the spans it gets and the authorization header they came with,
// or, stuck, holds every request until the test ends.
type otlpBackend struct {
	ptraceotlp.UnimplementedGRPCServer
	stuck    chan struct{} // non-nil: block until closed
	calls    atomic.Int64
	spans    atomic.Int64
	mu       sync.Mutex
	authSeen []string
	once     sync.Once
}

// release lets a stuck backend's requests go.
func (b *otlpBackend) release() {
	b.once.Do(func() {
		if b.stuck != nil {
			close(b.stuck)
		}
	})
}

func (b *otlpBackend) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	b.calls.Add(1)
	if b.stuck != nil {
		select {
		case <-b.stuck:
		case <-ctx.Done():
		}
		return ptraceotlp.NewExportResponse(), ctx.Err()
	}
	md, _ := metadata.FromIncomingContext(ctx)
	b.mu.Lock()
	b.authSeen = append(b.authSeen, md.Get("authorization")...)
	b.mu.Unlock()
	b.spans.Add(int64(req.Traces().SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

func startBackend(t *testing.T, b *otlpBackend) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, b)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		b.release()
		srv.Stop()
	})
	return lis.Addr().String()
}

// collector is otelcol-loom in this process, run from devstack's rendered
// configuration with the fan-out, plus its own metrics on a pull port.
type collector struct {
	otlp, metrics string
}

func startCollector(t *testing.T, dbURL string, f *Fanout) collector {
	t.Helper()
	t.Setenv(EnvDatabaseURL, dbURL)
	for _, kv := range f.Env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	var addrs [3]string
	for i := range addrs {
		a, err := freeport.Addr()
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = a
	}
	c := collector{otlp: addrs[0], metrics: addrs[2]}
	_, mport, _ := net.SplitHostPort(c.metrics)
	base := writeFile(t, filepath.Join(dir, "otelcol.yaml"), RenderCollectorConfig(c.otlp, addrs[1], filepath.Join(dir, "otelcol"), "", ""))
	fan := writeFile(t, filepath.Join(dir, "fanout.yaml"), RenderFanoutConfig(f))
	tel := writeFile(t, filepath.Join(dir, "telemetry.yaml"), []byte("service:\n  telemetry:\n    metrics:\n      level: basic\n"+
		"      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: 127.0.0.1\n                port: "+mport+"\n"))
	loadMerged(t, base, fan, tel)

	set := distribution.Settings("test", "")
	set.ConfigProviderSettings.ResolverSettings.URIs = []string{"file:" + base, "file:" + fan, "file:" + tel}
	// gRPC's logger is a global: the test's own gRPC server and client use
	// it already, and replacing it under them is a data race.
	set.SkipSettingGRPCLogger = true
	col, err := otelcol.NewCollector(set)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("collector: %v", err)
		}
	})
	ready := HTTPReady("http://" + addrs[1] + "/")
	deadline := time.Now().Add(30 * time.Second)
	for ready(t.Context()) != nil {
		select {
		case err := <-done:
			t.Fatalf("collector exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("collector not ready after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// send exports n requests of per spans each to the collector, as Loom
// does, and returns the slowest answer.
func send(t *testing.T, addr string, n, per int, first byte) time.Duration {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	var slowest time.Duration
	for i := range n {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "loom")
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		now := time.Now()
		for j := range per {
			s := spans.AppendEmpty()
			s.SetTraceID(pcommon.TraceID{first, 1: byte(i >> 8), 2: byte(i), 3: byte(j)})
			s.SetSpanID(pcommon.SpanID{first, 1: byte(i >> 8), 2: byte(i), 3: byte(j), 7: 1})
			s.SetName("POST /v1/chat/completions")
			s.SetKind(ptrace.SpanKindServer)
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		start := time.Now()
		_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
		cancel()
		if err != nil {
			t.Fatalf("export %d to the collector: %v", i, err)
		}
		slowest = max(slowest, time.Since(start))
	}
	return slowest
}

func awaitRows(t *testing.T, dbURL string, want int) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	var got int
	for {
		err := conn.QueryRow(t.Context(), "SELECT count(*) FROM loom.spans").Scan(&got)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("loom.spans has %d rows after 30s, want %d (%v)", got, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricSum adds up the samples of a counter whose labels include label,
// from the collector's own /metrics: name with the _total suffix or
// without (the collector's Prometheus reader adds it or not, as set).
func metricSum(t *testing.T, url, name, label string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		base := strings.TrimSuffix(name, "_total")
		if !(strings.HasPrefix(line, base+"{") || strings.HasPrefix(line, base+"_total{")) || !strings.Contains(line, label) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// The fan-out's backend gets every span, over gRPC with the header from
// the environment, and Postgres gets them too.
func TestFanout_RealCollector_TheSecondBackendGetsEverySpan(t *testing.T) {
	srv := pgtest.Start(t)
	dbURL := pgtest.Database(t, srv)
	backend := &otlpBackend{}
	addr := startBackend(t, backend)
	f, err := ChooseFanout(func(k string) string {
		return map[string]string{EnvOTLPEndpoint: "http://" + addr, EnvOTLPHeaders: "Authorization=Bearer%20fan-token"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	c := startCollector(t, dbURL, f)
	const n, per = 20, 10
	send(t, c.otlp, n, per, 1)
	awaitRows(t, dbURL, n*per)
	deadline := time.Now().Add(30 * time.Second)
	for backend.spans.Load() < n*per && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := backend.spans.Load(); got != n*per {
		t.Fatalf("the fan-out backend got %d spans, want %d", got, n*per)
	}
	backend.mu.Lock()
	defer backend.mu.Unlock()
	for _, a := range backend.authSeen {
		if a != "Bearer fan-token" {
			t.Fatalf("authorization = %q, want the header from %s", a, EnvOTLPHeaders)
		}
	}
	if len(backend.authSeen) == 0 {
		t.Fatal("no authorization header reached the backend")
	}
}

// A backend that never answers holds up neither Loom's exports nor
// Postgres: the fan-out's queue fills, and what it cannot take is dropped
// and counted in the collector's own metrics under the fan-out exporter.
func TestFanout_RealCollector_StuckBackend_PostgresUnaffectedAndDropsCounted(t *testing.T) {
	srv := pgtest.Start(t)
	dbURL := pgtest.Database(t, srv)
	backend := &otlpBackend{stuck: make(chan struct{})}
	addr := startBackend(t, backend)
	f, err := ChooseFanout(func(k string) string { return map[string]string{EnvOTLPEndpoint: "http://" + addr}[k] })
	if err != nil {
		t.Fatal(err)
	}
	f.QueueSpans = 100 // a small queue, so that it fills within the test
	c := startCollector(t, dbURL, f)
	t.Cleanup(backend.release) // before the collector stops: its shutdown waits for what is in flight
	metricsURL := "http://" + c.metrics + "/metrics"

	// One span first, to get the fan-out's consumers stuck on the backend.
	send(t, c.otlp, 1, 1, 1)
	deadline := time.Now().Add(30 * time.Second)
	for backend.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if backend.calls.Load() == 0 {
		t.Fatal("the fan-out never called its backend")
	}
	// Then far more than its queue holds.
	const n, per = 40, 50
	slowest := send(t, c.otlp, n, per, 2)
	if slowest > 5*time.Second {
		t.Errorf("the slowest export to the collector took %s with the fan-out's backend stuck: it held Loom up", slowest)
	}
	awaitRows(t, dbURL, 1+n*per)

	label := `exporter="` + f.ExporterID() + `"`
	deadline = time.Now().Add(30 * time.Second)
	for {
		dropped := metricSum(t, metricsURL, "otelcol_exporter_enqueue_failed_spans_total", label)
		if dropped > 0 {
			if dropped > 1+n*per {
				t.Errorf("dropped %v spans, more than were sent (%d)", dropped, 1+n*per)
			}
			break
		}
		if time.Now().After(deadline) {
			resp, _ := http.Get(metricsURL)
			var page []byte
			if resp != nil {
				page, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			t.Fatalf("otelcol_exporter_enqueue_failed_spans_total{%s} still 0 after 30s: the drops are invisible\n%s", label, page)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Postgres's exporter lost nothing and failed nothing.
	if pg := metricSum(t, metricsURL, "otelcol_exporter_enqueue_failed_spans_total", `exporter="postgres"`) +
		metricSum(t, metricsURL, "otelcol_exporter_send_failed_spans_total", `exporter="postgres"`); pg != 0 {
		t.Errorf("the postgres exporter failed %v spans", pg)
	}
}
