// Command otelcol-loom is Loom's OpenTelemetry Collector. With no --config
// it runs the embedded config.yaml (OTLP on loopback into the Postgres of
// LOOM_DATABASE_URL); --config replaces it.
package main

import (
	_ "embed"
	"os"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/loom-gateway/loom/otelcol/distribution"
)

//go:embed config.yaml
var defaultConfig string

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The command handles SIGINT/SIGTERM (graceful shutdown) and prints its
	// own errors.
	if err := otelcol.NewCommand(distribution.Settings(version, defaultConfig)).Execute(); err != nil {
		os.Exit(1)
	}
}
