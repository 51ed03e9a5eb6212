package loadgen

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/loom-gateway/loom/bench/histogram"
)

// maxErrorSamples bounds Result.ErrorSamples.
const maxErrorSamples = 10

// job is one scheduled call.
type job struct {
	intended time.Time
	measured bool // false during warmup
}

// pool runs calls on worker goroutines, one call at a time each, so the number of workers is the
// number of calls in flight. It grows on demand up to max and never shrinks during a run. Only the
// dispatching goroutine touches pool's fields until wait returns.
//
// Each worker's histograms cost ~31 KiB apiece once used (up to 5), so a pool that a stalled target
// drives to the default cap of 4096 holds 0.25-0.6 GiB; set Plan.MaxInFlight lower on a small box.
type pool struct {
	ctx     context.Context
	call    Call
	max     int
	jobs    chan job // unbuffered: a send succeeds only when a worker is idle and waiting
	workers []*worker
	done    sync.WaitGroup
}

func newPool(ctx context.Context, call Call, maxInFlight int) *pool {
	return &pool{ctx: ctx, call: call, max: maxInFlight, jobs: make(chan job)}
}

// dispatch hands j to an idle worker, starts a new one if none is idle and the cap allows, or else
// waits for one to come free. The wait delays j past its intended time, which its latency shows.
func (p *pool) dispatch(j job) error {
	select {
	case p.jobs <- j:
	default:
		if len(p.workers) < p.max {
			w := &worker{call: p.call, ctx: p.ctx}
			p.workers = append(p.workers, w)
			p.done.Add(1)
			go w.run(p.jobs, j, &p.done)
			break
		}
		select {
		case p.jobs <- j:
		case <-p.ctx.Done():
			return p.ctx.Err()
		}
	}
	// The woken worker sits in this P's run queue; yield so it sends now rather than after the
	// dispatcher's next sleep (a kernel sleep holds the P).
	runtime.Gosched()
	return nil
}

// wait stops the workers once they have finished their calls.
func (p *pool) wait() {
	close(p.jobs)
	p.done.Wait()
}

// result merges what the workers recorded. Call it after wait.
func (p *pool) result() Result {
	r := Result{
		Latency: histogram.New(), TTFC: histogram.New(), Overhead: histogram.New(),
		Net: histogram.New(), Lag: histogram.New(), Workers: len(p.workers),
	}
	for _, w := range p.workers {
		rec := &w.rec
		r.Latency.Merge(rec.latency)
		r.TTFC.Merge(rec.ttfc)
		r.Overhead.Merge(rec.overhead)
		r.Net.Merge(rec.net)
		r.Lag.Merge(rec.lag)
		r.Sent += rec.sent
		r.OK += rec.ok
		r.Errors += rec.errors
		r.Aborted += rec.aborted
		r.Late += rec.late
		for _, msg := range rec.errorSamples {
			if len(r.ErrorSamples) < maxErrorSamples && !slices.Contains(r.ErrorSamples, msg) {
				r.ErrorSamples = append(r.ErrorSamples, msg)
			}
		}
	}
	return r
}

// worker makes calls and records them in its own recorder, so the hot path takes no lock.
type worker struct {
	call Call
	ctx  context.Context
	rec  recorder
}

func (w *worker) run(jobs <-chan job, first job, done *sync.WaitGroup) {
	defer done.Done()
	for j, ok := first, true; ok; j, ok = <-jobs {
		w.do(j)
	}
}

func (w *worker) do(j job) {
	begin := time.Now()
	s, err := w.call(w.ctx, j.intended)
	end := time.Now()
	if !j.measured {
		return
	}
	w.rec.record(j.intended, begin, end, s, err, w.ctx.Err() != nil)
}

// recorder holds one worker's measurements. Its histograms are allocated on first use (about 31 KiB
// each), so a worker costs memory only for what its target actually reports.
type recorder struct {
	latency, ttfc, overhead, net, lag *histogram.Histogram

	sent, ok, errors, aborted, late int64
	errorSamples                    []string
}

func (r *recorder) record(intended, begin, end time.Time, s Sample, err error, cancelled bool) {
	r.sent++
	lag := begin.Sub(intended)
	observe(&r.lag, lag)
	if lag > lateAfter {
		r.late++
	}
	switch {
	case err != nil && cancelled:
		r.aborted++
		return
	case err != nil:
		r.errors++
		if msg := err.Error(); len(r.errorSamples) < maxErrorSamples && !slices.Contains(r.errorSamples, msg) {
			r.errorSamples = append(r.errorSamples, msg)
		}
		return
	}
	r.ok++
	latency := end.Sub(intended)
	observe(&r.latency, latency)
	if s.TTFC > 0 {
		observe(&r.ttfc, s.TTFC)
	}
	if s.Overhead >= 0 {
		observe(&r.overhead, s.Overhead)
	}
	if s.Service >= 0 {
		observe(&r.net, latency-s.Service)
	}
}

// observe records d in *h, allocating the histogram the first time.
func observe(h **histogram.Histogram, d time.Duration) {
	if *h == nil {
		*h = histogram.New()
	}
	(*h).Record(d)
}
