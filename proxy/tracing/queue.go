package tracing

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Stats are the queue's running totals. Every span handed to the queue ends
// up in exactly one of Exported, Dropped or Pending, so
// Ended = Exported+Dropped+Pending, and nothing disappears unaccounted.
type Stats struct {
	Ended       uint64 // spans the SDK handed to the queue
	Exported    uint64 // spans the collector accepted
	Dropped     uint64 // all drops: QueueFull + AtShutdown + Invalid
	QueueFull   uint64 // dropped because the queue was full, by count or by bytes
	AtShutdown  uint64 // dropped because shutdown's deadline came first
	Invalid     uint64 // dropped because the collector refused them as malformed or too large
	ExportFails uint64 // failed export attempts (each retried)
	Pending     int    // waiting in the queue or in the batch being sent
	PendingSize int64  // the estimated encoded bytes of Pending
}

// queueOptions size the queue; see config.Tracing.
type queueOptions struct {
	size, batchSize       int
	queueBytes            int64 // 0: no byte bound
	batchBytes            int   // 0: no byte bound
	batchTimeout, timeout time.Duration
}

// queued is a span with its estimated encoded size, computed once.
type queued struct {
	span sdktrace.ReadOnlySpan
	size int
}

// queue is a span processor like the SDK's batch processor, with
// differences that make loss impossible to miss and impossible to cause
// from outside: a batch that fails to export is retried until it succeeds
// or shutdown's deadline passes (the SDK's processor drops it); a batch the
// collector refuses as malformed or too large is split until the spans it
// refuses are found, and only those are dropped, so no span can stop the
// queue; the queue and each batch are bounded by bytes as well as count;
// and every drop is counted by cause (the SDK's count is private). OnEnd
// never blocks the call that ended the span.
type queue struct {
	exp    sdktrace.SpanExporter
	log    *slog.Logger
	in     chan queued
	flushc chan chan struct{}
	stop   chan struct{} // closed by Shutdown: export what is left, then exit
	done   chan struct{} // closed when the loop has exited
	// aborted ends when Shutdown's deadline passes: give up now.
	aborted context.Context
	abort   context.CancelFunc
	once    sync.Once
	stopped atomic.Bool
	opts    queueOptions

	ended, exported, queueFull, atShutdown, invalid, fails atomic.Uint64
	inBatch                                                atomic.Int64
	// bytes is the estimated size of every span queued or in the batch
	// being sent; OnEnd refuses a span that would take it past queueBytes.
	bytes atomic.Int64

	// lastInvalidLog rate-limits the log of refused spans (loop goroutine only).
	lastInvalidLog time.Time
}

func newQueue(exp sdktrace.SpanExporter, log *slog.Logger, o queueOptions) *queue {
	q := &queue{
		exp: exp, log: log, opts: o,
		in:     make(chan queued, o.size),
		flushc: make(chan chan struct{}),
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	q.aborted, q.abort = context.WithCancel(context.Background())
	go q.loop()
	return q
}

var _ sdktrace.SpanProcessor = (*queue)(nil)

func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues s without blocking; a full queue (by count or by bytes)
// drops s and counts it.
func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	q.ended.Add(1)
	if q.stopped.Load() {
		q.atShutdown.Add(1)
		return
	}
	size := spanSize(s)
	if b := q.bytes.Add(int64(size)); q.opts.queueBytes > 0 && b > q.opts.queueBytes {
		q.bytes.Add(-int64(size))
		q.full("queue_bytes", q.opts.queueBytes)
		return
	}
	select {
	case q.in <- queued{s, size}:
	default:
		q.bytes.Add(-int64(size))
		q.full("queue_size", int64(cap(q.in)))
	}
}

func (q *queue) full(bound string, limit int64) {
	if q.queueFull.Add(1) == 1 {
		q.log.Error("span queue full: dropping spans until the collector catches up; totals are logged every minute",
			bound, limit)
	}
}

func (q *queue) loop() {
	defer close(q.done)
	batch := make([]queued, 0, q.opts.batchSize)
	batchBytes := 0
	timer := time.NewTimer(q.opts.batchTimeout)
	defer timer.Stop()
	send := func() {
		if len(batch) > 0 {
			q.export(batch)
			clear(batch)
			batch, batchBytes = batch[:0], 0
		}
		timer.Reset(q.opts.batchTimeout)
	}
	add := func(s queued) {
		// A span that would take the batch past its byte bound goes in the
		// next one; a span over the bound on its own goes alone.
		if q.opts.batchBytes > 0 && len(batch) > 0 && batchBytes+s.size > q.opts.batchBytes {
			send()
		}
		batch = append(batch, s)
		batchBytes += s.size
		q.inBatch.Store(int64(len(batch)))
		if len(batch) == q.opts.batchSize {
			send()
		}
	}
	for {
		select {
		case s := <-q.in:
			add(s)
		case <-timer.C:
			send()
		case ack := <-q.flushc:
			q.drain(add, send)
			close(ack)
		case <-q.stop:
			q.drain(add, send)
			return
		}
	}
}

// drain exports everything queued now, in full batches.
func (q *queue) drain(add func(queued), send func()) {
	for {
		select {
		case s := <-q.in:
			add(s)
		default:
			send()
			return
		}
	}
}

// export sends batch until the collector takes it. A transient failure is
// retried with backoff (1 s doubling to 30 s) until shutdown's deadline; a
// permanent one (the collector refuses the data itself) splits the batch in
// halves, recursively, so the good spans go through and only the refused
// ones are dropped, counted and logged.
func (q *queue) export(batch []queued) {
	var refused []queued
	var reason error
	q.exportSplit(batch, &refused, &reason)
	size := int64(0)
	for _, s := range batch {
		size += int64(s.size)
	}
	q.bytes.Add(-size)
	q.inBatch.Store(0)
	if len(refused) > 0 {
		q.invalid.Add(uint64(len(refused)))
		q.logRefused(refused, reason)
	}
}

func (q *queue) exportSplit(batch []queued, refused *[]queued, reason *error) {
	if q.aborted.Err() != nil {
		q.atShutdown.Add(uint64(len(batch)))
		return
	}
	err := q.send(batch)
	switch {
	case err == nil:
		q.exported.Add(uint64(len(batch)))
	case errors.Is(err, errAborted):
		q.atShutdown.Add(uint64(len(batch)))
	case len(batch) == 1:
		*refused = append(*refused, batch[0])
		*reason = err
	default:
		half := len(batch) / 2
		q.exportSplit(batch[:half], refused, reason)
		q.exportSplit(batch[half:], refused, reason)
	}
}

var errAborted = errors.New("shutdown deadline passed")

// send exports batch, retrying transient failures; it returns nil, a
// permanent error, or errAborted.
func (q *queue) send(batch []queued) error {
	spans := make([]sdktrace.ReadOnlySpan, len(batch))
	for i, s := range batch {
		spans[i] = s.span
	}
	backoff := time.Second
	for {
		ctx, cancel := context.WithTimeout(q.aborted, q.opts.timeout)
		err := q.exp.ExportSpans(ctx, spans)
		cancel()
		if err == nil || partialSuccessOnly(err) {
			// A partial success was delivered: what the collector rejected
			// it will reject again, so a retry would only duplicate the rest.
			if err != nil {
				q.log.Warn("collector accepted a span batch in part", "spans", len(spans), "error", err)
			}
			return nil
		}
		n := q.fails.Add(1)
		if permanent(err) {
			return err
		}
		if n == 1 || n%10 == 0 {
			q.log.Warn("span export failed; retrying the same batch", "spans", len(spans), "error", err,
				"failed_attempts", n, "pending", len(q.in)+len(spans))
		}
		select {
		case <-q.aborted.Done():
			return errAborted
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// invalidLogEvery rate-limits the log line about refused spans.
const invalidLogEvery = 10 * time.Second

// logRefused names the trace ids of spans the collector refused, at most
// once per invalidLogEvery (the count is always in the metrics).
func (q *queue) logRefused(refused []queued, reason error) {
	now := time.Now()
	if !q.lastInvalidLog.IsZero() && now.Sub(q.lastInvalidLog) < invalidLogEvery {
		return
	}
	q.lastInvalidLog = now
	ids := make([]string, 0, min(len(refused), 10))
	for _, s := range refused[:min(len(refused), 10)] {
		ids = append(ids, s.span.SpanContext().TraceID().String())
	}
	q.log.Error("collector refused spans as malformed or too large; dropped them, the rest of the queue goes on",
		"spans", len(refused), "trace_ids", strings.Join(ids, ","), "error", reason,
		"dropped_invalid_total", q.invalid.Load())
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
		QueueFull: q.queueFull.Load(), AtShutdown: q.atShutdown.Load(), Invalid: q.invalid.Load(),
		ExportFails: q.fails.Load(),
		Pending:     len(q.in) + int(q.inBatch.Load()), PendingSize: q.bytes.Load(),
	}
	s.Dropped = s.QueueFull + s.AtShutdown + s.Invalid
	return s
}

// Protobuf framing per span and per attribute, generously rounded up so
// that a batch estimated under BatchBytes encodes under it too.
const (
	spanOverhead = 128 // ids, times, kind, flags, status, the span's own framing
	attrOverhead = 12  // a KeyValue's and an AnyValue's tags and lengths
)

// spanSize estimates the OTLP protobuf size of s. It reads what the span
// holds without copying it, but for string slices, which the SDK only
// hands out as copies.
func spanSize(s sdktrace.ReadOnlySpan) int {
	n := spanOverhead + len(s.Name()) + len(s.Status().Description)
	n += attrsSize(s.Attributes())
	for _, e := range s.Events() {
		n += spanOverhead/4 + len(e.Name) + attrsSize(e.Attributes)
	}
	for _, l := range s.Links() {
		n += spanOverhead/2 + attrsSize(l.Attributes)
	}
	return n
}

func attrsSize(kvs []attribute.KeyValue) int {
	n := 0
	for _, kv := range kvs {
		n += attrOverhead + len(kv.Key) + valueSize(kv.Value)
	}
	return n
}

func valueSize(v attribute.Value) int {
	switch v.Type() {
	case attribute.STRING:
		return len(v.AsString())
	case attribute.STRINGSLICE:
		n := 0
		for _, s := range v.AsStringSlice() {
			n += attrOverhead + len(s)
		}
		return n
	case attribute.BOOLSLICE:
		return 4 * len(v.AsBoolSlice())
	case attribute.INT64SLICE:
		return 12 * len(v.AsInt64Slice())
	case attribute.FLOAT64SLICE:
		return 12 * len(v.AsFloat64Slice())
	case attribute.BYTESLICE:
		return len(v.AsByteSlice())
	case attribute.SLICE:
		n := 0
		for _, e := range v.AsSlice() {
			n += attrOverhead + valueSize(e)
		}
		return n
	case attribute.MAP:
		return attrsSize(v.AsMap())
	}
	return 12
}
