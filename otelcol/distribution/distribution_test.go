package distribution_test

import (
	"os"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtelemetry"
	"go.opentelemetry.io/collector/otelcol/otelcoltest"
	"go.opentelemetry.io/collector/pipeline"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/loom-gateway/loom/otelcol/distribution"
	"github.com/loom-gateway/loom/otelcol/postgresexporter"
)

func TestComponents_EveryListedFactory(t *testing.T) {
	f, err := distribution.Components()
	if err != nil {
		t.Fatal(err)
	}
	has := func(kind string, got []component.Type, want ...string) {
		for _, w := range want {
			if !slices.Contains(got, component.MustNewType(w)) {
				t.Errorf("%s %q missing; have %v", kind, w, got)
			}
		}
	}
	var receivers, processors, exporters, extensions []component.Type
	for k := range f.Receivers {
		receivers = append(receivers, k)
	}
	for k := range f.Processors {
		processors = append(processors, k)
	}
	for k := range f.Exporters {
		exporters = append(exporters, k)
	}
	for k := range f.Extensions {
		extensions = append(extensions, k)
	}
	has("receiver", receivers, "otlp")
	has("processor", processors, "batch", "memory_limiter")
	// otlp and otlphttp are the old names of otlp_grpc and otlp_http; both work.
	has("exporter", exporters, "postgres", "otlp", "otlp_grpc", "otlphttp", "otlp_http", "debug")
	has("extension", extensions, "file_storage", "health_check")
	if f.Telemetry == nil {
		t.Error("no telemetry factory: the collector would refuse to start")
	}
}

// The embedded default config is this file; it must load and validate with
// nothing in the environment, and keep the batch processor out of the
// Postgres pipeline (see the note at its top).
func TestDefaultConfig_Validates(t *testing.T) {
	t.Setenv("LOOM_DATABASE_URL", "") // restored after the test...
	os.Unsetenv("LOOM_DATABASE_URL")  // ...and unset (empty does not take the default)
	t.Setenv("LOOM_OTELCOL_STORAGE", t.TempDir())
	f, err := distribution.Components()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := otelcoltest.LoadConfigAndValidate("../cmd/otelcol-loom/config.yaml", f)
	if err != nil {
		t.Fatal(err)
	}
	pg, ok := cfg.Exporters[component.NewID(postgresexporter.Type)].(*postgresexporter.Config)
	if !ok {
		t.Fatal("no postgres exporter in the default config")
	}
	if got, want := string(pg.Endpoint), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"; got != want {
		t.Errorf("endpoint with LOOM_DATABASE_URL empty = %q, want %q", got, want)
	}
	q := pg.QueueConfig.Get()
	if q == nil || q.StorageID == nil || q.StorageID.String() != "file_storage" || !q.Batch.HasValue() {
		t.Errorf("sending queue = %+v, want persistent (file_storage) with batching", q)
	}
	if !pg.RetryConfig.Enabled || pg.RetryConfig.MaxElapsedTime != 0 {
		t.Errorf("retry = %+v, want enabled, never giving up", pg.RetryConfig)
	}
	p, ok := cfg.Service.Pipelines[pipeline.NewIDWithName(pipeline.SignalTraces, "postgres")]
	if !ok {
		t.Fatal("no traces/postgres pipeline")
	}
	for _, id := range p.Processors {
		if id.Type().String() == "batch" {
			t.Error("traces/postgres has the batch processor: it acks before the persistent queue has the data")
		}
	}
	// The collector's own metrics, for Prometheus on its conventional port.
	tel, ok := cfg.Service.Telemetry.(*otelconftelemetry.Config)
	if !ok || tel.Metrics.Level == configtelemetry.LevelNone || len(tel.Metrics.Readers) != 1 ||
		tel.Metrics.Readers[0].Pull == nil || tel.Metrics.Readers[0].Pull.Exporter.Prometheus == nil {
		t.Fatalf("service.telemetry.metrics = %+v, want a Prometheus pull reader", cfg.Service.Telemetry)
	}
	if prom := tel.Metrics.Readers[0].Pull.Exporter.Prometheus; prom.Port == nil || *prom.Port != 8888 {
		t.Errorf("the collector's metrics port = %v, want 8888", prom.Port)
	}
}
