// Command loombench is `make bench`: Loom's end-to-end overhead, measured
// against the mock upstream with the whole pipeline on, and gated.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/loom-gateway/loom/bench/harness"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is main's body, so the deferred stop runs before os.Exit (which skips
// deferred calls) and a second Ctrl-C kills the process again.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("loombench", flag.ContinueOnError)
	mode := fs.String("mode", "quick", "tiny (proves it works), quick (about a minute) or full")
	var o harness.Options
	fs.StringVar(&o.Bin, "bin", "bin", "directory with loom, mockupstream and otelcol-loom")
	fs.StringVar(&o.Out, "out", "bench/results", "where the timestamped results folder is made")
	fs.StringVar(&o.Gates, "gates", "bench/gates.yaml", "gates file")
	fs.DurationVar(&o.AddedLatency, "debug-added-latency", 0, "debug: make Loom slower by this much per call")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	m, ok := harness.Modes[*mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "loombench: %v %q (tiny, quick, full)\n", harness.ErrUnknownMode, *mode)
		return 2
	}
	o.Mode, o.Log = m, os.Stdout
	start := time.Now()
	_, _, err := harness.Run(ctx, o)
	if err != nil { // a failed gate (harness.ErrGateFailed) included: the report says which
		fmt.Fprintf(os.Stderr, "loombench: %v\n", err)
		return 1
	}
	fmt.Printf("bench: done in %v\n", time.Since(start).Round(time.Second))
	return 0
}
