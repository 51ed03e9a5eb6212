package postgresexporter

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/loom-gateway/loom/proxy/rollup"
)

// rollupInterval is how often the hourly rollups of usage and of the
// dashboards' panels (proxy/rollup) take the hours that writes marked.
// Readers are exact without it (a marked hour is read from the spans),
// only slower: it bounds how long an ended hour stays slow to read.
const rollupInterval = 30 * time.Second

// rollupTimeout bounds one refresh; what it leaves, the next one takes. It
// is long: an hour's recomputing reads every span of the hour (about 0.3 s
// for 6,000 spans on 2 cores, both rollups), and a refresh cut off before
// its first batch commits makes no progress at all. Ticks that fall during
// a refresh are dropped.
const rollupTimeout = 5 * time.Minute

// rollupLoop refreshes the rollup every e.rollupEvery until ctx ends. One
// refresher runs at a time across the database (rollup.Refresh's lock), so
// collector replicas may all run it.
func (e *pgExporter) rollupLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(e.rollupEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, rollupTimeout)
		err := e.setup(rctx)
		var n int
		if err == nil {
			n, err = rollup.Refresh(rctx, e.pool, e.now())
		}
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			e.logger.Warn("usage rollup refresh failed", zap.Error(err))
		case n > 0:
			e.rolledUp.Add(ctx, int64(n))
			e.logger.Debug("usage rollup refreshed", zap.Int("hours", n))
		}
	}
}
