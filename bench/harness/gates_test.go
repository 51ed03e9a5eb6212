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
	for _, want := range []string{"seed-p99-overhead", "loom-p99-overhead-1000rps", "loom-p99-ttfc-overhead"} {
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
