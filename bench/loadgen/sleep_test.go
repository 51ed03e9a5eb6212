package loadgen

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/loom-gateway/loom/bench/histogram"
)

func TestSleeper_WakesJustAfterTheTarget(t *testing.T) {
	s, lateness := newSleeper(), histogram.New()
	start := time.Now()
	for i := range 2000 {
		at := start.Add(time.Duration(i) * 500 * time.Microsecond)
		if err := s.until(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		lateness.Record(time.Since(at))
	}
	t.Logf("lateness p50 %v p90 %v p99 %v max %v, slack %v", lateness.Quantile(0.5), lateness.Quantile(0.9),
		lateness.Quantile(0.99), lateness.Max(), s.slack)
	// Loose bounds: the test must hold on a loaded CI box; the real numbers are in the log.
	// (make test runs packages in parallel under -race on two cores: a p90
	// of 212 µs was seen there; a sleeper that lost its spin shows
	// milliseconds at p50 too.) Why the margins hold: the 2,000 targets are
	// 500 µs apart over one second, so a p90 above 2 ms needs the process
	// kept off the CPU for 2 ms or more around 200 of them, some 100 ms of
	// the second, which a scheduler sharing two cores does not do to a
	// runnable process; a p50 above 200 µs needs half the wake-ups hit, a
	// broken spin rather than a busy box. Never early is causality, no margin.
	if p50 := lateness.Quantile(0.5); p50 > 200*time.Microsecond {
		t.Fatalf("p50 lateness %v", p50)
	}
	if p90 := lateness.Quantile(0.9); p90 > 2*time.Millisecond {
		t.Fatalf("p90 lateness %v", p90)
	}
	if lateness.Min() < 0 {
		t.Fatalf("woke %v before the target", -lateness.Min())
	}
}

func TestSleeper_LongWait_UsesTimerAndHonoursCancel(t *testing.T) {
	s := newSleeper()
	at := time.Now().Add(20 * time.Millisecond)
	if err := s.until(context.Background(), at); err != nil || time.Now().Before(at) || time.Since(at) > 5*time.Millisecond {
		t.Fatalf("woke %v after the target, err %v", time.Since(at), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := s.until(ctx, begin.Add(time.Hour)); !errors.Is(err, context.DeadlineExceeded) || time.Since(begin) > time.Second {
		t.Fatalf("err %v after %v, want DeadlineExceeded promptly", err, time.Since(begin))
	}
}

func TestSleeper_BurstOfHiccups_DoesNotTrapItSpinning(t *testing.T) {
	s := newSleeper()
	for range 100 {
		s.learn(5 * time.Millisecond)
	}
	if s.slack > maxSlack {
		t.Fatalf("slack %v above maxSlack", s.slack)
	}
	for range 100 {
		s.learn(70 * time.Microsecond)
	}
	if s.slack < 68*time.Microsecond || s.slack > 72*time.Microsecond {
		t.Fatalf("slack %v, want back at ~70µs", s.slack)
	}
	s.learn(-time.Millisecond) // an interrupted sleep teaches nothing
	if s.slack < 68*time.Microsecond {
		t.Fatalf("slack %v after an interrupted sleep", s.slack)
	}
}
