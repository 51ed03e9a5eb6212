package postgresexporter

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// Config is the postgres exporter's configuration.
type Config struct {
	exporterhelper.TimeoutConfig `mapstructure:",squash"`
	// QueueConfig is the sending queue. Point its storage at a file_storage
	// extension: the queue is then written to disk before the receiver
	// acknowledges, and a killed collector resumes from it. Batch here
	// (sending_queue.batch), not with the batch processor, which
	// acknowledges before anything is on disk.
	QueueConfig configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	// RetryConfig defaults to retrying forever (max_elapsed_time 0): a
	// Postgres outage delays spans, it never drops them.
	RetryConfig configretry.BackOffConfig `mapstructure:"retry_on_failure"`

	// Endpoint is the postgres:// URL of the database. Opaque: it may hold a
	// password, so it is never logged.
	Endpoint configopaque.String `mapstructure:"endpoint"`
	// SchemaMigrations applies the embedded migrations at start.
	SchemaMigrations bool `mapstructure:"schema_migrations"`
	// Retention is how long spans (and dead letters, whose payloads hold
	// captured content) are kept: daily partitions entirely older than this
	// are dropped every hour, with the dead letters received before them.
	// 0 keeps everything forever.
	Retention time.Duration `mapstructure:"retention"`
	// PartitionsAhead is how many days of partitions are kept ready ahead of
	// today. Spans starting after them are dead letters (a broken clock).
	PartitionsAhead int `mapstructure:"partitions_ahead"`
	// MaxConns caps the connection pool; one push holds one connection.
	MaxConns int32 `mapstructure:"max_conns"`
	// MaxAttributeBytes is the largest single string or bytes value (any
	// attribute, content included) a span may hold before it is a dead letter.
	MaxAttributeBytes int `mapstructure:"max_attribute_bytes"`
	// Ledger configures the audit ledger's checkpoints. The ledger itself
	// is always written: each stored CLIENT span with a tenant becomes an
	// entry of its tenant's chain.
	Ledger LedgerConfig `mapstructure:"ledger"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// LedgerConfig is the ledger's checkpointing: every CheckpointInterval the
// exporter signs the heads of all chains with an Ed25519 key, read from
// SigningKeyFile, or from $LOOM_LEDGER_KEY when no file is named (the
// base64 of a 32-byte seed; `loom audit keygen` makes one). With neither,
// no checkpoints are made.
type LedgerConfig struct {
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
	SigningKeyFile     string        `mapstructure:"signing_key_file"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate reports every bad field of its own at once; the collector
// validates the embedded timeout, queue and retry configs itself.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	if c.Endpoint == "" {
		bad("endpoint", "must be set to a postgres:// URL")
	} else if u, err := url.Parse(string(c.Endpoint)); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The URL itself is not repeated: it may hold a password.
		bad("endpoint", "must be a postgres:// or postgresql:// URL")
	} else if _, err := pgxpool.ParseConfig(string(c.Endpoint)); err != nil {
		bad("endpoint", "not a valid postgres URL")
	}
	if c.Retention < 0 {
		bad("retention", "must not be negative (0 keeps spans forever), got %s", c.Retention)
	}
	if c.PartitionsAhead < 1 {
		bad("partitions_ahead", "must be at least 1, got %d", c.PartitionsAhead)
	}
	if c.MaxConns < 1 {
		bad("max_conns", "must be at least 1, got %d", c.MaxConns)
	}
	if c.MaxAttributeBytes < 1 {
		bad("max_attribute_bytes", "must be at least 1, got %d", c.MaxAttributeBytes)
	}
	if c.Ledger.CheckpointInterval < time.Second {
		bad("ledger.checkpoint_interval", "must be at least 1s, got %s", c.Ledger.CheckpointInterval)
	}
	return errors.Join(errs...)
}
