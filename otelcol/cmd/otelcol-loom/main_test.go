package main

import (
	"testing"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/loom-gateway/loom/otelcol/distribution"
)

// With no --config, the command resolves the embedded default.
func TestCommand_NoConfigFlag_UsesEmbeddedDefault(t *testing.T) {
	t.Setenv("LOOM_OTELCOL_STORAGE", t.TempDir())
	cmd := otelcol.NewCommand(distribution.Settings(version, defaultConfig))
	cmd.SetArgs([]string{"validate"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("validate with the embedded config: %v", err)
	}
}
