// Package distribution is otelcol-loom's list of components: what a config
// can name, and nothing else. It is the collector's "components.go", kept
// out of package main so tests can build the same collector.
package distribution

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/loom-gateway/loom/otelcol/postgresexporter"
)

// Components returns the factories of every component otelcol-loom has.
func Components() (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		otlpreceiver.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		batchprocessor.NewFactory(),
		memorylimiterprocessor.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		postgresexporter.NewFactory(),
		otlpexporter.NewFactory(),
		otlphttpexporter.NewFactory(),
		debugexporter.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](
		filestorage.NewFactory(),
		healthcheckextension.NewFactory(),
	); err != nil {
		return f, err
	}
	f.Telemetry = otelconftelemetry.NewFactory()
	return f, nil
}

// ConfigProviders are where a config may come from: file:path, env:NAME,
// yaml:inline (the embedded default is passed this way).
func ConfigProviders() []confmap.ProviderFactory {
	return []confmap.ProviderFactory{
		fileprovider.NewFactory(),
		envprovider.NewFactory(),
		yamlprovider.NewFactory(),
	}
}

// BuildInfo describes otelcol-loom to the collector (and to --version).
func BuildInfo(version string) component.BuildInfo {
	return component.BuildInfo{
		Command:     "otelcol-loom",
		Description: "Loom's OpenTelemetry Collector: OTLP in, Loom's Postgres schema (and any OTLP backend) out",
		Version:     version,
	}
}

// Settings are the collector settings of otelcol-loom, with defaultConfig
// (YAML) used when no --config flag is given.
func Settings(version, defaultConfig string) otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: BuildInfo(version),
		Factories: Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				// A --config flag replaces these URIs (otelcol.NewCommand).
				URIs:              []string{"yaml:" + defaultConfig},
				ProviderFactories: ConfigProviders(),
				DefaultScheme:     "env",
			},
		},
	}
}
