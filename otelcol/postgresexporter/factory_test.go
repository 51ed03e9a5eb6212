package postgresexporter

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pipeline"
)

func TestNewFactory_CreatesTracesExporter(t *testing.T) {
	f := NewFactory()
	if f.Type() != component.MustNewType("postgres") {
		t.Errorf("type = %s, want postgres", f.Type())
	}
	if got := f.TracesStability(); got != component.StabilityLevelAlpha {
		t.Errorf("traces stability = %s, want alpha", got)
	}
	cfg := testConfig("postgres://postgres@127.0.0.1:1/postgres")
	exp, err := f.CreateTraces(context.Background(), nopSettings(), cfg)
	if err != nil || exp == nil {
		t.Fatalf("CreateTraces = %v, %v", exp, err)
	}
	// Creating connects to nothing; shutting down a never started exporter
	// must be fine too (the collector does it when another component fails).
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown before Start: %v", err)
	}
	if _, err := f.CreateMetrics(context.Background(), nopSettings(), cfg); err == nil {
		t.Errorf("CreateMetrics succeeded: the exporter is for %s only", pipeline.SignalTraces)
	}
}
