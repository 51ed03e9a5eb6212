// Package postgresexporter is an OpenTelemetry Collector exporter that
// writes spans into Loom's Postgres schema (see proxy/schema): one row per
// span in loom.spans with Loom's attributes in typed columns, events in
// loom.span_events, prompt and completion content in loom.span_content.
//
// Attributes without a column go to spans.attributes (jsonb); the
// resource's attributes go to their own spans.resource column rather than
// under a key of attributes, so that no span attribute can collide with it.
//
// It must never lose or duplicate a span. Inserts are idempotent on
// (trace_id, span_id, start_time), so retries and replays add nothing;
// connection errors are returned for the exporterhelper to retry (forever,
// by default); spans that can never be inserted go to loom.dead_letters,
// re-encoded as OTLP so they can be replayed, never dropped.
package postgresexporter

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// Type is the exporter's name in a collector config.
var Type = component.MustNewType("postgres")

const (
	stability = component.StabilityLevelAlpha
	scopeName = "github.com/loom-gateway/loom/otelcol/postgresexporter"
)

// NewFactory returns the factory of the postgres exporter (traces only).
func NewFactory() exporter.Factory {
	return exporter.NewFactory(Type, createDefaultConfig, exporter.WithTraces(createTraces, stability))
}

func createDefaultConfig() component.Config {
	retry := configretry.NewDefaultBackOffConfig()
	retry.MaxElapsedTime = 0 // never give up: an outage delays, never drops

	queue := exporterhelper.NewDefaultQueueConfig()
	batch := exporterhelper.NewDefaultBatchConfig()
	batch.MinSize, batch.MaxSize = 1000, 5000
	queue.Batch = configoptional.Some(batch)

	timeout := exporterhelper.NewDefaultTimeoutConfig()
	timeout.Timeout = 30 * time.Second

	return &Config{
		TimeoutConfig:     timeout,
		QueueConfig:       configoptional.Some(queue),
		RetryConfig:       retry,
		SchemaMigrations:  true,
		Retention:         30 * 24 * time.Hour,
		PartitionsAhead:   3,
		MaxConns:          int32(queue.NumConsumers), // one per queue consumer
		MaxAttributeBytes: 1 << 20,
		Ledger:            LedgerConfig{CheckpointInterval: 5 * time.Minute},
	}
}

func createTraces(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
	c := cfg.(*Config)
	e, err := newExporter(c, set)
	if err != nil {
		return nil, err
	}
	return exporterhelper.NewTraces(ctx, set, cfg, e.push,
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithRetry(c.RetryConfig),
		exporterhelper.WithQueue(c.QueueConfig),
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
	)
}
