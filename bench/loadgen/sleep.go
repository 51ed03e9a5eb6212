package loadgen

import (
	"context"
	"runtime"
	"time"
)

// The Go runtime's timers are no good for sub-millisecond pacing on Linux: an idle runtime waits in
// epoll with whole milliseconds, so time.Sleep(100µs) returns after about 1.1 ms and time.Sleep(1.5ms)
// after about 2 ms. The sleeper therefore works in three stages, measured on a 2-core VM:
//
//   - coarse: the runtime timer, for all but the last coarseMargin of waits longer than coarseAbove;
//   - fine: a kernel sleep (nanosleep on Linux), which reliably wakes a fixed ~75 µs late, so it is
//     asked to wake that much (its median lateness, learned as it goes) plus spinWindow early;
//   - spin: time.Now in a loop with runtime.Gosched, for the last few microseconds only.
//
// Every wake costs ~40 µs of CPU on a VM whatever the mechanism, so the sleeper wakes once per call
// and spins only for the last spinWindow. When intervals are shorter than the lateness plus
// spinWindow (beyond ~10,000 calls per second) there is no time left to sleep and it spins throughout.
const (
	coarseAbove  = 3 * time.Millisecond
	coarseMargin = 1500 * time.Microsecond // the runtime timer overshoots by up to ~1.1 ms
	spinWindow   = 15 * time.Microsecond   // covers the fine sleep's jitter to about p95

	// The lateness estimate tracks the median and moves at most slackStep per sleep, so a burst of
	// hiccups (a VM descheduled, a GC) cannot drag it up to where it would spin away every interval.
	initialSlack = 75 * time.Microsecond
	slackStep    = 2 * time.Microsecond
	maxSlack     = 200 * time.Microsecond
)

// sleeper waits until a point in time. It is used by one goroutine only.
type sleeper struct {
	timer *time.Timer
	slack time.Duration // how late a fine sleep wakes: its running median
}

func newSleeper() *sleeper {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &sleeper{timer: t, slack: initialSlack}
}

// until returns at t or within a few microseconds after it, or early with ctx's error (noticed only in
// waits longer than coarseAbove; the caller checks ctx after each wait).
func (s *sleeper) until(ctx context.Context, t time.Time) error {
	for {
		d := time.Until(t)
		switch {
		case d > coarseAbove:
			s.timer.Reset(d - coarseMargin)
			select {
			case <-s.timer.C:
			case <-ctx.Done():
				s.timer.Stop()
				return ctx.Err()
			}
		case d > s.slack+spinWindow:
			want := d - s.slack - spinWindow
			begin := time.Now()
			fineSleep(want)
			s.learn(time.Since(begin) - want)
		default:
			for time.Now().Before(t) {
				runtime.Gosched()
			}
			return nil
		}
	}
}

// learn moves the lateness estimate one bounded step towards a fine sleep's observed lateness.
func (s *sleeper) learn(late time.Duration) {
	if late < 0 { // a signal cut the sleep short, which says nothing about its lateness
		return
	}
	step := min(max(late-s.slack, -slackStep), slackStep)
	s.slack = min(max(s.slack+step, 0), maxSlack)
}
