package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadGates_RepoFileIsValid(t *testing.T) {
	gates, err := LoadGates(filepath.Join("..", "gates.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, g := range gates {
		names[g.Name] = true
	}
	for _, want := range []string{"seed-p99-overhead", "loom-p99-overhead-1000rps", "loom-p99-ttfc-overhead",
		"tracing-p99-cost-2000rps", "tracing-cpu-2000rps", "streams-none-broken", "streams-first-chunk-vs-direct",
		"streams-gap-vs-direct", "streams-goroutines-back"} {
		if !names[want] {
			t.Errorf("bench/gates.yaml lacks %s", want)
		}
	}
}

func TestLoadGates_NamesEveryBadField(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gates.yaml")
	if err := os.WriteFile(file, []byte("gates:\n  - {metric: nope, scenarios: [\"[\"]}\n  - {name: x, metric: error_rate}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadGates(file)
	for _, want := range []string{"gates[0].name", "gates[0].metric", "gates[0].scenarios: bad pattern", "gates[1].scenarios"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestCheckGates_AppliesToMatchingScenariosThatHaveTheMetric(t *testing.T) {
	gates := []Gate{
		{Name: "p99", Scenarios: []string{"*"}, Metric: "overhead_p99_ms", Max: 2},
		{Name: "ttfc", Scenarios: []string{"stream-*"}, Metric: "ttfc_overhead_p99_ms", Max: 2},
	}
	scenarios := []ScenarioResult{
		{Scenario: Scenario{Name: "nonstream-1000"}, Overhead: &Percentiles{P99: 1.5}},
		{Scenario: Scenario{Name: "stream-200", Stream: true}, Overhead: &Percentiles{P99: 2.5}, TTFCOverhead: &Percentiles{P99: 0.5}},
	}
	results, passed := CheckGates(gates, scenarios)
	if passed || len(results) != 3 {
		t.Fatalf("passed %v, results %+v", passed, results)
	}
	err := gateError(results)
	if err == nil || !strings.Contains(err.Error(), "p99 (stream-200: overhead_p99_ms = 2.500, max 2.000)") || strings.Contains(err.Error(), "nonstream") {
		t.Fatalf("gate error: %v", err)
	}
}

func TestMinus_IsPercentileByPercentile(t *testing.T) {
	got := minus(&Percentiles{P50: 3, P90: 4, P99: 10, P999: 12, Max: 20, Mean: 3.5}, &Percentiles{P50: 2, P90: 3, P99: 4, P999: 5, Max: 6, Mean: 2.5})
	if *got != (Percentiles{P50: 1, P90: 1, P99: 6, P999: 7, Max: 14, Mean: 1}) {
		t.Fatalf("%+v", got)
	}
	if minus(nil, &Percentiles{}) != nil {
		t.Fatal("missing side must give no overhead")
	}
}

// Tracing's cost is read off the same scenario on both Looms: p99 on minus
// off, and CPU per call on over off.
func TestCheckGates_TracingCost_OnVersusOffInTheSameScenario(t *testing.T) {
	gates := []Gate{
		{Name: "p99-cost", Scenarios: []string{"nonstream-2000"}, Metric: "tracing_p99_cost_ms", Max: 0.5},
		{Name: "cpu", Scenarios: []string{"nonstream-2000"}, Metric: "tracing_cpu_ratio", Max: 1.3},
	}
	sc := ScenarioResult{Scenario: Scenario{Name: "nonstream-2000"}, Targets: []TargetResult{
		{Target: Direct, Latency: &Percentiles{P99: 1}},
		{Target: Traced, Latency: &Percentiles{P99: 2.7}, CPUPer1000: 0.14},
		{Target: Untraced, Latency: &Percentiles{P99: 2.5}, CPUPer1000: 0.1},
	}}
	results, passed := CheckGates(gates, []ScenarioResult{sc})
	if passed || len(results) != 2 {
		t.Fatalf("passed %v, results %+v", passed, results)
	}
	if r := results[0]; !r.Passed || r.Value < 0.199 || r.Value > 0.201 {
		t.Errorf("p99 cost %+v, want 0.2 and passed", r)
	}
	if r := results[1]; r.Passed || r.Value < 1.399 || r.Value > 1.401 {
		t.Errorf("cpu ratio %+v, want 1.4 and failed", r)
	}
}

// The long-streams gates read the phase's own result, and only its.
func TestCheckGates_LongStreams_ReadThePhase(t *testing.T) {
	var gates []Gate
	for _, m := range []string{"streams_broken", "streams_first_chunk_overhead_p99_ms", "streams_max_gap_overhead_p99_ms",
		"streams_rss_per_open_stream_bytes", "streams_goroutines_leaked"} {
		gates = append(gates, Gate{Name: m, Scenarios: []string{"*"}, Metric: m, Max: 5})
	}
	streams := ScenarioResult{Scenario: Scenario{Name: LongStreamsScenario}, Streams: &StreamsResult{
		Direct: StreamsTargetResult{Broken: 1}, ViaLoom: StreamsTargetResult{Broken: 2},
		FirstChunkOverheadP99: 1.5, MaxGapOverheadP99: 7, RSSPerOpenStream: 3, GoroutinesBefore: 20, GoroutinesAfter: 12,
	}}
	other := ScenarioResult{Scenario: Scenario{Name: "stream-200"}}
	results, _ := CheckGates(gates, []ScenarioResult{other, streams})
	got := map[string]float64{}
	for _, r := range results {
		if r.Scenario != LongStreamsScenario {
			t.Fatalf("gate %s applied to %s", r.Gate, r.Scenario)
		}
		got[r.Metric] = r.Value
	}
	want := map[string]float64{"streams_broken": 3, "streams_first_chunk_overhead_p99_ms": 1.5, "streams_max_gap_overhead_p99_ms": 7,
		"streams_rss_per_open_stream_bytes": 3, "streams_goroutines_leaked": 0}
	for m, v := range want {
		if got[m] != v {
			t.Errorf("%s = %v, want %v", m, got[m], v)
		}
	}
}
