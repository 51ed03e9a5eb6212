package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/otelcol/otelcoltest"
	"go.opentelemetry.io/collector/pipeline"

	"github.com/loom-gateway/loom/otelcol/distribution"
)

// uncomment returns the default config with the commented block that
// starts at the line "<indent># <start>" uncommented: that line and the
// ones after it that are commented at a deeper indentation.
func uncomment(t *testing.T, cfg, start string) string {
	t.Helper()
	lines := strings.Split(cfg, "\n")
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " ")
		if !strings.HasPrefix(trimmed, "# "+start) {
			continue
		}
		indent := l[:len(l)-len(trimmed)]
		lines[i] = indent + strings.TrimPrefix(trimmed, "# ")
		for j := i + 1; j < len(lines) && strings.HasPrefix(lines[j], indent+"#   "); j++ {
			lines[j] = indent + strings.TrimPrefix(lines[j], indent+"# ")
		}
		return strings.Join(lines, "\n")
	}
	t.Fatalf("no commented %q in the default config", start)
	return ""
}

// The commented example of another backend in the default config is
// valid as it stands once uncommented: TLS said explicitly, a token from
// the environment, and a queue that never pushes back on the receiver
// Postgres's pipeline shares.
func TestDefaultConfig_CommentedBackendExample_ValidWhenUncommented(t *testing.T) {
	t.Setenv("LOOM_OTELCOL_STORAGE", t.TempDir())
	t.Setenv("LOOM_OTLP_AUTHORIZATION", "Bearer from-env")
	cfg := uncomment(t, uncomment(t, defaultConfig, "otlp_grpc/backend:"), "traces/otlp:")
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := otelcol.NewCommand(distribution.Settings(version, defaultConfig))
	cmd.SetArgs([]string{"validate", "--config", path})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("validate the uncommented example: %v\n%s", err, cfg)
	}

	factories, err := distribution.Components()
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcoltest.LoadConfigAndValidate(path, factories)
	if err != nil {
		t.Fatal(err)
	}
	id := component.MustNewIDWithName("otlp_grpc", "backend")
	exp, ok := c.Exporters[id].(*otlpexporter.Config)
	if !ok {
		t.Fatalf("exporter %s is %T", id, c.Exporters[id])
	}
	if exp.ClientConfig.TLS.Insecure {
		t.Error("the example sends plaintext: TLS must be its default")
	}
	if v, ok := exp.ClientConfig.Headers.Get("authorization"); !ok || string(v) != "Bearer from-env" {
		t.Errorf("authorization header = %q, want it from LOOM_OTLP_AUTHORIZATION", v)
	}
	if q := exp.QueueConfig.Get(); !exp.QueueConfig.HasValue() || q.BlockOnOverflow || q.WaitForResult {
		t.Errorf("sending_queue = %+v, want one that never blocks the receiver", q)
	}
	p := c.Service.Pipelines[pipeline.NewIDWithName(pipeline.SignalTraces, "otlp")]
	if p == nil || !slices.Equal(p.Exporters, []component.ID{id}) {
		t.Fatalf("traces/otlp = %+v, want it exporting to %s", p, id)
	}
	for _, proc := range p.Processors {
		if proc.Type().String() != "batch" {
			t.Errorf("traces/otlp processors = %v: only batch, which never refuses data", p.Processors)
		}
	}
}
