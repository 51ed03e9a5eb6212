package devstack

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtelemetry"
	"go.opentelemetry.io/collector/otelcol/otelcoltest"
	"go.opentelemetry.io/collector/pipeline"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/loom-gateway/loom/otelcol/distribution"
	"github.com/loom-gateway/loom/otelcol/postgresexporter"
)

func TestRenderCollectorConfig_ValidForOtelcolLoom(t *testing.T) {
	const dbURL = "postgres://loom:secret@127.0.0.1:5432/loom?sslmode=disable"
	t.Setenv(EnvDatabaseURL, dbURL)
	dir := t.TempDir()
	storage := filepath.Join(dir, "it's otelcol") // a path that needs quoting
	b := RenderCollectorConfig("127.0.0.1:4317", "127.0.0.1:13133", storage, filepath.Join(dir, "ledger.key"), "127.0.0.1:18888")
	if bytes.Contains(b, []byte("secret")) {
		t.Fatalf("config holds the database URL:\n%s", b)
	}
	path := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	factories, err := distribution.Components()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := otelcoltest.LoadConfigAndValidate(path, factories)
	if err != nil {
		t.Fatalf("LoadConfigAndValidate: %v\n%s", err, b)
	}

	exp, ok := cfg.Exporters[component.MustNewID("postgres")].(*postgresexporter.Config)
	if !ok {
		t.Fatalf("no postgres exporter in %v", cfg.Exporters)
	}
	if exp.Ledger.SigningKeyFile != filepath.Join(dir, "ledger.key") {
		t.Errorf("ledger.signing_key_file = %q, want devstack's key", exp.Ledger.SigningKeyFile)
	}
	if string(exp.Endpoint) != dbURL {
		t.Errorf("endpoint is not %s's URL", EnvDatabaseURL)
	}
	if q := exp.QueueConfig.Get(); !exp.QueueConfig.HasValue() || q.StorageID == nil || *q.StorageID != component.MustNewID("file_storage") {
		t.Errorf("sending_queue = %+v, want it persistent in file_storage", q)
	}
	if exp.RetryConfig.MaxElapsedTime != 0 || !exp.RetryConfig.Enabled {
		t.Errorf("retry_on_failure = %+v, want it on and never giving up", exp.RetryConfig)
	}
	if _, ok := cfg.Extensions[component.MustNewID("health_check")]; !ok {
		t.Error("no health_check extension: devstack's readiness check needs it")
	}

	p := cfg.Service.Pipelines[pipeline.NewIDWithName(pipeline.SignalTraces, "postgres")]
	if p == nil {
		t.Fatalf("no traces/postgres pipeline in %v", cfg.Service.Pipelines)
	}
	// The batch processor acknowledges spans before they are on disk.
	if slices.ContainsFunc(p.Processors, func(id component.ID) bool { return id.Type().String() == "batch" }) {
		t.Errorf("processors = %v: the batch processor must not be in the Postgres pipeline", p.Processors)
	}
	if !slices.Contains(p.Exporters, component.MustNewID("postgres")) {
		t.Errorf("exporters = %v, want postgres", p.Exporters)
	}
	// The collector's own metrics, pulled by Prometheus on the port
	// devstack chose.
	tel, ok := cfg.Service.Telemetry.(*otelconftelemetry.Config)
	if !ok || tel.Metrics.Level != configtelemetry.LevelBasic || len(tel.Metrics.Readers) != 1 {
		t.Fatalf("service.telemetry = %+v, want basic metrics on one reader", cfg.Service.Telemetry)
	}
	prom := tel.Metrics.Readers[0].Pull.Exporter.Prometheus
	if prom == nil || prom.Host == nil || *prom.Host != "127.0.0.1" || prom.Port == nil || *prom.Port != 18888 {
		t.Errorf("metrics reader = %+v, want prometheus on 127.0.0.1:18888", tel.Metrics.Readers[0])
	}
	// Without an address (the bench harness), no metrics port at all.
	b = RenderCollectorConfig("127.0.0.1:4317", "127.0.0.1:13133", storage, "", "")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = otelcoltest.LoadConfigAndValidate(path, factories); err != nil {
		t.Fatalf("LoadConfigAndValidate: %v\n%s", err, b)
	}
	if tel, ok := cfg.Service.Telemetry.(*otelconftelemetry.Config); !ok || tel.Metrics.Level != configtelemetry.LevelNone {
		t.Errorf("service.telemetry = %+v, want metrics level none", cfg.Service.Telemetry)
	}
}

// The ledger key is made once, 0600, and the same key (its public half)
// comes back on every later run; a damaged one is an error naming it.
func TestLedgerKey_MadeOnceThenKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.key")
	first, err := ledgerKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want it 0600", fi, err)
	}
	again, err := ledgerKey(path)
	if err != nil || again != first || first == "" {
		t.Fatalf("second run: %q, %v; want the first run's %q", again, err, first)
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ledgerKey(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged key: %v, want an error naming %s", err, path)
	}
}
