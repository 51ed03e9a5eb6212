// Command loombench is `make bench`: Loom's end-to-end overhead, measured
// against the mock upstream with the whole pipeline on, and gated.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
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
	mode := fs.String("mode", "quick", "tiny (proves it works), quick (about a minute), full, or streams (the long-streams phase alone)")
	var o harness.Options
	fs.StringVar(&o.Bin, "bin", "bin", "directory with loom, mockupstream and otelcol-loom")
	fs.StringVar(&o.Out, "out", "bench/results", "where the timestamped results folder is made")
	fs.StringVar(&o.Gates, "gates", "bench/gates.yaml", "gates file")
	fs.DurationVar(&o.AddedLatency, "debug-added-latency", 0, "debug: make Loom slower by this much per call")
	fs.BoolVar(&o.Tracing, "tracing", false, "streams mode: trace through the whole pipeline (otelcol-loom, Postgres); the other modes always measure both")
	fs.IntVar(&o.PipelineNice, "pipeline-nice", 10, "niceness of the span pipeline (otelcol-loom, Postgres), which shares the machine with Loom; 0: Loom's own")
	fs.BoolVar(&o.Profile, "profile", false, "save a CPU profile of Loom while the long streams are all open (loom-streams.cpu.pprof beside the report)")
	fs.BoolVar(&o.PipelineIdle, "pipeline-idle", false, "run the span pipeline (otelcol-loom, Postgres) under SCHED_IDLE: only on CPU time nothing else wants")
	fs.BoolVar(&o.NoBilling, "no-billing", false, "leave out the bench models' prices and the tenants' and keys' budgets (in memory), which are on by default")
	procs := fs.Int("loom-procs", -1, "GOMAXPROCS for Loom (0: all cores; default 1 in streams mode, all cores otherwise)")
	fs.IntVar(&o.Streams.Streams, "streams", 0, "long streams: how many at once (default: the mode's; the issue's full size is 5000)")
	fs.DurationVar(&o.Streams.Duration, "stream-duration", 0, "long streams: how long each lasts (the issue's: 30s)")
	fs.DurationVar(&o.Streams.Interval, "stream-interval", 0, "long streams: time between two events (default 100ms)")
	fs.DurationVar(&o.Streams.Ramp, "stream-ramp", 0, "long streams: time over which they are opened")
	only := fs.String("only", "", "comma-separated scenario names: run just those of the mode (and no long-streams phase unless \"long-streams\" is named)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	m, ok := harness.Modes[*mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "loombench: %v %q (tiny, quick, full)\n", harness.ErrUnknownMode, *mode)
		return 2
	}
	if *only != "" {
		var err error
		if m, err = m.Only(strings.Split(*only, ",")); err != nil {
			fmt.Fprintf(os.Stderr, "loombench: -only: %v\n", err)
			return 2
		}
	}
	o.Mode, o.Log, o.LoomProcs = m, os.Stdout, *procs
	if *procs < 0 {
		o.LoomProcs = 0
		if m.StreamsOnly {
			// The measure: Loom on one core, the load generator
			// and the mock on the others.
			o.LoomProcs = 1
		}
	}
	start := time.Now()
	_, _, err := harness.Run(ctx, o)
	if err != nil { // a failed gate (harness.ErrGateFailed) included: the report says which
		fmt.Fprintf(os.Stderr, "loombench: %v\n", err)
		return 1
	}
	fmt.Printf("bench: done in %v\n", time.Since(start).Round(time.Second))
	return 0
}
