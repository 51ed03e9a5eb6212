package postgresexporter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/loom-gateway/loom/proxy/ledger"
	"github.com/loom-gateway/loom/proxy/schema"
)

// maintenanceInterval is how often partitions ahead are created and
// retention is applied. Days are long; an hour is plenty.
const maintenanceInterval = time.Hour

// maintenanceTimeout bounds one round of maintenance.
const maintenanceTimeout = 30 * time.Second

// retryInterval is how soon maintenance runs again after it failed.
const retryInterval = time.Minute

// pgExporter writes spans to Postgres. push may run concurrently (one call per
// sending-queue consumer); every field it shares is guarded.
type pgExporter struct {
	cfg    *Config
	logger *zap.Logger
	check  checker
	now    func() time.Time

	pool *pgxpool.Pool

	setupMu sync.Mutex
	ready   bool // schema migrated and the current partitions made

	daysMu sync.Mutex
	days   map[time.Time]bool // days known to have partitions

	stop       context.CancelFunc
	done       chan struct{}
	cpDone     chan struct{} // the checkpoint loop's; nil when checkpoints are off
	rollupDone chan struct{} // the usage rollup loop's

	// rollupEvery is rollupInterval, shorter in tests.
	rollupEvery time.Duration

	inserted, duplicates, deadLettered, ledgered metric.Int64Counter
	rolledUp                                     metric.Int64Counter
}

func newExporter(cfg *Config, set exporter.Settings) (*pgExporter, error) {
	meter := set.TelemetrySettings.MeterProvider.Meter(scopeName)
	e := &pgExporter{
		cfg:    cfg,
		logger: set.Logger,
		check:  checker{maxBytes: cfg.MaxAttributeBytes},
		now:    time.Now,
		days:   map[time.Time]bool{},

		rollupEvery: rollupInterval,
	}
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{span}"))
		errs = append(errs, err)
		return c
	}
	e.inserted = counter("loom_exporter_spans_inserted", "Spans inserted into loom.spans.")
	e.duplicates = counter("loom_exporter_spans_duplicates", "Spans already in loom.spans (a retried or replayed batch), skipped.")
	e.deadLettered = counter("loom_exporter_spans_dead_lettered", "Spans that could never be inserted, stored in loom.dead_letters.")
	e.ledgered = counter("loom_exporter_ledger_entries", "Call entries appended to the audit ledger (loom.ledger_entries).")
	var err error
	e.rolledUp, err = meter.Int64Counter("loom_exporter_usage_hours_rolled_up",
		metric.WithDescription("Hours recomputed into the hourly rollups of usage and of the dashboards' panels (loom.usage_hourly, loom.panel_hourly)."), metric.WithUnit("{hour}"))
	errs = append(errs, err)
	return e, errors.Join(errs...)
}

// start connects and prepares the schema. Postgres being down is not fatal:
// the collector must keep accepting (and persisting) spans, so setup is
// retried by every push and by the maintenance loop until it succeeds.
func (e *pgExporter) start(ctx context.Context, _ component.Host) error {
	// A key that is configured but does not load is a broken config; no
	// key at all means no checkpoints (the chains are still written).
	key, err := ledger.LoadKey(e.cfg.Ledger.SigningKeyFile)
	switch {
	case errors.Is(err, ledger.ErrNoKey):
		e.logger.Warn("ledger checkpoints off: no signing key (set ledger.signing_key_file or $" + ledger.EnvKey + ")")
		key = nil
	case err != nil:
		return fmt.Errorf("ledger signing key: %w", err)
	}
	pc, err := pgxpool.ParseConfig(string(e.cfg.Endpoint))
	if err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	pc.MaxConns = e.cfg.MaxConns
	if e.pool, err = pgxpool.NewWithConfig(context.WithoutCancel(ctx), pc); err != nil {
		return fmt.Errorf("postgres pool: %w", err)
	}
	// The first round of maintenance runs here (setup, partitions ahead,
	// retention), so a healthy Postgres is ready before the first push.
	// Bounded: an unreachable host must not hold up the collector's start.
	mctx, cancel := context.WithTimeout(ctx, maintenanceTimeout)
	defer cancel()
	if err := e.maintain(mctx); err != nil {
		e.logger.Warn("postgres not ready; spans stay queued until it is", zap.Error(err))
	}
	bg, stop := context.WithCancel(context.Background())
	e.stop, e.done = stop, make(chan struct{})
	go e.maintainLoop(bg)
	e.rollupDone = make(chan struct{})
	go e.rollupLoop(bg, e.rollupDone)
	if key != nil {
		e.cpDone = make(chan struct{})
		go e.checkpointLoop(bg, key, e.cpDone)
	}
	return nil
}

func (e *pgExporter) shutdown(context.Context) error {
	if e.stop != nil {
		e.stop()
		<-e.done
		<-e.rollupDone
		if e.cpDone != nil {
			<-e.cpDone
		}
	}
	if e.pool != nil {
		e.pool.Close()
	}
	return nil
}

// setup migrates the schema (when configured) and makes the partitions from
// yesterday to partitions_ahead days ahead, once.
func (e *pgExporter) setup(ctx context.Context) error {
	e.setupMu.Lock()
	defer e.setupMu.Unlock()
	if e.ready {
		return nil
	}
	if e.cfg.SchemaMigrations {
		if err := schema.Migrate(ctx, e.pool); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if err := e.ensureAhead(ctx); err != nil {
		return err
	}
	e.ready = true
	return nil
}

// ensureAhead makes the partitions from yesterday to partitions_ahead days
// ahead.
func (e *pgExporter) ensureAhead(ctx context.Context) error {
	now := e.now()
	from, to := now.AddDate(0, 0, -1), now.AddDate(0, 0, e.cfg.PartitionsAhead)
	if err := schema.EnsurePartitions(ctx, e.pool, from, to); err != nil {
		return fmt.Errorf("ensure partitions: %w", err)
	}
	e.daysMu.Lock()
	defer e.daysMu.Unlock()
	for d := schema.Day(from); !d.After(schema.Day(to)); d = d.AddDate(0, 0, 1) {
		e.days[d] = true
	}
	return nil
}

// maintainLoop runs maintenance every maintenanceInterval, and every
// retryInterval after a failure.
func (e *pgExporter) maintainLoop(ctx context.Context) {
	defer close(e.done)
	t := time.NewTimer(maintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := maintenanceInterval
		mctx, cancel := context.WithTimeout(ctx, maintenanceTimeout)
		err := e.maintain(mctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			e.logger.Warn("partition maintenance failed", zap.Error(err), zap.Duration("retry_in", retryInterval))
			next = retryInterval
		}
		t.Reset(next)
	}
}

// maintain keeps partitions ready ahead and drops those past retention.
func (e *pgExporter) maintain(ctx context.Context) error {
	if err := e.setup(ctx); err != nil {
		return err
	}
	if err := e.ensureAhead(ctx); err != nil {
		return err
	}
	if e.cfg.Retention <= 0 {
		return nil
	}
	cutoff := e.now().Add(-e.cfg.Retention)
	dropped, err := schema.DropPartitionsBefore(ctx, e.pool, cutoff)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	if len(dropped) > 0 {
		e.logger.Info("retention dropped partitions", zap.Strings("partitions", dropped))
	}
	e.forgetDays(func(d time.Time) bool { return !d.AddDate(0, 0, 1).After(cutoff) })
	return nil
}

func (e *pgExporter) forgetDays(drop func(time.Time) bool) {
	e.daysMu.Lock()
	defer e.daysMu.Unlock()
	for d := range e.days {
		if drop(d) {
			delete(e.days, d)
		}
	}
}

// ensureDays makes the partitions the rows need that are not known yet.
func (e *pgExporter) ensureDays(ctx context.Context, rows []spanRow) error {
	var missing []time.Time
	e.daysMu.Lock()
	for i := range rows {
		if d := schema.Day(rows[i].start); !e.days[d] && !slices.Contains(missing, d) {
			missing = append(missing, d)
		}
	}
	e.daysMu.Unlock()
	for _, d := range missing {
		if err := schema.EnsurePartitions(ctx, e.pool, d, d); err != nil {
			return fmt.Errorf("ensure partitions for %s: %w", d.Format(time.DateOnly), err)
		}
		e.daysMu.Lock()
		e.days[d] = true
		e.daysMu.Unlock()
	}
	return nil
}

// push is the exporterhelper's ConsumeTracesFunc. An error it returns is
// retried unless permanent; a batch whose spans are bad for good returns nil
// with those spans in loom.dead_letters.
func (e *pgExporter) push(ctx context.Context, td ptrace.Traces) error {
	if err := e.setup(ctx); err != nil {
		return err
	}
	rows, dead := e.convert(td, e.now())
	if err := e.ensureDays(ctx, rows); err != nil {
		return err
	}
	st, err := e.write(ctx, rows, dead)
	if errors.Is(err, errMissingPartition) {
		e.forgetDays(func(time.Time) bool { return true })
	}
	if err != nil {
		return err
	}
	e.inserted.Add(ctx, st.inserted)
	e.duplicates.Add(ctx, st.duplicates)
	e.deadLettered.Add(ctx, st.deadLettered)
	e.ledgered.Add(ctx, st.ledgered)
	e.logger.Debug("spans written", zap.Int64("inserted", st.inserted),
		zap.Int64("duplicates", st.duplicates), zap.Int64("dead_lettered", st.deadLettered),
		zap.Int64("ledgered", st.ledgered))
	return nil
}
