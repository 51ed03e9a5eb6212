package loadgen_test

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/bench/loadgen"
	"github.com/loom-gateway/loom/bench/mockupstream"
)

func startMock(t *testing.T) string {
	t.Helper()
	mock := mockupstream.New(mockupstream.Config{LogLimit: 16})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mock.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = mock.Shutdown(ctx)
	})
	return ln.Addr().String()
}

func streamTarget(addr string, chunks int, delay time.Duration, extra map[string]string) loadgen.StreamTarget {
	h := map[string]string{
		mockupstream.HeaderChunks:       strconv.Itoa(chunks),
		mockupstream.HeaderChunkDelayMS: strconv.Itoa(int(delay / time.Millisecond)),
	}
	for k, v := range extra {
		h[k] = v
	}
	return loadgen.StreamTarget{Addr: addr, Path: "/v1/chat/completions", Header: h,
		Body: []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`)}
}

// Every stream is timed: its first event, and its longest gap, which
// cannot be shorter than the gap the upstream put between its events.
func TestRunStreams_EveryStreamCompleted_GapsAtLeastTheUpstreamsCadence(t *testing.T) {
	addr := startMock(t)
	const streams, chunks, delay = 20, 10, 40 * time.Millisecond
	var sampled atomic.Int64
	sampled.Store(-1)
	// Streams last 400 ms and open within 20: all are open at 250 ms.
	plan := loadgen.StreamPlan{Streams: streams, Ramp: 20 * time.Millisecond, Timeout: 10 * time.Second,
		SampleAt: 250 * time.Millisecond, OnSample: func(open int64) { sampled.Store(open) }}
	r, err := loadgen.RunStreams(context.Background(), plan, streamTarget(addr, chunks, delay, nil))
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened != streams || r.Completed != streams || r.Broken != 0 {
		t.Fatalf("opened %d, completed %d, broken %d (%v), want %d each and none broken", r.Opened, r.Completed, r.Broken, r.BrokenSamples, streams)
	}
	// chunks content events, then the finish and usage chunks and [DONE];
	// events that arrive in one read count once for timing, all for Events.
	if r.Events < streams*(chunks+1) {
		t.Fatalf("%d events over %d streams, want at least %d each", r.Events, streams, chunks+1)
	}
	if r.FirstChunk.Count() != streams || r.MaxGap.Min() < delay*9/10 {
		t.Fatalf("first chunks %d, shortest max gap %v (upstream cadence %v)", r.FirstChunk.Count(), r.MaxGap.Min(), delay)
	}
	if n := sampled.Load(); n != streams {
		t.Fatalf("%d streams open at the sample, want all %d", n, streams)
	}
}

// A stream the upstream cuts is broken, and says where.
func TestRunStreams_UpstreamResets_CountedBroken(t *testing.T) {
	addr := startMock(t)
	plan := loadgen.StreamPlan{Streams: 3, Timeout: 10 * time.Second}
	r, err := loadgen.RunStreams(context.Background(), plan, streamTarget(addr, 5, time.Millisecond, map[string]string{mockupstream.HeaderResetAfter: "2"}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Broken != 3 || r.Completed != 0 || len(r.BrokenSamples) == 0 {
		t.Fatalf("broken %d, completed %d, samples %v: want all 3 broken", r.Broken, r.Completed, r.BrokenSamples)
	}
}
