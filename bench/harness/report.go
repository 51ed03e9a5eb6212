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

	p("## Overhead (via Loom minus direct)\n\n| scenario | tracing | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
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
