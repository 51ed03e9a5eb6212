package harness

import (
	"fmt"
	"io"
	"strings"
)

func f3(v float64) string { return fmt.Sprintf("%.3f", v) }

func pRow(p *Percentiles) string {
	if p == nil {
		return "| – | – | – | – | – |"
	}
	return "| " + strings.Join([]string{f3(p.P50), f3(p.P90), f3(p.P99), f3(p.P999), f3(p.Max)}, " | ") + " |"
}

// WriteMarkdown writes report.md: every section, the plot included.
func WriteMarkdown(w io.Writer, r *Results, plot string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	verdict := "all gates passed"
	if !r.Passed {
		verdict = "**a gate failed**"
	}
	p("# Loom overhead: %s run, %s\n\n", r.Mode, r.Started.UTC().Format("2006-01-02 15:04 MST"))
	p("%s. Machine: %s, %d CPUs, %s, %s", verdict, r.Machine.CPU, r.Machine.CPUs, r.Machine.OS, r.Machine.GoVersion)
	if r.Machine.Commit != "" {
		p(", commit %s", r.Machine.Commit)
	}
	p(".\n\nOpen-loop load at a constant rate; latency is measured from each call's *intended* send time, so a\n" +
		"stall is never hidden. Each scenario runs straight to the mock (`direct`), through Loom with tracing and the\n" +
		"whole pipeline on (`loom`: otelcol-loom + Postgres) and through Loom with tracing off (`loom-untraced`),\n" +
		"interleaved in rounds. Overhead = via Loom minus direct, percentile by percentile. Times in ms.\n\n")
	if r.PipelineNice != 0 {
		p("The span pipeline (otelcol-loom and Postgres) ran at nice %d: on a machine it shares with Loom, the load\n"+
			"generator and the mock, it works in the time they leave, while the calls wait in Loom's durable spool.\n\n", r.PipelineNice)
	}
	if r.Billing {
		p("Every bench model has a price and each tenant and key a day and a month budget (in memory, never reached):\n" +
			"Loom prices each call and reserves and settles it (`-no-billing` leaves them out).\n\n")
	}
	if r.PipelineIdle {
		p("The span pipeline ran under SCHED_IDLE: it got only CPU time that Loom, the load generator and the mock left.\n\n")
	}
	if r.LoomCPU != nil {
		p("The long streams ran with Loom pinned to CPU %d (GOMAXPROCS=1), the load generator, the mock and the pipeline\n"+
			"pinned to the other CPUs, in the direct run as well.\n\n", *r.LoomCPU)
	}

	p("## Overhead (via Loom minus direct)\n\n| scenario | tracing | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		if s.Streams != nil {
			continue // its own section below
		}
		p("| %s | on %s\n| %s | off %s\n", s.Name, pRow(s.Overhead), s.Name, pRow(s.OverheadUntraced))
	}
	p("\n## Latency\n\n| scenario | target | rate | throughput | errors | late starts | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		for _, t := range s.Targets {
			p("| %s | %s | %.0f | %.1f | %d | %d %s\n", s.Name, t.Target, s.Rate, t.Throughput, t.Errors, t.Late, pRow(t.Latency))
		}
	}
	var streams []ScenarioResult
	for _, s := range r.Scenarios {
		if s.Stream {
			streams = append(streams, s)
		}
	}
	if len(streams) > 0 {
		p("\n## Streaming: time to first chunk\n\n| scenario | what | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|\n")
		for _, s := range streams {
			for _, t := range s.Targets {
				p("| %s | %s TTFC %s\n", s.Name, t.Target, pRow(t.TTFC))
			}
			p("| %s | TTFC overhead, tracing on %s\n| %s | TTFC overhead, tracing off %s\n", s.Name, pRow(s.TTFCOverhead), s.Name, pRow(s.TTFCOverheadUntraced))
			for _, t := range s.Targets {
				p("| %s | %s total %s\n", s.Name, t.Target, pRow(t.Latency))
			}
		}
	}
	p("\n## Loom's own view and cost\n\n| scenario | target | self-reported overhead p50 | p99 | CPU s per 1,000 requests |\n|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		for _, t := range s.Targets {
			if t.Target == Direct || t.SelfReported == nil {
				continue
			}
			p("| %s | %s | %s | %s | %.3f |\n", s.Name, t.Target, f3(t.SelfReported.P50), f3(t.SelfReported.P99), t.CPUPer1000)
		}
	}
	writeTracingCost(w, r)
	for _, s := range r.Scenarios {
		if s.Streams != nil {
			writeStreams(w, s.Streams)
		}
	}
	p("\nPeak RSS:")
	for _, name := range []string{"loom-traced", "loom-untraced", "otelcol-loom", "mockupstream"} {
		if v, ok := r.PeakRSS[name]; ok {
			p(" %s %.1f MiB;", name, float64(v)/(1<<20))
		}
	}
	p("\n\nSpans in Postgres: %d SERVER rows for %d calls through the traced Loom", r.SpansInPostgres, r.TracedCalls)
	if r.SpansInPostgres == r.TracedCalls {
		p(" (none lost).\n")
	} else {
		p(" (**%d missing**).\n", r.TracedCalls-r.SpansInPostgres)
	}
	p("\n## Gates\n\n| gate | scenario | metric | value | max | |\n|---|---|---|---|---|---|\n")
	for _, g := range r.Gates {
		mark := "pass"
		if !g.Passed {
			mark = "**FAIL**"
		}
		p("| %s | %s | %s | %.4f | %g | %s |\n", g.Gate, g.Scenario, g.Metric, g.Value, g.Max, mark)
	}
	p("\n## Latency by percentile\n\n![latency by percentile](%s)\n", plot)
	for _, s := range r.Scenarios {
		for _, t := range s.Targets {
			if len(t.ErrorSamples) > 0 {
				p("\nErrors in %s via %s: %s\n", s.Name, t.Target, strings.Join(t.ErrorSamples, "; "))
			}
		}
	}
}

// WriteSummary prints the short table a person reads in the terminal.
func WriteSummary(w io.Writer, r *Results) {
	fmt.Fprintf(w, "\n%-18s %-14s %9s %7s %9s %9s %9s   %s\n", "scenario", "target", "rps", "errors", "p50 ms", "p99 ms", "max ms", "overhead p50/p99 ms")
	for _, s := range r.Scenarios {
		for _, t := range s.Targets {
			over := ""
			switch o := map[string]*Percentiles{Traced: s.Overhead, Untraced: s.OverheadUntraced}[t.Target]; {
			case o != nil:
				over = fmt.Sprintf("%.3f / %.3f", o.P50, o.P99)
			}
			lat := t.Latency
			if lat == nil {
				lat = &Percentiles{}
			}
			fmt.Fprintf(w, "%-18s %-14s %9.1f %7d %9.3f %9.3f %9.3f   %s\n", s.Name, t.Target, t.Throughput, t.Errors, lat.P50, lat.P99, lat.Max, over)
		}
		if s.TTFCOverhead != nil {
			fmt.Fprintf(w, "%-18s %-14s %47s   TTFC overhead %.3f / %.3f\n", s.Name, Traced, "", s.TTFCOverhead.P50, s.TTFCOverhead.P99)
		}
		if p99, ratio, ok := s.TracingCost(); ok {
			fmt.Fprintf(w, "%-18s tracing costs %.3f ms at p99, CPU per call x%.2f\n", s.Name, p99, ratio)
		}
		if r := s.Streams; r != nil {
			for _, t := range []StreamsTargetResult{r.Direct, r.ViaLoom} {
				fmt.Fprintf(w, "%-18s %-14s %d streams: %d completed, %d broken; first chunk p99 %.3f ms, max gap p99 %.3f ms\n",
					s.Name, t.Target, t.Opened, t.Completed, t.Broken, t.FirstChunk.p99(), t.MaxGap.p99())
			}
			fmt.Fprintf(w, "%-18s %-14s %.1f KiB RSS per open stream (%d open); goroutines %d -> %d -> %d\n", s.Name, r.Loom,
				r.RSSPerOpenStream/1024, r.OpenAtSample, r.GoroutinesBefore, r.GoroutinesDuring, r.GoroutinesAfter)
		}
	}
	fmt.Fprintf(w, "\nspans in Postgres: %d of %d traced calls\n", r.SpansInPostgres, r.TracedCalls)
	for _, g := range r.Gates {
		mark := "pass"
		if !g.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "gate %-4s %s on %s: %s = %.4f (max %g)\n", mark, g.Gate, g.Scenario, g.Metric, g.Value, g.Max)
	}
}

// writeTracingCost writes what tracing costs, scenario by scenario: the
// same load on the traced and the untraced Loom in the same run.
func writeTracingCost(w io.Writer, r *Results) {
	header := false
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		p99, ratio, ok := s.TracingCost()
		if !ok {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\n## What tracing costs (tracing on vs off, same run)\n\n"+
				"| scenario | p99 on | p99 off | p99 cost | CPU ms per call on | off | ratio |\n|---|---|---|---|---|---|---|\n")
			header = true
		}
		on, off := s.Target(Traced), s.Target(Untraced)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.4f | %.4f | %.2f |\n", s.Name, f3(on.Latency.P99), f3(off.Latency.P99), f3(p99),
			on.CPUPer1000, off.CPUPer1000, ratio)
	}
}

// writeStreams writes the long-streams phase: direct and via Loom side by
// side, then what holding the streams cost Loom.
func writeStreams(w io.Writer, r *StreamsResult) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n## Many long streams\n\n%d streams of %v, an event every %v, opened over %v; through %s. First chunk is from\n"+
		"each stream's intended start to its first event; max gap is each stream's longest wait between two events\n"+
		"(the upstream sends one every %v). Times in ms.\n\n", r.Streams, r.Duration, r.Interval, r.Ramp, r.Loom, r.Interval)
	p("| target | opened | completed | broken | events | what | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range []StreamsTargetResult{r.Direct, r.ViaLoom} {
		p("| %s | %d | %d | %d | %d | first chunk %s\n", t.Target, t.Opened, t.Completed, t.Broken, t.Events, pRow(t.FirstChunk))
		p("| %s | | | | | max gap %s\n", t.Target, pRow(t.MaxGap))
	}
	p("\nVia Loom minus direct at p99: first chunk %.3f ms, max gap %.3f ms.\n\n", r.FirstChunkOverheadP99, r.MaxGapOverheadP99)
	p("Loom (%s): RSS %.1f MiB before, %.1f MiB with %d streams open: **%.1f KiB per open stream**; goroutines %d before, "+
		"%d during, %d after; CPU %.1f µs per event relayed.\n", r.Loom, float64(r.RSSBefore)/(1<<20), float64(r.RSSDuring)/(1<<20),
		r.OpenAtSample, r.RSSPerOpenStream/1024, r.GoroutinesBefore, r.GoroutinesDuring, r.GoroutinesAfter, r.CPUPerEvent)
	for _, t := range []StreamsTargetResult{r.Direct, r.ViaLoom} {
		if len(t.BrokenSamples) > 0 {
			p("\nBroken streams %s: %s\n", t.Target, strings.Join(t.BrokenSamples, "; "))
		}
	}
}
