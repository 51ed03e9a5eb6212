package faults_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// The suite's own judgements run in `make test`, without the stack: a
// mistake in them would pass or fail the suite for the wrong reason.

func TestKindOf_MixHasAboutOnePercentResetsAndAbortsOfStreams(t *testing.T) {
	var count [len(kindNames)]int
	streams := 0
	const n = 20_000
	for i := range n {
		k := kindOf(i)
		count[k]++
		if k.stream() {
			streams++
		}
	}
	for _, k := range []kind{upstreamReset, clientAbort} {
		if share := float64(count[k]) / float64(streams); share < 0.008 || share > 0.012 {
			t.Errorf("%v: %d of %d streams (%.2f %%), want about 1 %%", k, count[k], streams, share*100)
		}
	}
	if count[unary] < n/3 || streams < n/3 || count[unaryFail] == 0 {
		t.Errorf("mix %v: want unary and streamed calls about half and half, and some upstream failures", count)
	}
	a, b := 0, 0
	for i := range n {
		if tenantOf(i) == tenants[0] {
			a++
		} else {
			b++
		}
	}
	if a-b > 3 || b-a > 3 {
		t.Errorf("tenants get %d and %d calls, want about the same", a, b)
	}
}

func TestCallOf_ReadsBackTheTraceIDOfACall_RefusesOthers(t *testing.T) {
	for _, n := range []int{0, 1, 99_999, 1 << 40} {
		if got, ok := callOf(traceID(n)); !ok || got != n {
			t.Errorf("callOf(traceID(%d)) = %d, %v", n, got, ok)
		}
	}
	for _, id := range []string{"4bf92f3577b34da6a3ce929d0e0e4736", "fa", "fa000000000000000000000000000000", strings.Repeat("f", 32)} {
		if n, ok := callOf(id); ok {
			t.Errorf("callOf(%q) = %d, true; want not a call of the suite", id, n)
		}
	}
}

func TestReadStream_CompleteOnlyWhenEndedAfterDoneOrAnErrorEvent(t *testing.T) {
	event := "data: {\"choices\":[]}\n\n"
	for _, tc := range []struct {
		name  string
		body  io.Reader
		abort bool
		want  state
	}{
		{"done", strings.NewReader(event + "data: [DONE]\n\n"), false, answered},
		{"error event then end", strings.NewReader(event + "data: {\"error\":{\"message\":\"upstream reset\"}}\n\n"), false, answered},
		{"ended without done", strings.NewReader(event), false, cut},
		{"connection broke", io.MultiReader(strings.NewReader(event), iotest.ErrReader(io.ErrUnexpectedEOF)), false, cut},
		{"done then broke", io.MultiReader(strings.NewReader(event+"data: [DONE]\n\n"), iotest.ErrReader(errors.New("reset"))), false, cut},
		{"abort after the first event", strings.NewReader(event + event), true, aborted},
		{"abort but nothing came", strings.NewReader(""), true, cut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, why := readStream(tc.body, tc.abort); got != tc.want {
				t.Errorf("readStream = %v (%s), want %v", got, why, tc.want)
			}
		})
	}
}

func TestCrashWindow_HoldsOnlyCallsSentToTheKilledProcessEndedJustBeforeIt(t *testing.T) {
	t0 := time.Now()
	kills := []time.Time{t0.Add(10 * time.Second), t0.Add(20 * time.Second)}
	call := func(start, end time.Duration) outcome { return outcome{start: t0.Add(start), end: t0.Add(end)} }
	s := time.Second
	for _, tc := range []struct {
		name string
		o    outcome
		want int
	}{
		{"answered just before the first kill", call(9*s, 10*s-100*time.Millisecond), 0},
		{"its last bytes read after the kill", call(9*s, 10*s+500*time.Millisecond), 0},
		{"answered long before the kill", call(8*s, 9*s), -1},
		{"sent after the kill: the next process's", call(10*s+100*time.Millisecond, 10*s+200*time.Millisecond), -1},
		{"ended long after the kill", call(9*s, 12*s), -1},
		{"the second kill", call(19*s, 20*s), 1},
	} {
		if got := crashWindow(kills, tc.o, 250*time.Millisecond); got != tc.want {
			t.Errorf("%s: window %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestFlat_LastThirdBeyondToleranceOfTheMiddleThird_NotFlat(t *testing.T) {
	m := soakMetric{name: "RSS", of: func(s soakSample) int64 { return s.rss }, scale: 1, slack: 10}
	series := func(vals ...int64) []soakSample {
		out := make([]soakSample, len(vals))
		for i, v := range vals {
			out[i].rss = v
		}
		return out
	}
	// A big warm-up is fine; so is noise within 20 %.
	if v := flat(m, series(10, 500, 900, 1000, 1000, 1100, 1050, 1150, 1000)); v != "" {
		t.Errorf("steady after warm-up: %s", v)
	}
	if v := flat(m, series(1000, 1000, 1000, 1000, 1100, 1200, 1400, 1500, 1600)); v == "" {
		t.Error("climbing by half: called flat")
	}
	// A sample that could not be read is left out, not counted as zero.
	if v := flat(m, series(1000, 1000, 1000, 1000, -1, 1000, 1000, -1, 1000)); v != "" {
		t.Errorf("with unread samples: %s", v)
	}
	if v := flat(m, series(1, 2)); v == "" {
		t.Error("two samples: called flat")
	}
}

func TestKilledBy_NamesTheKilledProcessACallWasSentTo(t *testing.T) {
	t0 := time.Now()
	s := time.Second
	killed := []life{{start: t0.Add(5 * s)}, {start: t0.Add(15 * s)}}
	kills := []time.Time{t0.Add(10 * s), t0.Add(20 * s)}
	for _, tc := range []struct {
		start time.Duration
		want  int
	}{
		{4 * s, -1}, // an earlier, gracefully stopped process
		{5 * s, 0},
		{10*s - 1, 0},
		{10 * s, -1}, // sent after the kill: the next process's
		{19 * s, 1},
		{21 * s, -1},
	} {
		if got := killedBy(kills, killed, outcome{start: t0.Add(tc.start)}); got != tc.want {
			t.Errorf("call sent at %v: killed process %d, want %d", tc.start, got, tc.want)
		}
	}
}
