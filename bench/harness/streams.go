package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/loom-gateway/loom/bench/loadgen"
	"github.com/loom-gateway/loom/bench/mockupstream"
)

// StreamsResult is the long-streams phase: the same streams straight to
// the mock and through Loom, side by side, and what holding them cost
// Loom. Times in ms, sizes in bytes.
type StreamsResult struct {
	LongStreams
	// Loom is the Loom the streams went through: loom (tracing on) or
	// loom-untraced.
	Loom    string              `json:"loom"`
	Direct  StreamsTargetResult `json:"direct"`
	ViaLoom StreamsTargetResult `json:"via_loom"`
	// FirstChunkOverheadP99 and MaxGapOverheadP99 are via Loom minus
	// direct, at p99.
	FirstChunkOverheadP99 float64 `json:"first_chunk_overhead_p99_ms"`
	MaxGapOverheadP99     float64 `json:"max_gap_overhead_p99_ms"`
	// Loom's resident set before the streams and while all were open, the
	// streams it relayed then (its loom_streams_open), and the difference
	// per open stream.
	RSSBefore        int64   `json:"rss_before_bytes"`
	RSSDuring        int64   `json:"rss_during_bytes"`
	OpenAtSample     int64   `json:"open_at_sample"`
	RSSPerOpenStream float64 `json:"rss_per_open_stream_bytes"`
	// Loom's goroutines at rest before the phase (its warm-up included),
	// while all streams were open, and after (once they settled back, or
	// 30 s after the last stream ended).
	GoroutinesBefore int64 `json:"goroutines_before"`
	GoroutinesDuring int64 `json:"goroutines_during"`
	GoroutinesAfter  int64 `json:"goroutines_after"`
	// CPUPerEvent is Loom's CPU time over the phase per event relayed, µs.
	CPUPerEvent float64 `json:"cpu_us_per_event"`
}

// StreamsTargetResult is one side of the phase.
type StreamsTargetResult struct {
	Target    string `json:"target"`
	Opened    int64  `json:"opened"`
	Completed int64  `json:"completed"`
	Broken    int64  `json:"broken"`
	Events    int64  `json:"events"`
	// FirstChunk is intended start → first event; MaxGap each stream's
	// longest wait between two events.
	FirstChunk    *Percentiles `json:"first_chunk_ms"`
	MaxGap        *Percentiles `json:"max_gap_ms"`
	BrokenSamples []string     `json:"broken_samples,omitempty"`
}

// LongStreamsScenario names the phase among the scenarios (and the gates).
const LongStreamsScenario = "long-streams"

// settleWait bounds the wait for Loom's goroutines to come back down after
// the streams: fasthttp retires idle workers after 10 s.
const settleWait = 30 * time.Second

// runLongStreams runs ls straight to the mock, then through Loom (the
// traced one when it runs), and returns it as a scenario. With
// Options.Profile, Loom's CPU profile over the time all streams are open
// is saved as loom-streams.cpu.pprof.
func (st *stack) runLongStreams(ctx context.Context, ls LongStreams, progress func(string)) (ScenarioResult, error) {
	sr := ScenarioResult{Scenario: Scenario{Name: LongStreamsScenario, Description: fmt.Sprintf(
		"%d concurrent streams of %v, an event every %v, opened over %v", ls.Streams, ls.Duration, ls.Interval, ls.Ramp)}}
	events := max(1, int(ls.Duration/ls.Interval))
	mock := map[string]string{
		mockupstream.HeaderChunks:       strconv.Itoa(events),
		mockupstream.HeaderChunkDelayMS: strconv.FormatInt(ls.Interval.Milliseconds(), 10),
	}
	target := func(addr, key string, events int) loadgen.StreamTarget {
		h := map[string]string{"Authorization": "Bearer " + key}
		for k, v := range mock {
			h[k] = v
		}
		h[mockupstream.HeaderChunks] = strconv.Itoa(events)
		return loadgen.StreamTarget{Addr: addr, Path: "/v1/chat/completions", Header: h, Body: requestBody(true, "")}
	}
	loom, addr, ops, key := st.traced, st.tracedAt, st.opsAt, st.keys[0]
	name := Traced
	if loom == nil {
		loom, addr, ops, name = st.untraced, st.plainAt, st.plainOps, Untraced
	}
	res := &StreamsResult{LongStreams: ls, Loom: name}
	sr.Streams = res
	// Loom's goroutines at rest, before any stream: what they must come
	// back to.
	// A Loom without these gauges (an older build, compared against) reads
	// -1: the phase still measures what it can.
	gauge := func(ctx context.Context, name string) int64 {
		v, err := opsMetric(ctx, ops, name)
		if err != nil {
			return -1
		}
		return v
	}
	res.GoroutinesBefore = gauge(ctx, "go_goroutines")
	// A short unmeasured round on both sides first: whichever goes first
	// would otherwise pay for cold connections, pools and page faults.
	warm := loadgen.StreamPlan{Streams: min(ls.Streams, 50), Ramp: 500 * time.Millisecond, Timeout: time.Minute}
	for _, t := range []loadgen.StreamTarget{target(st.mockAddr, "sk-direct", 10), target(addr, key, 10)} {
		if _, err := loadgen.RunStreams(ctx, warm, t); err != nil {
			return sr, fmt.Errorf("%s warm-up: %w", LongStreamsScenario, err)
		}
	}
	plan := loadgen.StreamPlan{Streams: ls.Streams, Ramp: ls.Ramp, Timeout: ls.Ramp + 2*ls.Duration + time.Minute}
	// All streams are open from Ramp until the first one ends, Duration
	// after it began: sample half way.
	plan.SampleAt = ls.Duration / 2
	if ls.Duration > ls.Ramp {
		plan.SampleAt = ls.Ramp + (ls.Duration-ls.Ramp)/2
	}

	progress(fmt.Sprintf("%s: %s, direct", LongStreamsScenario, sr.Description))
	r, err := loadgen.RunStreams(ctx, plan, target(st.mockAddr, "sk-direct", events))
	if err != nil {
		return sr, fmt.Errorf("%s direct: %w", LongStreamsScenario, err)
	}
	res.Direct = streamsTarget(Direct, r)
	progress(fmt.Sprintf("%s direct: %d completed, %d broken, first chunk p99 %.3f ms, max gap p99 %.3f ms",
		LongStreamsScenario, r.Completed, r.Broken, res.Direct.FirstChunk.p99(), res.Direct.MaxGap.p99()))

	res.RSSBefore = loom.rss()
	var mu sync.Mutex
	sampled := make(chan struct{})
	var profiled sync.WaitGroup
	defer profiled.Wait()
	plan.OnSample = func(clientOpen int64) {
		defer close(sampled)
		if st.profileDir != "" {
			profile := filepath.Join(st.profileDir, "loom-streams.cpu.pprof")
			// From the sample to the first stream's end: every stream open.
			secs := max(1, int((ls.Duration-plan.SampleAt)/time.Second)-1)
			profiled.Go(func() {
				if err := saveProfile(ctx, ops, secs, profile); err != nil {
					progress(fmt.Sprintf("%s: CPU profile: %v", LongStreamsScenario, err))
				}
			})
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rss := loom.rss()
		g, open := gauge(sctx, "go_goroutines"), gauge(sctx, "loom_streams_open")
		if open < 0 {
			open = clientOpen
		}
		mu.Lock()
		res.RSSDuring, res.GoroutinesDuring, res.OpenAtSample = rss, g, open
		mu.Unlock()
	}
	cpuBefore, _ := loom.cpu()
	progress(fmt.Sprintf("%s: via %s", LongStreamsScenario, res.Loom))
	r, err = loadgen.RunStreams(ctx, plan, target(addr, key, events))
	if err != nil {
		return sr, fmt.Errorf("%s via %s: %w", LongStreamsScenario, res.Loom, err)
	}
	cpuAfter, _ := loom.cpu()
	select {
	case <-sampled:
	case <-time.After(15 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	res.ViaLoom = streamsTarget(res.Loom, r)
	if r.Events > 0 {
		res.CPUPerEvent = float64((cpuAfter - cpuBefore).Microseconds()) / float64(r.Events)
	}
	if res.OpenAtSample > 0 {
		res.RSSPerOpenStream = float64(res.RSSDuring-res.RSSBefore) / float64(res.OpenAtSample)
	}
	res.FirstChunkOverheadP99 = res.ViaLoom.FirstChunk.p99() - res.Direct.FirstChunk.p99()
	res.MaxGapOverheadP99 = res.ViaLoom.MaxGap.p99() - res.Direct.MaxGap.p99()
	// Goroutines come back down once the streams' connections close and
	// the server's idle workers retire (fasthttp retires a worker idle for
	// 10 s, checking every 10 s).
	for deadline := time.Now().Add(settleWait); ; {
		res.GoroutinesAfter = gauge(ctx, "go_goroutines")
		if res.GoroutinesAfter <= res.GoroutinesBefore || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return sr, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	progress(fmt.Sprintf("%s via %s: %d completed, %d broken, first chunk p99 %.3f ms, max gap p99 %.3f ms, "+
		"RSS %.1f KiB per open stream (%d open), goroutines %d → %d → %d", LongStreamsScenario, res.Loom,
		r.Completed, r.Broken, res.ViaLoom.FirstChunk.p99(), res.ViaLoom.MaxGap.p99(), res.RSSPerOpenStream/1024,
		res.OpenAtSample, res.GoroutinesBefore, res.GoroutinesDuring, res.GoroutinesAfter))
	return sr, nil
}

// saveProfile saves secs seconds of the CPU profile that ops serves.
func saveProfile(ctx context.Context, ops string, secs int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ops+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/profile: %s (is ops.pprof on?)", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func streamsTarget(name string, r loadgen.StreamResult) StreamsTargetResult {
	return StreamsTargetResult{Target: name, Opened: r.Opened, Completed: r.Completed, Broken: r.Broken, Events: r.Events,
		FirstChunk: percentiles(r.FirstChunk), MaxGap: percentiles(r.MaxGap), BrokenSamples: r.BrokenSamples}
}

// p99 of a distribution that may be missing (no stream completed): 0.
func (p *Percentiles) p99() float64 {
	if p == nil {
		return 0
	}
	return p.P99
}
