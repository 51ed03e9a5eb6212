package harness

import (
	"time"

	"github.com/loom-gateway/loom/bench/histogram"
)

// Percentiles of a distribution, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func percentiles(h *histogram.Histogram) *Percentiles {
	if h == nil || h.Count() == 0 {
		return nil
	}
	return &Percentiles{P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Max()), Mean: ms(h.Mean())}
}

// minus is a-b percentile by percentile: overhead is the latency through
// Loom minus the latency straight to the mock, at each percentile.
func minus(a, b *Percentiles) *Percentiles {
	if a == nil || b == nil {
		return nil
	}
	return &Percentiles{P50: a.P50 - b.P50, P90: a.P90 - b.P90, P99: a.P99 - b.P99, P999: a.P999 - b.P999,
		Max: a.Max - b.Max, Mean: a.Mean - b.Mean}
}

// CurvePoints are the quantiles the plot draws.
var CurvePoints = []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999}

// TargetResult is one target's numbers in one scenario.
type TargetResult struct {
	Target     string       `json:"target"`
	Sent       int64        `json:"sent"`
	OK         int64        `json:"ok"`
	Errors     int64        `json:"errors"`
	Late       int64        `json:"late_starts"` // calls the generator started over 1 ms late
	Throughput float64      `json:"throughput_rps"`
	Latency    *Percentiles `json:"latency_ms"`
	TTFC       *Percentiles `json:"ttfc_ms,omitempty"`
	// SelfReported is what Loom said of itself (X-Loom-Overhead-Ms).
	SelfReported *Percentiles `json:"self_reported_overhead_ms,omitempty"`
	// CPUPer1000 is the Loom process's CPU seconds per 1,000 requests.
	CPUPer1000 float64 `json:"cpu_seconds_per_1000,omitempty"`
	// Failovers counts calls Loom served from a later attempt than the
	// first (its loom_upstream_failovers_total, warm-up calls included).
	Failovers    int64     `json:"failovers,omitempty"`
	Curve        []float64 `json:"latency_curve_ms"` // at CurvePoints
	ErrorSamples []string  `json:"error_samples,omitempty"`
}

// ScenarioResult is a scenario with every target and the overheads.
type ScenarioResult struct {
	Scenario
	Targets []TargetResult `json:"targets"`
	// Overhead is via Loom (tracing on) minus direct; OverheadUntraced the
	// same with tracing off.
	Overhead             *Percentiles `json:"overhead_ms"`
	OverheadUntraced     *Percentiles `json:"overhead_untraced_ms"`
	TTFCOverhead         *Percentiles `json:"ttfc_overhead_ms,omitempty"`
	TTFCOverheadUntraced *Percentiles `json:"ttfc_overhead_untraced_ms,omitempty"`
	// Streams is the long-streams phase (scenario LongStreamsScenario),
	// which has no Targets of its own.
	Streams *StreamsResult `json:"streams,omitempty"`
}

// TracingCost is what tracing adds at p99 (tracing on minus off, ms) and
// the ratio of Loom's CPU per call with tracing on to off; ok is false
// unless both Looms ran the scenario (and the ratio's CPU was measured).
func (s *ScenarioResult) TracingCost() (p99 float64, cpuRatio float64, ok bool) {
	on, off := s.Target(Traced), s.Target(Untraced)
	if on == nil || off == nil || on.Latency == nil || off.Latency == nil {
		return 0, 0, false
	}
	p99 = on.Latency.P99 - off.Latency.P99
	if off.CPUPer1000 > 0 {
		cpuRatio = on.CPUPer1000 / off.CPUPer1000
	}
	return p99, cpuRatio, true
}

// Target returns the named target's result.
func (s *ScenarioResult) Target(name string) *TargetResult {
	for i := range s.Targets {
		if s.Targets[i].Target == name {
			return &s.Targets[i]
		}
	}
	return nil
}

// Results is a whole run, as results.json holds it.
type Results struct {
	Started time.Time `json:"started"`
	Mode    string    `json:"mode"`
	Machine Machine   `json:"machine"`
	// PipelineNice is the niceness otelcol-loom and Postgres ran at.
	PipelineNice int `json:"pipeline_nice"`
	// Billing: the Looms priced every call and reserved and settled it
	// against in-memory budgets (Options.NoBilling unset).
	Billing bool `json:"billing"`
	// PipelineIdle: otelcol-loom and Postgres ran under SCHED_IDLE.
	PipelineIdle bool `json:"pipeline_idle,omitempty"`
	// LoomCPU is the CPU the long-streams phase pinned Loom to, everything
	// else on the others; nil when nothing was pinned.
	LoomCPU   *int             `json:"loom_cpu,omitempty"`
	Scenarios []ScenarioResult `json:"scenarios"`
	// PeakRSS is each process's high-water resident set, bytes.
	PeakRSS map[string]int64 `json:"peak_rss_bytes"`
	// TracedCalls went through the traced Loom (its loom_calls_total);
	// SpansInPostgres is how many SERVER spans, one per call, landed: equal
	// means the pipeline kept up and lost nothing.
	TracedCalls     int64        `json:"traced_calls"`
	SpansInPostgres int64        `json:"spans_in_postgres"`
	Gates           []GateResult `json:"gates"`
	Passed          bool         `json:"passed"`
}

// Machine says where the numbers come from.
type Machine struct {
	CPU       string `json:"cpu"`
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
	Commit    string `json:"commit,omitempty"`
}

func scenarioResult(sc Scenario, m map[string]*measured) ScenarioResult {
	r := ScenarioResult{Scenario: sc}
	for _, tg := range targetOrder {
		x := m[tg]
		if x == nil {
			continue
		}
		t := TargetResult{Target: tg, Sent: x.sent, OK: x.ok, Errors: x.errs, Late: x.late, Failovers: x.failovers,
			Latency: percentiles(x.latency), ErrorSamples: x.errSamples}
		if x.elapsed > 0 {
			t.Throughput = float64(x.ok) / x.elapsed.Seconds()
		}
		if sc.Stream {
			t.TTFC = percentiles(x.ttfc)
		}
		if tg != Direct {
			t.SelfReported = percentiles(x.overhead)
			if x.sent > 0 {
				t.CPUPer1000 = x.cpu.Seconds() * 1000 / float64(x.sent)
			}
		}
		for _, q := range CurvePoints {
			t.Curve = append(t.Curve, ms(x.latency.Quantile(q)))
		}
		r.Targets = append(r.Targets, t)
	}
	d, on, off := r.Target(Direct), r.Target(Traced), r.Target(Untraced)
	if d != nil && on != nil && off != nil {
		r.Overhead, r.OverheadUntraced = minus(on.Latency, d.Latency), minus(off.Latency, d.Latency)
		r.TTFCOverhead, r.TTFCOverheadUntraced = minus(on.TTFC, d.TTFC), minus(off.TTFC, d.TTFC)
	}
	return r
}
