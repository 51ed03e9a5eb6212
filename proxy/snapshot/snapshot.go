// Package snapshot keeps the gateway's tenants in step with the tenant
// store: it loads a fresh snapshot whenever the store says something changed
// (and on a poll), swaps it in whole, and when the store cannot be read it
// keeps serving the last good snapshot and says so. It never blocks a
// request: the gateway reads an in-memory snapshot only.
package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/loom-gateway/loom/proxy/config"
)

// Source is the tenant store.
type Source interface {
	// Load reads the whole snapshot.
	Load(ctx context.Context) ([]config.Tenant, error)
	// Watch calls changed whenever the snapshot may have changed, and at
	// least every poll, until ctx ends.
	Watch(ctx context.Context, poll time.Duration, changed func())
}

// Target is the gateway.
type Target interface {
	SetTenants(tenants []config.Tenant) error
	SetDegraded(reason string)
}

// Follow reloads dst from src on every change until ctx ends. The first
// snapshot must already be in dst (the gateway does not start without one).
func Follow(ctx context.Context, src Source, dst Target, poll time.Duration, log *slog.Logger) {
	var lastGood time.Time = time.Now()
	reload := func() {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		tenants, err := src.Load(lctx)
		if err == nil {
			err = dst.SetTenants(tenants)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			reason := fmt.Sprintf("tenant store unreadable; serving the snapshot of %s", lastGood.UTC().Format(time.RFC3339))
			dst.SetDegraded(reason)
			log.Warn("tenant snapshot not refreshed", "error", err, "serving_since", lastGood)
			return
		}
		lastGood = time.Now()
		dst.SetDegraded("")
	}
	src.Watch(ctx, poll, reload)
}
