// Package harness is `make bench`: it starts the mock upstream, Postgres,
// otelcol-loom and two Looms (tracing on and off), drives open-loop load at
// fixed rates straight to the mock and through each Loom, interleaved, and
// reports overhead percentiles, throughput, errors, Loom's CPU per 1,000
// requests and peak memory, then holds the run to the gates file. It only
// ever loads 127.0.0.1.
package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Options choose what to run and where the results go.
type Options struct {
	Mode Mode
	// Bin holds loom, mockupstream and otelcol-loom (`make build`).
	Bin string
	// Out is where a timestamped results folder is made (bench/results).
	Out string
	// Gates is the gates file (bench/gates.yaml).
	Gates string
	// AddedLatency makes Loom slower by this much per call (loom serve
	// -debug-added-latency), to prove the gates catch a regression.
	AddedLatency time.Duration
	// Log gets progress lines and the summary.
	Log io.Writer
	// Tracing turns tracing (and the pipeline behind it) on for the
	// streams mode; the other modes always measure both.
	Tracing bool
	// LoomProcs, when positive, is each Loom's GOMAXPROCS.
	LoomProcs int
	// Streams overrides the mode's long-streams sizes: each field that is
	// not zero replaces the mode's.
	Streams LongStreams
	// PipelineNice is the niceness the span pipeline (otelcol-loom and
	// Postgres) runs at; 0 leaves it at Loom's. See reniceTree.
	PipelineNice int
	// NoBilling leaves the price catalog and the budgets out of the Looms'
	// configuration, to measure what costing and budgeting every call adds.
	NoBilling bool
	// PipelineIdle runs the span pipeline under SCHED_IDLE (idleTree): it
	// gets only the CPU time Loom, the load generator and the mock leave.
	PipelineIdle bool
	// Profile serves pprof on each Loom's ops listener and saves CPU
	// profiles of Loom in the results folder: over the first round of each
	// scenario (loom-SCENARIO-TARGET.cpu.pprof) and while the long streams
	// are all open (loom-streams.cpu.pprof).
	Profile bool
}

// Run measures, writes report.md, results.json and latency.svg under a new
// folder in o.Out, prints the summary, and returns the folder, the results
// and ErrGateFailed (naming the gates) when a gate fails.
func Run(ctx context.Context, o Options) (dir string, res *Results, err error) {
	gates, err := LoadGates(o.Gates)
	if err != nil {
		return "", nil, err
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	started := time.Now()
	dir = filepath.Join(o.Out, started.UTC().Format("20060102-150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	fmt.Fprintf(o.Log, "bench: %s run, results in %s\n", o.Mode.Name, dir)
	st, err := startStack(ctx, o, dir)
	if err != nil {
		return dir, nil, err
	}
	defer st.stop()
	if o.Profile {
		st.profileDir = dir
	}
	res = &Results{Started: started, Mode: o.Mode.Name, Machine: machine(), PeakRSS: map[string]int64{},
		PipelineNice: o.PipelineNice, PipelineIdle: o.PipelineIdle, Billing: !o.NoBilling}
	progress := func(line string) { fmt.Fprintf(o.Log, "bench: %s\n", line) }
	if o.Mode.StreamsOnly && o.LoomProcs == 1 && runtime.NumCPU() >= 2 {
		// The measure: Loom alone on one core, everything else on
		// the others.
		loomCPU := runtime.NumCPU() - 1
		if err := st.pin(loomCPU); err != nil {
			return dir, nil, err
		}
		res.LoomCPU = &loomCPU
		progress(fmt.Sprintf("Loom pinned to CPU %d, the load generator, the mock and the pipeline to the others", loomCPU))
	}
	for _, sc := range o.Mode.Scenarios {
		m, err := st.runScenario(ctx, o.Mode, sc, progress)
		if err != nil {
			return dir, nil, err
		}
		res.Scenarios = append(res.Scenarios, scenarioResult(sc, m))
	}
	if ls := o.longStreams(); ls != nil {
		sr, err := st.runLongStreams(ctx, *ls, progress)
		if err != nil {
			return dir, nil, err
		}
		res.Scenarios = append(res.Scenarios, sr)
	}
	for _, p := range st.procs {
		res.PeakRSS[p.name] = p.peakRSS()
	}
	if st.traced != nil {
		if res.TracedCalls, err = st.tracedCalls(ctx); err != nil {
			return dir, nil, err
		}
		if res.SpansInPostgres, err = st.spanRows(ctx, res.TracedCalls); err != nil {
			return dir, nil, fmt.Errorf("count spans in Postgres: %w", err)
		}
	}
	res.Gates, res.Passed = CheckGates(gates, res.Scenarios)
	if res.SpansInPostgres != res.TracedCalls {
		res.Passed = false
		res.Gates = append(res.Gates, GateResult{Gate: "no-span-lost", Scenario: "*", Metric: "missing_spans",
			Value: float64(res.TracedCalls - res.SpansInPostgres), Max: 1})
	}
	if err := writeFiles(dir, res); err != nil {
		return dir, res, err
	}
	WriteSummary(o.Log, res)
	fmt.Fprintf(o.Log, "\nbench: report %s\n", filepath.Join(dir, "report.md"))
	return dir, res, gateError(res.Gates)
}

func writeFiles(dir string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var svg, md strings.Builder
	WriteSVG(&svg, res.Scenarios)
	if err := os.WriteFile(filepath.Join(dir, "latency.svg"), []byte(svg.String()), 0o644); err != nil {
		return err
	}
	WriteMarkdown(&md, res, "latency.svg")
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644)
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPU: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// longStreams is the mode's long-streams phase with o.Streams' overrides,
// or nil when the mode has none.
func (o Options) longStreams() *LongStreams {
	if o.Mode.Streams == nil {
		return nil
	}
	ls := *o.Mode.Streams
	if o.Streams.Streams > 0 {
		ls.Streams = o.Streams.Streams
	}
	if o.Streams.Duration > 0 {
		ls.Duration = o.Streams.Duration
	}
	if o.Streams.Interval > 0 {
		ls.Interval = o.Streams.Interval
	}
	if o.Streams.Ramp > 0 {
		ls.Ramp = o.Streams.Ramp
	}
	return &ls
}

// ErrUnknownMode names a mode that Modes lacks.
var ErrUnknownMode = errors.New("unknown mode")
