package harness

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Gate is one limit a run must hold, from the gates file.
type Gate struct {
	Name string `yaml:"name" json:"name"`
	Why  string `yaml:"why" json:"why,omitempty"`
	// Scenarios are names or patterns ("nonstream-*", "*") the gate applies to.
	Scenarios []string `yaml:"scenarios" json:"scenarios"`
	// Metric is one of the names in metrics.
	Metric string  `yaml:"metric" json:"metric"`
	Max    float64 `yaml:"max" json:"max"`
}

// GateResult is a gate checked against one scenario.
type GateResult struct {
	Gate     string  `json:"gate"`
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Max      float64 `json:"max"`
	Passed   bool    `json:"passed"`
}

// metrics are what a gate can limit, read off a scenario's result; false
// when the scenario has no such number (a TTFC gate on a unary scenario).
var metrics = map[string]func(s *ScenarioResult) (float64, bool){
	"overhead_p50_ms": func(s *ScenarioResult) (float64, bool) {
		return field(s.Overhead, func(p *Percentiles) float64 { return p.P50 })
	},
	"overhead_p99_ms": func(s *ScenarioResult) (float64, bool) {
		return field(s.Overhead, func(p *Percentiles) float64 { return p.P99 })
	},
	"overhead_untraced_p99_ms": func(s *ScenarioResult) (float64, bool) {
		return field(s.OverheadUntraced, func(p *Percentiles) float64 { return p.P99 })
	},
	"ttfc_overhead_p99_ms": func(s *ScenarioResult) (float64, bool) {
		return field(s.TTFCOverhead, func(p *Percentiles) float64 { return p.P99 })
	},
	// What tracing costs, the same scenario on the traced and the untraced
	// Loom in the same run: p99 latency on minus off, and CPU per call on
	// over off.
	"tracing_p99_cost_ms": func(s *ScenarioResult) (float64, bool) {
		p99, _, ok := s.TracingCost()
		return p99, ok
	},
	"tracing_cpu_ratio": func(s *ScenarioResult) (float64, bool) {
		_, r, ok := s.TracingCost()
		return r, ok && r > 0
	},
	// The long-streams phase.
	"streams_broken":                      streamsMetric(func(r *StreamsResult) float64 { return float64(r.Direct.Broken + r.ViaLoom.Broken) }),
	"streams_first_chunk_overhead_p99_ms": streamsMetric(func(r *StreamsResult) float64 { return r.FirstChunkOverheadP99 }),
	"streams_max_gap_overhead_p99_ms":     streamsMetric(func(r *StreamsResult) float64 { return r.MaxGapOverheadP99 }),
	"streams_rss_per_open_stream_bytes":   streamsMetric(func(r *StreamsResult) float64 { return r.RSSPerOpenStream }),
	"streams_goroutines_leaked": streamsMetric(func(r *StreamsResult) float64 {
		return float64(max(0, r.GoroutinesAfter-r.GoroutinesBefore))
	}),
	"error_rate": func(s *ScenarioResult) (float64, bool) {
		var sent, errs int64
		for _, t := range s.Targets {
			sent, errs = sent+t.Sent, errs+t.Errors
		}
		if sent == 0 {
			return 0, false
		}
		return float64(errs) / float64(sent), true
	},
}

func streamsMetric(f func(*StreamsResult) float64) func(*ScenarioResult) (float64, bool) {
	return func(s *ScenarioResult) (float64, bool) {
		if s.Streams == nil {
			return 0, false
		}
		return f(s.Streams), true
	}
}

func field(p *Percentiles, f func(*Percentiles) float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return f(p), true
}

// LoadGates reads and checks a gates file.
func LoadGates(file string) ([]Gate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read gates: %w", err)
	}
	var doc struct {
		Gates []Gate `yaml:"gates"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse gates %s: %w", file, err)
	}
	var errs []error
	for i, g := range doc.Gates {
		if g.Name == "" {
			errs = append(errs, fmt.Errorf("gates[%d].name: is required", i))
		}
		if metrics[g.Metric] == nil {
			errs = append(errs, fmt.Errorf("gates[%d].metric: unknown %q", i, g.Metric))
		}
		if len(g.Scenarios) == 0 {
			errs = append(errs, fmt.Errorf("gates[%d].scenarios: name at least one (or \"*\")", i))
		}
		for _, p := range g.Scenarios {
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("gates[%d].scenarios: bad pattern %q", i, p))
			}
		}
	}
	return doc.Gates, errors.Join(errs...)
}

// CheckGates evaluates every gate on every scenario it names that ran.
func CheckGates(gates []Gate, scenarios []ScenarioResult) (results []GateResult, passed bool) {
	passed = true
	for _, g := range gates {
		for i := range scenarios {
			s := &scenarios[i]
			if !matches(g.Scenarios, s.Name) {
				continue
			}
			v, ok := metrics[g.Metric](s)
			if !ok {
				continue
			}
			r := GateResult{Gate: g.Name, Scenario: s.Name, Metric: g.Metric, Value: v, Max: g.Max, Passed: v < g.Max}
			passed = passed && r.Passed
			results = append(results, r)
		}
	}
	return results, passed
}

func matches(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// ErrGateFailed is returned when a run breaks a gate; the message names it.
var ErrGateFailed = errors.New("gate failed")

func gateError(results []GateResult) error {
	var names []string
	for _, r := range results {
		if !r.Passed {
			names = append(names, fmt.Sprintf("%s (%s: %s = %.3f, max %.3f)", r.Gate, r.Scenario, r.Metric, r.Value, r.Max))
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrGateFailed, strings.Join(names, "; "))
}
