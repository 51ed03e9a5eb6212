package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/bench/histogram"
)

// noop is a Call that reports nothing beyond its own duration.
func noop(context.Context, time.Time) (Sample, error) {
	return Sample{Overhead: None, Service: None}, nil
}

// The schedule is exact; what the machine adds is checked by order and
// causality, not by how fast a busy box runs (make test runs packages in
// parallel under -race on two cores, where a ±10 ms span and ≤ 1 ms for 90%
// of starts both failed).
func TestRun_Rate_SendsEvenlySpacedCalls(t *testing.T) {
	type start struct{ intended, began time.Time }
	var mu sync.Mutex
	var starts []start
	call := func(ctx context.Context, in time.Time) (Sample, error) {
		now := time.Now()
		mu.Lock()
		starts = append(starts, start{in, now})
		mu.Unlock()
		return noop(ctx, in)
	}
	before := time.Now()
	r, err := Run(context.Background(), Plan{Rate: 200, Duration: time.Second}, call)
	wall := time.Since(before)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 200 || r.OK != 200 || r.Latency.Count() != 200 || len(starts) != 200 {
		t.Fatalf("sent %d ok %d recorded %d called %d, want 200", r.Sent, r.OK, r.Latency.Count(), len(starts))
	}
	slices.SortFunc(starts, func(a, b start) int { return a.intended.Compare(b.intended) })
	// Intended times are computed, not measured: exactly 5 ms apart.
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].intended.Sub(starts[i-1].intended); gap < 5*time.Millisecond-time.Microsecond || gap > 5*time.Millisecond+time.Microsecond {
			t.Fatalf("intended gap %d = %v, want 5ms", i, gap)
		}
	}
	// Causality: no call begins before its intended time (a generator that
	// bursts fails here), and the generator, which takes a call's start just
	// before the call does, cannot count more calls late than the calls saw.
	lags := histogram.New()
	sawLate := int64(0)
	for i, s := range starts {
		lag := s.began.Sub(s.intended)
		if lag < 0 {
			t.Fatalf("call %d began %v before its intended time", i, -lag)
		}
		lags.Record(lag)
		if lag > lateAfter {
			sawLate++
		}
	}
	if r.Late > sawLate {
		t.Errorf("Late = %d, but only %d calls began more than %v after their intended time", r.Late, sawLate, lateAfter)
	}
	// Elapsed runs from the first intended send to the last return: at least
	// the 995 ms the schedule spans, at most the time Run took.
	if r.Elapsed < 995*time.Millisecond || r.Elapsed > wall {
		t.Errorf("Elapsed = %v, want between 995ms and Run's %v", r.Elapsed, wall)
	}
	t.Logf("lag p50 %v p99 %v max %v, late %d", r.Lag.Quantile(0.5), r.Lag.Quantile(0.99), r.Lag.Max(), r.Late)
	// Keeping up: a schedule that slips adds its delay to every later call,
	// so over 200 calls its median lag grows by at least 100 times the slip
	// (hundreds of ms); one that keeps up starts half its calls within one
	// interval (5 ms), since a busy box delays some calls but not most.
	if p50 := lags.Quantile(0.5); p50 > 5*time.Millisecond {
		t.Errorf("median lag %v: the schedule slipped", p50)
	}
}

func TestRun_Warmup_SentButNotRecorded(t *testing.T) {
	var calls atomic.Int64
	call := func(ctx context.Context, in time.Time) (Sample, error) { calls.Add(1); return noop(ctx, in) }
	r, err := Run(context.Background(), Plan{Rate: 100, Warmup: 200 * time.Millisecond, Duration: 300 * time.Millisecond}, call)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 50 || r.Sent != 30 || r.Latency.Count() != 30 {
		t.Fatalf("called %d, sent %d, recorded %d; want 50 called, 30 sent and recorded", calls.Load(), r.Sent, r.Latency.Count())
	}
	if r.Elapsed < 290*time.Millisecond || r.Elapsed > 400*time.Millisecond {
		t.Errorf("Elapsed = %v, want the measured ~300ms only", r.Elapsed)
	}
}

func TestRun_MaxInFlight_NeverExceededAndQueueingShowsInLatency(t *testing.T) {
	var inFlight, peak atomic.Int64
	call := func(ctx context.Context, in time.Time) (Sample, error) {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(50 * time.Millisecond)
		inFlight.Add(-1)
		return noop(ctx, in)
	}
	// 200 rps of 50 ms calls needs 10 in flight; with 5 the calls queue and run at 100 rps.
	r, err := Run(context.Background(), Plan{Rate: 200, Duration: 250 * time.Millisecond, MaxInFlight: 5}, call)
	if err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 5 {
		t.Fatalf("peak in flight = %d, want 5", peak.Load())
	}
	if r.OK != 50 {
		t.Fatalf("OK = %d, want 50", r.OK)
	}
	// The last call was intended at 245 ms but could only start at ~450 ms.
	if r.Latency.Max() < 240*time.Millisecond || r.Late < 30 {
		t.Fatalf("max latency %v, late %d: queueing behind MaxInFlight is hidden", r.Latency.Max(), r.Late)
	}
}

func TestRun_ContextCancelled_StopsSendingAndReturnsWhatWasMeasured(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	call := func(ctx context.Context, in time.Time) (Sample, error) {
		// Every 10th call hangs until cancelled, like a stuck request.
		if calls.Add(1)%10 == 0 {
			<-ctx.Done()
			return Sample{}, ctx.Err()
		}
		return noop(ctx, in)
	}
	time.AfterFunc(200*time.Millisecond, cancel)
	begin := time.Now()
	r, err := Run(ctx, Plan{Rate: 100, Duration: 10 * time.Second}, call)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Fatalf("Run returned after %v", took)
	}
	if r.Sent < 15 || r.Sent > 25 || r.OK+r.Aborted != r.Sent || r.Aborted < 1 || r.Errors != 0 {
		t.Fatalf("sent %d ok %d aborted %d errors %d, want ~20 sent, the hung ones aborted", r.Sent, r.OK, r.Aborted, r.Errors)
	}
	if r.Latency.Count() != r.OK {
		t.Fatalf("recorded %d latencies for %d OK", r.Latency.Count(), r.OK)
	}
}

func TestRun_Errors_CountedWithDistinctSamples(t *testing.T) {
	var n atomic.Int64
	call := func(ctx context.Context, in time.Time) (Sample, error) {
		i := n.Add(1)
		if i%2 == 0 {
			return Sample{}, fmt.Errorf("boom %d", i%30) // 15 distinct messages
		}
		return noop(ctx, in)
	}
	r, err := Run(context.Background(), Plan{Rate: 400, Duration: 250 * time.Millisecond}, call)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 100 || r.OK != 50 || r.Errors != 50 || r.Latency.Count() != 50 {
		t.Fatalf("sent %d ok %d errors %d recorded %d", r.Sent, r.OK, r.Errors, r.Latency.Count())
	}
	if len(r.ErrorSamples) != maxErrorSamples {
		t.Fatalf("ErrorSamples = %q, want %d", r.ErrorSamples, maxErrorSamples)
	}
	slices.Sort(r.ErrorSamples)
	if len(slices.Compact(r.ErrorSamples)) != maxErrorSamples {
		t.Fatalf("ErrorSamples repeat: %q", r.ErrorSamples)
	}
}

func TestRun_Sample_RecordsWhatTheCallReports(t *testing.T) {
	var n atomic.Int64
	call := func(_ context.Context, in time.Time) (Sample, error) {
		if n.Add(1)%2 == 0 {
			return Sample{Overhead: None, Service: None}, nil
		}
		time.Sleep(3 * time.Millisecond)
		return Sample{TTFC: time.Since(in), Overhead: 300 * time.Microsecond, Service: 2 * time.Millisecond}, nil
	}
	r, err := Run(context.Background(), Plan{Rate: 200, Duration: 100 * time.Millisecond}, call)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 20 || r.TTFC.Count() != 10 || r.Overhead.Count() != 10 || r.Net.Count() != 10 {
		t.Fatalf("ok %d ttfc %d overhead %d net %d, want 20 10 10 10", r.OK, r.TTFC.Count(), r.Overhead.Count(), r.Net.Count())
	}
	if r.Overhead.Min() != 300*time.Microsecond || r.Overhead.Max() != 300*time.Microsecond {
		t.Fatalf("overhead %v..%v, want 300µs", r.Overhead.Min(), r.Overhead.Max())
	}
	// Net is latency minus the service time the call reported. The call
	// slept 3 ms, so net is at least 1 ms (causality); and the call's TTFC,
	// taken just before it returned, is its latency but for the return
	// itself, so net's median is TTFC's minus the 2 ms, within the 1 ms that
	// allows for histogram buckets and a preempted return. (A fixed ≤ 3 ms
	// bound failed on a busy box, where the 3 ms sleep took 4.5.)
	net, ttfc := r.Net.Quantile(0.5), r.TTFC.Quantile(0.5)
	if net < time.Millisecond || net < ttfc-2*time.Millisecond-time.Millisecond || net > ttfc-2*time.Millisecond+time.Millisecond {
		t.Fatalf("net p50 = %v, want at least 1ms and the TTFC p50 %v minus the 2ms service", net, ttfc)
	}
}

func TestRun_InvalidPlan_ReportsEveryField(t *testing.T) {
	_, err := Run(context.Background(), Plan{Rate: 0, Duration: -1, Warmup: -1, MaxInFlight: -1}, noop)
	if !errors.Is(err, ErrPlan) {
		t.Fatalf("err = %v, want ErrPlan", err)
	}
	for _, field := range []string{"Rate", "Duration", "Warmup", "MaxInFlight"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}

func TestRecorder_Record_DoesNotAllocateOnceWarm(t *testing.T) {
	var r recorder
	now := time.Now()
	s := Sample{TTFC: time.Millisecond, Overhead: 300 * time.Microsecond, Service: 2 * time.Millisecond}
	r.record(now, now, now.Add(time.Millisecond), s, nil, false) // allocates the histograms
	if n := testing.AllocsPerRun(1000, func() {
		r.record(now, now.Add(time.Microsecond), now.Add(3*time.Millisecond), s, nil, false)
	}); n != 0 {
		t.Fatalf("record allocates %v times per call, want 0", n)
	}
}
