package postgresexporter

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, name string) *Config {
		t.Helper()
		sub, err := cm.Sub(component.NewIDWithName(Type, name).String())
		if err != nil {
			t.Fatal(err)
		}
		cfg := createDefaultConfig().(*Config)
		if err := sub.Unmarshal(cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	defaults := createDefaultConfig().(*Config)
	defaults.Endpoint = "postgres://loom:secret@db.example.com:5432/loom?sslmode=require"

	full := createDefaultConfig().(*Config)
	full.Endpoint = "postgresql://loom@10.0.0.5/loom"
	full.SchemaMigrations = false
	full.Retention = 7 * 24 * time.Hour
	full.PartitionsAhead = 7
	full.MaxConns = 4
	full.MaxAttributeBytes = 64 << 10
	full.Ledger = LedgerConfig{CheckpointInterval: time.Minute, SigningKeyFile: "/etc/loom/ledger.key"}
	full.Timeout = 10 * time.Second
	storage := component.MustNewID("file_storage")
	q := full.QueueConfig.Get()
	q.NumConsumers, q.QueueSize, q.StorageID = 4, 100_000, &storage
	if err := q.Sizer.UnmarshalText([]byte("items")); err != nil {
		t.Fatal(err)
	}
	b := q.Batch.Get()
	b.FlushTimeout, b.MinSize, b.MaxSize = time.Second, 500, 2000
	full.RetryConfig.InitialInterval, full.RetryConfig.MaxInterval = time.Second, 10*time.Second

	tests := []struct {
		name    string
		want    *Config
		wantErr []string // every field the error must name
	}{
		{name: "", want: defaults},
		{name: "full", want: full},
		{name: "invalid", wantErr: []string{"endpoint", "retention", "partitions_ahead", "max_conns", "max_attribute_bytes", "ledger.checkpoint_interval", "timeout"}},
		{name: "no_endpoint", wantErr: []string{"endpoint: must be set"}},
	}
	for _, tt := range tests {
		t.Run(component.NewIDWithName(Type, tt.name).String(), func(t *testing.T) {
			cfg := load(t, tt.name)
			err := confmap.Validate(cfg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if !reflect.DeepEqual(cfg, tt.want) {
					t.Errorf("config = %+v\nwant %+v", cfg, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
			for _, field := range tt.wantErr {
				if !strings.Contains(err.Error(), field) {
					t.Errorf("error %q does not name %s", err, field)
				}
			}
		})
	}
}

// The defaults are the promises in the docs: retry forever, queue on,
// migrations on, 30s timeout, 30 days kept.
func TestCreateDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	if err := componenttest.CheckConfigStruct(cfg); err != nil {
		t.Fatal(err)
	}
	switch {
	case !cfg.RetryConfig.Enabled || cfg.RetryConfig.MaxElapsedTime != 0:
		t.Errorf("retry = %+v, want enabled and never giving up", cfg.RetryConfig)
	case !cfg.QueueConfig.HasValue() || !cfg.QueueConfig.Get().Batch.HasValue():
		t.Error("sending queue (with batching) is not on by default")
	case !cfg.SchemaMigrations || cfg.Timeout != 30*time.Second || cfg.Retention != 720*time.Hour || cfg.PartitionsAhead != 3:
		t.Errorf("defaults = %+v", cfg)
	}
	cfg.Endpoint = "postgres://localhost/loom"
	if err := confmap.Validate(cfg); err != nil {
		t.Errorf("default config with an endpoint: %v", err)
	}
}

// The endpoint may hold a password; the collector prints configs with
// opaque values masked, and Validate never repeats the URL.
func TestConfig_EndpointNeverShown(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = configopaque.String("mysql://loom:hunter2@db/loom")
	if err := cfg.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate = %v: want an error that does not show the password", err)
	}
	if s := cfg.Endpoint.String(); strings.Contains(s, "hunter2") {
		t.Errorf("endpoint prints as %q", s)
	}
}
