package harness

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loom-gateway/loom/bench/histogram"
	"github.com/loom-gateway/loom/bench/loadgen"
	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/proxy/server"
)

// Scenario is one load shape. Each runs against every target, in rounds
// that interleave them, so drift on a shared machine hits all alike.
type Scenario struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Rate        float64 `json:"rate"` // requests per second
	Stream      bool    `json:"stream"`
	Tenants     int     `json:"tenants"` // 2: calls alternate between two tenants' keys
	// Mock are the mock upstream's controls (x-mock-*), the same for every
	// target.
	Mock map[string]string `json:"mock"`
	// Model is the model the calls ask for (default ModelOpenAI). Straight
	// to the mock every model is served the same way, so the scenario's
	// overhead is what Loom adds for it: translating (ModelAnthropic) or a
	// failed attempt before the one that serves (ModelFailover).
	Model string `json:"model,omitempty"`
}

// Targets: the mock itself, and Loom with tracing on and off in front of it.
const (
	Direct   = "direct"
	Traced   = "loom"
	Untraced = "loom-untraced"
)

var targetOrder = []string{Direct, Traced, Untraced}

// Mode sizes a run.
type Mode struct {
	Name      string
	Scenarios []Scenario
	Rounds    int           // passes over the targets
	Segment   time.Duration // measured time per target per round
	Warmup    time.Duration // unmeasured lead-in per segment
	// Streams, when set, adds the many-long-streams phase (see
	// LongStreams), straight to the mock and then through Loom.
	Streams *LongStreams
	// StreamsOnly runs the long streams alone, through one Loom: traced
	// (and the whole pipeline started) only with Options.Tracing.
	StreamsOnly bool
}

// LongStreams is the many-long-streams phase: Streams streams opened
// evenly over Ramp, each Duration long with an event every Interval, so
// all of them are open at once between Ramp and Duration. It runs
// straight to the mock, then through Loom, and reports each one's first
// chunk and longest gap between events side by side, the streams broken,
// Loom's resident memory per open stream and its goroutines before,
// during and after.
type LongStreams struct {
	Streams  int           `json:"streams"`
	Duration time.Duration `json:"duration_ns"`
	Interval time.Duration `json:"interval_ns"`
	Ramp     time.Duration `json:"ramp_ns"`
}

var (
	streamMock = map[string]string{"x-mock-chunks": "20", "x-mock-chunk-delay-ms": "5"}
	unaryMock  = map[string]string{"x-mock-chunks": "20"}
)

// Modes: tiny proves the harness works (make test), quick takes about a
// minute, full is the whole set.
var Modes = map[string]Mode{
	"tiny": {Name: "tiny", Rounds: 1, Segment: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, Scenarios: []Scenario{
		{Name: "nonstream-20", Description: "non-streaming, ~1 KB request, 20 RPS", Rate: 20, Tenants: 1, Mock: unaryMock},
		{Name: "stream-10", Description: "streaming, 20 chunks 5 ms apart, 10 RPS", Rate: 10, Stream: true, Tenants: 1, Mock: streamMock},
		{Name: "failover-20", Description: "non-streaming; the first deployment answers 500, the second serves, 20 RPS",
			Rate: 20, Tenants: 1, Mock: unaryMock, Model: ModelFailover},
		{Name: "stream-anthropic-10", Description: "streaming chat translated to an Anthropic deployment and back, 10 RPS",
			Rate: 10, Stream: true, Tenants: 1, Mock: streamMock, Model: ModelAnthropic},
	}},
	"quick": {Name: "quick", Rounds: 1, Segment: 4 * time.Second, Warmup: time.Second, Scenarios: []Scenario{
		{Name: "nonstream-1000", Description: "non-streaming, ~1 KB request, 1000 RPS", Rate: 1000, Tenants: 1, Mock: unaryMock},
		{Name: "stream-200", Description: "streaming, 20 chunks 5 ms apart, 200 RPS", Rate: 200, Stream: true, Tenants: 1, Mock: streamMock},
		{Name: "multitenant-1000", Description: "non-streaming, two tenants alternating, 1000 RPS", Rate: 1000, Tenants: 2, Mock: unaryMock},
	}},
	// streams is the long-streams phase alone (make bench-streams); its
	// flags size it up to the 5,000 streams of 30 s with tracing on.
	"streams": {Name: "streams", StreamsOnly: true, Streams: &LongStreams{Streams: 500, Duration: 10 * time.Second,
		Interval: 100 * time.Millisecond, Ramp: 3 * time.Second}},
	"full": {Name: "full", Rounds: 3, Segment: 8 * time.Second, Warmup: time.Second, Streams: &LongStreams{Streams: 1000,
		Duration: 15 * time.Second, Interval: 100 * time.Millisecond, Ramp: 5 * time.Second}, Scenarios: []Scenario{
		{Name: "nonstream-500", Description: "non-streaming, ~1 KB request, 500 RPS", Rate: 500, Tenants: 1, Mock: unaryMock},
		{Name: "nonstream-1000", Description: "non-streaming, ~1 KB request, 1000 RPS", Rate: 1000, Tenants: 1, Mock: unaryMock},
		{Name: "nonstream-2000", Description: "non-streaming, ~1 KB request, 2000 RPS", Rate: 2000, Tenants: 1, Mock: unaryMock},
		{Name: "stream-200", Description: "streaming, 20 chunks 5 ms apart, 200 RPS", Rate: 200, Stream: true, Tenants: 1, Mock: streamMock},
		{Name: "multitenant-1000", Description: "non-streaming, two tenants alternating, 1000 RPS", Rate: 1000, Tenants: 2, Mock: unaryMock},
		{Name: "stream-anthropic-200", Description: "streaming chat translated to an Anthropic deployment's Messages stream and back, 20 chunks 5 ms apart, 200 RPS",
			Rate: 200, Stream: true, Tenants: 1, Mock: streamMock, Model: ModelAnthropic},
		{Name: "failover-500", Description: "non-streaming; the model's first deployment answers 500, the second serves, 500 RPS",
			Rate: 500, Tenants: 1, Mock: unaryMock, Model: ModelFailover},
	}},
}

// Only is m with just the named scenarios ("long-streams" names its
// long-streams phase), in m's order; an unknown name is an error.
func (m Mode) Only(names []string) (Mode, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[strings.TrimSpace(n)] = true
	}
	out := m
	out.Scenarios = nil
	for _, sc := range m.Scenarios {
		if want[sc.Name] {
			out.Scenarios = append(out.Scenarios, sc)
			delete(want, sc.Name)
		}
	}
	if !want[LongStreamsScenario] || m.Streams == nil {
		out.Streams = nil
	}
	delete(want, LongStreamsScenario)
	for n := range want {
		return m, fmt.Errorf("mode %s has no scenario %q", m.Name, n)
	}
	return out, nil
}

// requestBody is a chat request of about 1 KB, like a short conversation.
func requestBody(stream bool, model string) []byte {
	question := strings.Repeat("Explain the difference between TCP and UDP, with one example of each. ", 12)
	b := `{"model":"` + cmp.Or(model, ModelOpenAI) + `","messages":[{"role":"system","content":"You are a terse networking tutor."},` +
		`{"role":"user","content":"` + question + `"}],"temperature":0.2,"max_tokens":200`
	if stream {
		// Asking for usage makes the mock send the same events whichever
		// way the call goes: Loom asks for it on every stream anyway.
		b += `,"stream":true,"stream_options":{"include_usage":true}`
	}
	return []byte(b + "}")
}

// measured is one target's numbers in one scenario, merged over rounds.
type measured struct {
	latency, ttfc, overhead *histogram.Histogram
	sent, ok, errs, late    int64
	failovers               int64 // calls Loom served from a later attempt
	elapsed, cpu            time.Duration
	errSamples              []string
}

func newMeasured() *measured {
	return &measured{latency: histogram.New(), ttfc: histogram.New(), overhead: histogram.New()}
}

func (m *measured) add(r loadgen.Result, cpu time.Duration) {
	m.latency.Merge(r.Latency)
	m.ttfc.Merge(r.TTFC)
	m.overhead.Merge(r.Overhead)
	m.sent += r.Sent
	m.ok += r.OK
	m.errs += r.Errors
	m.late += r.Late
	m.elapsed += r.Elapsed
	m.cpu += cpu
	for _, e := range r.ErrorSamples {
		if len(m.errSamples) < 10 {
			m.errSamples = append(m.errSamples, e)
		}
	}
}

// calls builds the scenario's call for each target: its own client, so
// connections stay warm across rounds.
func (st *stack) calls(sc Scenario) map[string]loadgen.Call {
	header := func(key string) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + key, "Content-Type": "application/json"}
		for k, v := range sc.Mock {
			h[k] = v
		}
		return h
	}
	conns := int(sc.Rate/10) + 64
	body := requestBody(sc.Stream, sc.Model)
	build := func(name, addr string, keys []string, overhead string) loadgen.Call {
		var calls []loadgen.Call
		for _, k := range keys {
			calls = append(calls, loadgen.NewHTTPCall(loadgen.Target{
				Name: name, Addr: addr, Path: "/v1/chat/completions", Header: header(k), Body: body,
				Stream: sc.Stream, OverheadHeader: overhead, ServiceHeader: mockupstream.HeaderServiceMS,
			}, conns))
		}
		return alternate(calls)
	}
	keys := st.keys[:max(1, min(sc.Tenants, len(st.keys)))]
	return map[string]loadgen.Call{
		Direct:   build(Direct, st.mockAddr, []string{"sk-direct", "sk-direct"}[:len(keys)], ""),
		Traced:   build(Traced, st.tracedAt, keys, server.HeaderOverhead),
		Untraced: build(Untraced, st.plainAt, keys, server.HeaderOverhead),
	}
}

// alternate spreads calls over several, in turn.
func alternate(calls []loadgen.Call) loadgen.Call {
	if len(calls) == 1 {
		return calls[0]
	}
	var n atomic.Uint64
	return func(ctx context.Context, intended time.Time) (loadgen.Sample, error) {
		return calls[n.Add(1)%uint64(len(calls))](ctx, intended)
	}
}

// runScenario measures sc on every target, interleaved over mode.Rounds;
// each round rotates the order.
func (st *stack) runScenario(ctx context.Context, mode Mode, sc Scenario, progress func(string)) (map[string]*measured, error) {
	calls := st.calls(sc)
	out := map[string]*measured{}
	procs := map[string]*proc{Traced: st.traced, Untraced: st.untraced}
	ops := map[string]string{Traced: st.opsAt, Untraced: st.plainOps}
	for round := range mode.Rounds {
		for i := range targetOrder {
			tg := targetOrder[(i+round)%len(targetOrder)]
			if out[tg] == nil {
				out[tg] = newMeasured()
			}
			var before time.Duration
			if p := procs[tg]; p != nil {
				before, _ = p.cpu()
			}
			// Loom's own count of calls served by a later attempt: the
			// failover scenario is only measured if it really failed over.
			var failedOver int64
			if ops[tg] != "" {
				failedOver, _ = opsMetric(ctx, ops[tg], "loom_upstream_failovers_total")
			}
			plan := loadgen.Plan{Rate: sc.Rate, Duration: mode.Segment, Warmup: mode.Warmup}
			var profiled sync.WaitGroup
			if st.profileDir != "" && round == 0 && ops[tg] != "" {
				// The first round's segment of each Loom, warm-up included.
				profiled.Go(func() {
					path := filepath.Join(st.profileDir, "loom-"+sc.Name+"-"+tg+".cpu.pprof")
					if err := saveProfile(ctx, ops[tg], max(1, int(mode.Segment/time.Second)), path); err != nil {
						progress(fmt.Sprintf("%s on %s: CPU profile: %v", sc.Name, tg, err))
					}
				})
			}
			r, err := loadgen.Run(ctx, plan, calls[tg])
			profiled.Wait()
			if err != nil {
				return out, fmt.Errorf("%s on %s: %w", sc.Name, tg, err)
			}
			var cpu time.Duration
			if p := procs[tg]; p != nil {
				after, _ := p.cpu()
				// Warmup calls cost CPU too: scale to the measured share.
				cpu = time.Duration(float64(after-before) * float64(mode.Segment) / float64(mode.Segment+mode.Warmup))
			}
			out[tg].add(r, cpu)
			if ops[tg] != "" {
				n, err := opsMetric(ctx, ops[tg], "loom_upstream_failovers_total")
				if err != nil {
					return out, fmt.Errorf("%s on %s: %w", sc.Name, tg, err)
				}
				out[tg].failovers += n - failedOver
			}
			progress(fmt.Sprintf("%s round %d/%d %s: %d sent, %d errors, p99 %v", sc.Name, round+1, mode.Rounds, tg,
				r.Sent, r.Errors, r.Latency.Quantile(0.99).Round(time.Microsecond)))
		}
	}
	return out, nil
}
