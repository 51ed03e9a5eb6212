package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
)

// reloader re-reads `loom serve`'s configuration file and hands it to the
// server (server.Reload): new calls get the new deployments, tenants and
// per-call timeouts, calls and streams in flight finish on the old. A file
// that does not load changes nothing. Only its own goroutine calls reload.
type reloader struct {
	path string
	// listen is serve's -listen, which overrides every version of the file.
	listen string
	srv    *server.Server
	// fileTenants is false when the tenant store, not the file, is the
	// source of tenants.
	fileTenants bool
	log         *slog.Logger
	cur         *config.Config // the configuration served
}

// watch reloads on every SIGHUP until ctx ends.
func (r *reloader) watch(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = r.reload() // logged
			}
		}
	}()
}

// reload loads the file and applies it, logging the outcome: the errors
// (each naming its field) when the file is refused, the fields that need a
// restart when they changed, the tenants quarantined in store mode.
func (r *reloader) reload() error {
	cfg, err := config.Load(r.path)
	if err != nil {
		r.log.Error("configuration reload refused; still serving the previous configuration",
			"file", r.path, "error", err)
		return err
	}
	if r.listen != "" {
		cfg.Listen = r.listen
	}
	if fields := server.NeedsRestart(r.cur, cfg); len(fields) > 0 {
		r.log.Warn("configuration reload: these changes need a restart and are not applied",
			"file", r.path, "fields", strings.Join(fields, ","))
	}
	err = r.srv.Reload(cfg, r.fileTenants)
	if _, quarantined := errors.AsType[*server.QuarantineError](err); err != nil && !quarantined {
		r.log.Error("configuration reload refused; still serving the previous configuration",
			"file", r.path, "error", err)
		return fmt.Errorf("reload %s: %w", r.path, err)
	}
	r.cur = cfg
	if err != nil {
		r.log.Warn("configuration reloaded; tenants quarantined: not served until fixed",
			"file", r.path, "reason", err)
		return nil
	}
	tenants := "file"
	if !r.fileTenants {
		tenants = "store"
	}
	r.log.Info("configuration reloaded", "file", r.path, "deployments", len(cfg.Deployments), "tenants_from", tenants)
	return nil
}
