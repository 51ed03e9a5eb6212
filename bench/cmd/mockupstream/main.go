// Command mockupstream serves the fake OpenAI / Azure OpenAI / Anthropic provider of package
// bench/mockupstream (chat, completions, embeddings, the Responses API, Anthropic Messages), for k6
// scenarios, the bench harness and local runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/loom-gateway/loom/bench/mockupstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := Main(ctx, os.Args[1:], os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "mockupstream:", err)
		stop()
		os.Exit(1)
	}
}

// Main runs the mock until ctx is cancelled, then drains in-flight responses for up to -grace.
func Main(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mockupstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg   mockupstream.Config
		addr  = fs.String("addr", "127.0.0.1:8090", "listen address")
		grace = fs.Duration("grace", 10*time.Second, "how long shutdown waits for in-flight responses")
	)
	fs.StringVar(&cfg.APIKey, "api-key", "", "if set, required as Bearer token (OpenAI paths) or api-key header (Azure paths)")
	fs.StringVar(&cfg.ReplayDir, "replay-dir", "", "directory that x-mock-replay names are resolved against")
	fs.DurationVar(&cfg.Defaults.Latency, "latency", 0, "default delay before responding (before headers on streams)")
	fs.DurationVar(&cfg.Defaults.TTFT, "ttft", 0, "default delay between stream headers and the first event")
	fs.IntVar(&cfg.Defaults.Chunks, "chunks", 5, "default number of content chunks (completion tokens) per choice")
	fs.DurationVar(&cfg.Defaults.ChunkDelay, "chunk-delay", 0, "default delay between stream events")
	fs.IntVar(&cfg.Defaults.Status, "status", 0, "if >= 400, answer every request with this error status")
	fs.IntVar(&cfg.Defaults.ResetAfter, "reset-after", 0, "if > 0, reset stream connections after this many events")
	fs.IntVar(&cfg.LogLimit, "log-limit", 0, "requests kept for GET /_mock/requests (0: 10000, negative: all)")
	fs.IntVar(&cfg.ResponsesKept, "responses-kept", 0, "responses kept for GET/DELETE /v1/responses/{id} (0: 4096)")
	fail := fs.String("fail", "", `fail attempts: "500", "429", "reset", "timeout" or "reset-after-first"`)
	fs.IntVar(&cfg.Fail.Count, "fail-count", 0, "with -fail: how many attempts per x-mock-fail-key fail (0: all)")
	fs.StringVar(&cfg.Fail.RetryAfter, "fail-retry-after", "", "Retry-After of injected 429s (default 1)")
	fs.DurationVar(&cfg.Fail.Delay, "fail-delay", 0, `how long -fail timeout holds the response head (0: 10s)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Fail.Mode = mockupstream.FailMode(*fail)
	if _, ok := mockupstream.ParseFailMode(*fail); *fail != "" && !ok {
		return fmt.Errorf("-fail %q: want 500, 429, reset, timeout or reset-after-first", *fail)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	srv := mockupstream.New(cfg)
	fmt.Fprintf(stderr, "mockupstream: listening on http://%s\n", ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	return <-served
}
