package distribution_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/otelcol/distribution"
)

// A fan-out exporter that cannot reach its backend is visible in the
// collector's own metrics, served for Prometheus as otelcol-loom's config
// serves them (counters with their _total suffix, the names the alert
// rules use): its send failures count under its name, and a queued
// exporter's queue size is there too.
func TestSelfMetrics_FailingExporter_SendFailuresScrapedPerExporter(t *testing.T) {
	otlp, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	dead, err := freeport.Addr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
exporters:
  otlp_grpc/unqueued:
    endpoint: %q
    tls: {insecure: true}
    timeout: 1s
    retry_on_failure: {enabled: false}
    sending_queue: {enabled: false}
  otlp_grpc/queued:
    endpoint: %q
    tls: {insecure: true}
    timeout: 1s
    retry_on_failure: {enabled: false}
service:
  pipelines:
    traces/fanout:
      receivers: [otlp]
      exporters: [otlp_grpc/unqueued, otlp_grpc/queued]
  telemetry:
    logs: {level: error}
    metrics:
      level: basic
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d, without_type_suffix: false}}}
`, otlp, dead, dead, port)
	set := distribution.Settings("test", cfg)
	// gRPC's logger is a global: the collector replaces it while it starts,
	// and the test's own gRPC client reads it (a data race under -race).
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

	conn, err := grpc.NewClient(otlp, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	td := ptrace.NewTraces()
	span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("chat gpt-4o-mini")
	span.SetTraceID([16]byte{1})
	span.SetSpanID([8]byte{1})

	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
	deadline := time.Now().Add(30 * time.Second)
	var body string
	for {
		if col.GetState() == otelcol.StateRunning {
			// The receiver answers with the unqueued exporter's error: the
			// sender (Loom) would retry, this test sends again.
			ectx, ecancel := context.WithTimeout(ctx, 3*time.Second)
			_, _ = client.Export(ectx, ptraceotlp.NewExportRequestFromTraces(td))
			ecancel()
			body = get(t, url)
			if sample(body, "otelcol_exporter_send_failed_spans_total", `exporter="otlp_grpc/unqueued"`) > 0 &&
				sample(body, "otelcol_exporter_queue_size", `exporter="otlp_grpc/queued"`) >= 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no send failures of otlp_grpc/unqueued (state %v) in %s:\n%s", col.GetState(), url, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return "" // not serving yet
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sample is the value of the first sample of name whose labels hold
// label; -1 when there is none.
func sample(exposition, name, label string) float64 {
	for line := range strings.Lines(exposition) {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok || !strings.Contains(rest, label) {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[i+1:]), 64)
		if err != nil {
			return -1
		}
		return v
	}
	return -1
}
