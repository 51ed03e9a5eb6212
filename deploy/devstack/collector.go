package devstack

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// EnvDatabaseURL names the PostgreSQL that otelcol-loom writes spans into.
// Unset, devstack runs its own cluster under Options.Dir. The URL reaches
// the collector through its environment only: it may hold a password, so it
// is never written to .loom/.
const EnvDatabaseURL = "LOOM_DATABASE_URL"

// collectorName is otelcol-loom's service name: its log is otelcol.log,
// beside otelcol.yaml and the otelcol/ queue directory.
const collectorName = "otelcol"

// RenderCollectorConfig writes otelcol-loom's configuration for the demo:
// OTLP gRPC on otlp, a health check on health (the readiness check), and
// one pipeline into the postgres exporter, whose sending queue lives in
// file_storage under storageDir. It mirrors the distribution's embedded
// default (otelcol/cmd/otelcol-loom/config.yaml) minus what devstack does
// not want: the HTTP receiver and the batch processor.
//
// metrics, when set (host:port), serves the collector's own metrics there
// for Prometheus (otelcol_exporter_queue_size,
// otelcol_exporter_send_failed_spans_total per exporter, the postgres
// exporter's loom_exporter_*); empty turns them off.
//
// There must be no batch processor in the pipeline: it acknowledges spans
// to Loom while they are only in memory, so a killed collector would lose
// them. Batching happens in the exporter's queue, which is on disk before
// the receiver acknowledges.
//
// ledgerKey, when set, is the audit ledger's signing key file: the
// exporter signs the chains' heads with it every minute (a demo wants to
// see a checkpoint soon; production's default is 5m).
func RenderCollectorConfig(otlp, health, storageDir, ledgerKey, metrics string) []byte {
	var b strings.Builder
	q := strconv.Quote // a Go-quoted ASCII string is a valid YAML double-quoted scalar
	fmt.Fprintf(&b, "# Written by devstack (make run) on every start: edits here are overwritten.\n")
	fmt.Fprintf(&b, "# Loom sends spans here over OTLP gRPC; the postgres exporter writes them into loom.spans.\n")
	fmt.Fprintf(&b, "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: %s\n", q(otlp))
	fmt.Fprintf(&b, `processors:
  # Refuse data (Loom retries) before the collector runs out of memory.
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 20
exporters:
  postgres:
    # From devstack's environment, never written here: it may hold a password.
    endpoint: ${env:%s}
    schema_migrations: true
    sending_queue:
      enabled: true
      # On disk before the receiver acknowledges; a killed collector resumes from it.
      storage: file_storage
      sizer: bytes
      queue_size: 2147483648
      batch:
        sizer: items
        # Small, steady inserts: a big batch is a burst of work that, on a
        # machine the collector shares with Loom, shows in Loom's tail.
        min_size: 100
        max_size: 5000
        flush_timeout: 200ms
    retry_on_failure:
      enabled: true
      initial_interval: 1s
      max_interval: 30s
      max_elapsed_time: 0 # never give up: an outage delays spans, never drops them
`, EnvDatabaseURL)
	if ledgerKey != "" {
		fmt.Fprintf(&b, "    ledger: {checkpoint_interval: 1m, signing_key_file: %s}\n", q(ledgerKey))
	}
	fmt.Fprintf(&b, "extensions:\n  file_storage:\n    directory: %s\n    create_directory: true\n    fsync: true\n", q(storageDir))
	fmt.Fprintf(&b, "    compaction:\n      directory: %s\n      on_rebound: true\n", q(storageDir))
	fmt.Fprintf(&b, "  health_check:\n    endpoint: %s\n", q(health))
	fmt.Fprintf(&b, `service:
  extensions: [file_storage, health_check]
  pipelines:
    traces/postgres:
      receivers: [otlp]
      processors: [memory_limiter] # no batch processor: see devstack.RenderCollectorConfig
      exporters: [postgres]
  telemetry:
    logs:
      level: info
`)
	host, port, err := net.SplitHostPort(metrics)
	if metrics == "" || err != nil {
		b.WriteString("    metrics:\n      level: none\n")
		return []byte(b.String())
	}
	fmt.Fprintf(&b, `    # The collector's own metrics, for Prometheus: a fan-out exporter that
    # drops shows in otelcol_exporter_send_failed_spans_total{exporter=...}.
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: %s
                port: %s
                without_type_suffix: false # counters end in _total, as the alert rules name them
`, q(host), port)
	return []byte(b.String())
}
