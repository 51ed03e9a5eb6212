// Package snapshot keeps the gateway's tenants in step with the tenant
// store: it loads a fresh snapshot whenever the store says something changed
// (and on a poll), swaps it in whole, and when the store cannot be read it
// keeps serving the last good snapshot and says so. A snapshot with a bad
// tenant is still applied (the gateway quarantines that tenant alone), and
// /readyz names the tenant, not the store. It never blocks a request: the
// gateway reads an in-memory snapshot only.
package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

// Source is the tenant store.
type Source interface {
	// Load reads the whole snapshot.
	Load(ctx context.Context) ([]tenancy.Tenant, error)
	// Watch calls changed whenever the snapshot may have changed, and at
	// least every poll, until ctx ends.
	Watch(ctx context.Context, poll time.Duration, changed func())
}

// Target is the gateway.
type Target interface {
	// SetTenants serves tenants. It applies every tenant it can, and its
	// error names those it quarantined (serving their last good version,
	// or nothing) and why: a bad row, not an unreadable store.
	SetTenants(tenants []tenancy.Tenant) error
	SetDegraded(reason string)
}

// Follow reloads dst from src on every change until ctx ends. The first
// snapshot must already be in dst (the gateway does not start without one);
// quarantined is what its SetTenants returned.
func Follow(ctx context.Context, src Source, dst Target, poll time.Duration, log *slog.Logger, quarantined error) {
	f := &follower{dst: dst, log: log, lastGood: time.Now(), quarantine: Reason(quarantined)}
	src.Watch(ctx, poll, func() {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		tenants, err := src.Load(lctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.unreadable(err)
			return
		}
		f.applied(dst.SetTenants(tenants))
	})
}

// Reason is what /readyz says about a snapshot's quarantined tenants: one
// line, each tenant with why. "" for none.
func Reason(quarantined error) string {
	if quarantined == nil {
		return ""
	}
	return strings.ReplaceAll(quarantined.Error(), "\n", "; ")
}

type follower struct {
	dst      Target
	log      *slog.Logger
	lastGood time.Time
	// quarantine is the reason of the last snapshot applied, kept so that
	// a store outage does not hide it, and so that it is logged once per
	// change rather than on every poll.
	quarantine string
}

func (f *follower) unreadable(err error) {
	reason := fmt.Sprintf("tenant store unreadable; serving the snapshot of %s", f.lastGood.UTC().Format(time.RFC3339))
	if f.quarantine != "" {
		reason += "; " + f.quarantine
	}
	f.dst.SetDegraded(reason)
	f.log.Warn("tenant snapshot not refreshed", "error", err, "serving_since", f.lastGood)
}

func (f *follower) applied(quarantined error) {
	f.lastGood = time.Now()
	reason := Reason(quarantined)
	if reason != f.quarantine {
		if reason != "" {
			f.log.Warn("tenants quarantined: serving their last good version, or not at all", "reason", reason)
		} else {
			f.log.Info("no tenant quarantined any more")
		}
		f.quarantine = reason
	}
	f.dst.SetDegraded(reason)
}
