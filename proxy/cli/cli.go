// Package cli is the loom command: serving the gateway and the small
// administrative subcommands. Main returns errors; only cmd/loom exits.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenant"
	"github.com/loom-gateway/loom/proxy/tracing"
)

// Version is service.version on Loom's spans; release builds set it with
// -ldflags "-X github.com/loom-gateway/loom/proxy/cli.Version=...".
var Version = "dev"

// ErrUsage marks a command line that could not be understood; the usage was
// already printed.
var ErrUsage = errors.New("usage")

const usage = `loom: an OpenAI-compatible AI gateway.

Usage:
  loom serve -config FILE [-listen ADDR] [-log-calls]   run the gateway
  loom config check -config FILE                        validate a configuration
  loom keys new                                         print a new API key and its SHA-256
  loom keys hash KEY                                    print the SHA-256 of an existing key
`

// Main runs the command in args.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(stderr, usage)
			return ErrUsage
		}
		return checkConfig(args[2:], stdout, stderr)
	case "keys":
		return keys(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "loom: unknown command %q\n\n%s", args[0], usage)
	return ErrUsage
}

// ExitCode maps Main's error to a process exit code, printing it.
func ExitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	}
	fmt.Fprintf(stderr, "loom: %v\n", err)
	return 1
}

func keys(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "new":
		key, hash, err := tenant.NewKey()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key:    %s\nsha256: %s\n\nThe key is shown once. Put the sha256 line in the config:\n  keys:\n    - id: <a name for this key>\n      sha256: %s\n", key, hash, hash)
		return nil
	case len(args) == 2 && args[0] == "hash":
		fmt.Fprintln(stdout, tenant.Hash(args[1]))
		return nil
	}
	fmt.Fprint(stderr, usage)
	return ErrUsage
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loom config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "loom.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d deployments, %d tenants)\n", *path, len(cfg.Deployments), len(cfg.Tenants))
	return nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("loom serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "loom.yaml", "configuration file")
	listen := fs.String("listen", "", "listen address (overrides the config's listen)")
	logCalls := fs.Bool("log-calls", false, "log one line per finished call")
	addedLatency := fs.Duration("debug-added-latency", 0, "debug: add this much latency inside Loom to every call")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if os.Getenv("GOGC") == "" {
		// A gateway's live heap is small and its garbage is per call: the
		// default GOGC=100 runs a collection every few MB, and each one
		// steals CPU from requests in flight. 400 trades a few MB of memory
		// for a quarter of the cycles (p99 overhead with tracing on fell
		// ~0.5 ms in make bench). GOGC in the environment still wins.
		debug.SetGCPercent(400)
	}
	opts := server.Options{Logger: log, AddedLatency: *addedLatency}
	var sinks []call.Sink
	if *logCalls {
		sinks = append(sinks, call.SinkFunc(func(r *call.Record) { logRecord(log, r) }))
	}
	var tracer *tracing.Tracer
	if cfg.Tracing.Endpoint != "" {
		if tracer, err = tracing.New(ctx, cfg.Tracing, tracing.Options{ServiceVersion: Version, Logger: log}); err != nil {
			return err
		}
		sinks = append(sinks, tracer)
		opts.Metrics = tracer.AppendMetrics
		log.Info("tracing on", "endpoint", cfg.Tracing.Endpoint, "protocol", cfg.Tracing.Protocol,
			"instance_id", tracer.InstanceID())
	} else {
		log.Warn("tracing off: set tracing.endpoint to record calls as spans")
	}
	opts.Sink = call.Sinks(sinks...)
	srv, err := server.New(cfg, opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("loom serving", "addr", ln.Addr().String(), "tenants", len(cfg.Tenants), "deployments", len(cfg.Deployments))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "deadline", cfg.Timeouts.Shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; err == nil {
		err = serr
	}
	if tracer != nil {
		// The calls are over; their spans get the export timeout to reach
		// the collector, and whatever cannot is counted in the final log.
		tctx, cancel := context.WithTimeout(context.Background(), cfg.Tracing.ExportTimeout)
		defer cancel()
		err = errors.Join(err, tracer.Shutdown(tctx))
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func logRecord(log *slog.Logger, r *call.Record) {
	log.Info("call",
		"op", string(r.Operation), "tenant", r.TenantID, "key_id", r.KeyID, "model", r.Model,
		"deployment", r.Deployment, "stream", r.Stream, "status", r.Status, "outcome", string(r.Outcome),
		"error_type", r.ErrorType, "response_id", string(r.ResponseID), "response_model", string(r.ResponseModel),
		"finish_reasons", r.FinishReasons, "input_tokens", r.Usage.InputTokens, "output_tokens", r.Usage.OutputTokens,
		"chunks", r.Chunks, "ttfc", r.TimeToFirstChunk().Round(time.Microsecond),
		"duration", r.Duration().Round(time.Microsecond), "overhead", r.Overhead.Round(time.Microsecond),
		"client_disconnected", r.ClientDisconnected)
}
