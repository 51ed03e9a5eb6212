// Package loadgen is the open-loop, constant-rate load generator behind make bench.
//
// Calls are scheduled at fixed intended times (start + i/rate) whatever the target does, and every
// latency is measured from the intended time, not from when the call actually went out. A stall in
// the target or in the generator therefore shows up in the latency of every call scheduled during it
// (no coordinated omission), and a generator that cannot keep up says so in Result.Late.
//
// It must never pace itself by the target's answers, and never spend so much CPU that it disturbs
// the system it measures: it shares a small box with it.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/loom-gateway/loom/bench/histogram"
)

// Call makes one request. intended is when it should have been sent; the generator measures latency
// from intended, so a stall in the generator or the target is never hidden (no coordinated
// omission). Call returns the time to the first chunk of the response (0 if not streaming) and an
// error for a failed call. It must read the whole response.
//
// Call is invoked from many goroutines at once. It should give up when ctx is done.
type Call func(ctx context.Context, intended time.Time) (Sample, error)

// None marks Sample.Overhead or Sample.Service as not reported. The zero Sample reports an overhead
// and a service time of 0, so a Call that has neither must say so.
const None time.Duration = -1

// Sample is what a Call measured beyond its own duration.
type Sample struct {
	TTFC     time.Duration // time from intended send to the first response chunk; 0 = not measured
	Overhead time.Duration // optional: what the target reported as its own overhead (a response header); <0 = none
	Service  time.Duration // optional: what the upstream says it deliberately waited (x-mock-service-ms); <0 = none
}

// DefaultMaxInFlight is Plan.MaxInFlight when left at 0.
const DefaultMaxInFlight = 4096

// Plan is a constant-rate run.
type Plan struct {
	Rate        float64       // requests per second, evenly spaced
	Duration    time.Duration // how long to send (after Warmup)
	Warmup      time.Duration // sent at the same rate but not recorded
	MaxInFlight int           // cap on concurrent calls; when reached, new calls wait (and their latency, measured from intended, shows it); default 4096
}

// ErrPlan is wrapped by every problem Run finds in a Plan.
var ErrPlan = errors.New("invalid load plan")

// validate reports every problem at once, each naming its field.
func (p Plan) validate() error {
	var errs []error
	if !(p.Rate > 0) || math.IsInf(p.Rate, 1) {
		errs = append(errs, fmt.Errorf("%w: Rate %v: must be a positive number of requests per second", ErrPlan, p.Rate))
	}
	if p.Duration <= 0 {
		errs = append(errs, fmt.Errorf("%w: Duration %v: must be positive", ErrPlan, p.Duration))
	}
	if p.Warmup < 0 {
		errs = append(errs, fmt.Errorf("%w: Warmup %v: must not be negative", ErrPlan, p.Warmup))
	}
	if p.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxInFlight %d: must not be negative", ErrPlan, p.MaxInFlight))
	}
	return errors.Join(errs...)
}

// Result is what Run measured over the calls scheduled after the warmup. Latency, TTFC, Overhead
// and Net count successful calls only; a failed call counts in Errors and nowhere else, so a fast
// error cannot make the latency look better.
type Result struct {
	Latency  *histogram.Histogram // intended send → call returned (whole response read)
	TTFC     *histogram.Histogram // intended send → first chunk (only samples with TTFC>0)
	Overhead *histogram.Histogram // reported overheads (only samples with Overhead>=0)
	Net      *histogram.Histogram // Latency minus the upstream's reported Service (only samples with Service>=0)
	Lag      *histogram.Histogram // intended send → call started: the generator's own scheduling error, all calls

	Sent, OK, Errors int64
	Aborted          int64         // calls that failed after ctx was done: cut short, not the target's fault
	Elapsed          time.Duration // first intended measured send → last measured call returned
	Late             int64         // calls that started more than 1 ms after their intended time (generator could not keep up)
	ErrorSamples     []string      // up to 10 distinct error messages
	Workers          int           // goroutines the pool grew to: about the peak number of calls in flight
}

// Throughput is the rate of successful calls over Elapsed.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// lateAfter is how far behind its intended time a call may start before it counts as Late.
const lateAfter = time.Millisecond

// Run sends calls at plan.Rate until plan.Duration has passed (after warmup), waits for all calls in
// flight, and returns what it measured. When ctx is done it stops sending, waits for the calls in
// flight (which get the same ctx) and returns what it measured so far with ctx.Err().
func Run(ctx context.Context, plan Plan, call Call) (Result, error) {
	if err := plan.validate(); err != nil {
		return Result{}, err
	}
	if plan.MaxInFlight == 0 {
		plan.MaxInFlight = DefaultMaxInFlight
	}
	p := newPool(ctx, call, plan.MaxInFlight)
	s := newSleeper()
	end := plan.Warmup + plan.Duration
	start := time.Now()
	var err error
	for i := 0; ; i++ {
		// Each intended time is computed from the start, never by adding intervals, so rounding
		// cannot drift the rate.
		off := time.Duration(float64(i) * float64(time.Second) / plan.Rate)
		if off >= end {
			break
		}
		intended := start.Add(off)
		if err = s.until(ctx, intended); err != nil {
			break
		}
		if err = ctx.Err(); err != nil { // the sleeper only notices cancellation in long waits
			break
		}
		if err = p.dispatch(job{intended: intended, measured: off >= plan.Warmup}); err != nil {
			break
		}
	}
	p.wait()
	r := p.result()
	r.Elapsed = max(time.Since(start.Add(plan.Warmup)), 0)
	return r, err
}
