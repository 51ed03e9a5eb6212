package tracing

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Stats are the queue's running totals. Every span handed to the queue ends
// up in exactly one of Exported, Dropped or Pending, so
// Enqueued+Dropped = spans ended, and nothing disappears unaccounted.
type Stats struct {
	Ended       uint64 // spans the SDK handed to the queue
	Exported    uint64 // spans the collector accepted
	Dropped     uint64 // all drops: QueueFull + AtShutdown
	QueueFull   uint64 // dropped because the queue was full
	AtShutdown  uint64 // dropped because shutdown's deadline came first
	ExportFails uint64 // failed export attempts (each retried)
	Pending     int    // waiting in the queue or in the batch being sent
}

// queue is a span processor like the SDK's batch processor, with two
// differences that make loss impossible to miss: a batch that fails to
// export is retried until it succeeds or shutdown's deadline passes (the
// SDK's processor drops it), and every drop is counted by cause (the SDK's
// count is private). OnEnd never blocks the call that ended the span.
type queue struct {
	exp    sdktrace.SpanExporter
	log    *slog.Logger
	in     chan sdktrace.ReadOnlySpan
	flushc chan chan struct{}
	stop   chan struct{} // closed by Shutdown: export what is left, then exit
	done   chan struct{} // closed when the loop has exited
	// aborted ends when Shutdown's deadline passes: give up now.
	aborted context.Context
	abort   context.CancelFunc
	once    sync.Once
	stopped atomic.Bool

	batchSize    int
	batchTimeout time.Duration
	timeout      time.Duration

	ended, exported, queueFull, atShutdown, fails atomic.Uint64
	inBatch                                       atomic.Int64
}

func newQueue(exp sdktrace.SpanExporter, log *slog.Logger, size, batchSize int, batchTimeout, timeout time.Duration) *queue {
	q := &queue{
		exp: exp, log: log,
		in:     make(chan sdktrace.ReadOnlySpan, size),
		flushc: make(chan chan struct{}),
		stop:   make(chan struct{}), done: make(chan struct{}),
		batchSize: batchSize, batchTimeout: batchTimeout, timeout: timeout,
	}
	q.aborted, q.abort = context.WithCancel(context.Background())
	go q.loop()
	return q
}

var _ sdktrace.SpanProcessor = (*queue)(nil)

func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues s without blocking; a full queue drops s and counts it.
func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	q.ended.Add(1)
	if q.stopped.Load() {
		q.atShutdown.Add(1)
		return
	}
	select {
	case q.in <- s:
	default:
		if q.queueFull.Add(1) == 1 {
			q.log.Error("span queue full: dropping spans until the collector catches up; totals are logged every minute",
				"queue_size", cap(q.in))
		}
	}
}

func (q *queue) loop() {
	defer close(q.done)
	batch := make([]sdktrace.ReadOnlySpan, 0, q.batchSize)
	timer := time.NewTimer(q.batchTimeout)
	defer timer.Stop()
	send := func() {
		if len(batch) > 0 {
			q.export(batch)
			clear(batch)
			batch = batch[:0]
		}
		timer.Reset(q.batchTimeout)
	}
	for {
		select {
		case s := <-q.in:
			batch = append(batch, s)
			q.inBatch.Store(int64(len(batch)))
			if len(batch) == q.batchSize {
				send()
			}
		case <-timer.C:
			send()
		case ack := <-q.flushc:
			q.drain(&batch, send)
			close(ack)
		case <-q.stop:
			q.drain(&batch, send)
			return
		}
	}
}

// drain exports everything queued now, in full batches.
func (q *queue) drain(batch *[]sdktrace.ReadOnlySpan, send func()) {
	for {
		select {
		case s := <-q.in:
			*batch = append(*batch, s)
			q.inBatch.Store(int64(len(*batch)))
			if len(*batch) == q.batchSize {
				send()
			}
		default:
			send()
			return
		}
	}
}

// export sends batch until the collector takes it. Between failed attempts
// it backs off (1 s doubling to 30 s); only an aborted shutdown gives up,
// and then the batch is counted as dropped.
func (q *queue) export(batch []sdktrace.ReadOnlySpan) {
	n := uint64(len(batch))
	backoff := time.Second
	for {
		ctx, cancel := context.WithTimeout(q.aborted, q.timeout)
		err := q.exp.ExportSpans(ctx, batch)
		cancel()
		if err == nil {
			q.exported.Add(n)
			q.inBatch.Store(0)
			return
		}
		if q.fails.Add(1) == 1 || q.fails.Load()%10 == 0 {
			q.log.Warn("span export failed; retrying the same batch", "spans", n, "error", err,
				"failed_attempts", q.fails.Load(), "pending", len(q.in)+len(batch))
		}
		select {
		case <-q.aborted.Done():
			q.atShutdown.Add(n)
			q.inBatch.Store(0)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// ForceFlush exports everything queued before it returns, or until ctx ends.
func (q *queue) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flushc <- ack:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued, retrying until ctx ends; whatever is
// still unsent then is counted as dropped at shutdown.
func (q *queue) Shutdown(ctx context.Context) error {
	var err error
	q.once.Do(func() {
		q.stopped.Store(true)
		close(q.stop)
		select {
		case <-q.done:
		case <-ctx.Done():
			q.abort()
			<-q.done
			err = ctx.Err()
		}
		// Spans that raced past the stopped flag are still in the channel.
		q.atShutdown.Add(uint64(len(q.in)))
		q.abort()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := q.exp.Shutdown(sctx); serr != nil && err == nil {
			err = serr
		}
	})
	return err
}

// Stats returns the running totals.
func (q *queue) Stats() Stats {
	s := Stats{
		Ended: q.ended.Load(), Exported: q.exported.Load(),
		QueueFull: q.queueFull.Load(), AtShutdown: q.atShutdown.Load(), ExportFails: q.fails.Load(),
		Pending: len(q.in) + int(q.inBatch.Load()),
	}
	s.Dropped = s.QueueFull + s.AtShutdown
	return s
}
