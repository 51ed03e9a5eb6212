// Package tracing turns each finished call into OpenTelemetry spans, one
// SERVER span for the inbound request and one CLIENT span per upstream
// attempt, following the GenAI semantic conventions (v1.41), and delivers
// them over OTLP without ever losing one silently.
//
// A call is encoded once, straight from its call.Record, into OTLP protobuf
// (encode.go), appended to a durable spool on local disk (proxy/spool,
// group-committed), and shipped from there to the collector by one
// goroutine that advances the spool's cursor only when the collector has
// acknowledged. The request path never waits for the disk or the network.
//
// Every process start is a run: its calls are numbered 1, 2, 3... (loom.seq)
// under a fresh loom.run.id, the run opens with a start marker and a clean
// stop closes it with the last number, and the instance id is kept in the
// spool directory. So a lost call is a gap, and a crash is a run without a
// stop marker whose loss is bounded by the spool's commit window.
//
// It must never put a client key or an upstream credential on a span.
package tracing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/spool"
)

// Options are what the tracer needs beyond its configuration.
type Options struct {
	// ServiceVersion is service.version on every span.
	ServiceVersion string
	// Logger gets the export failures and drop totals. Nil discards them.
	Logger *slog.Logger
	// Send replaces the OTLP client the configuration describes: it gets
	// each encoded ExportTraceServiceRequest (tests use
	// tracingtest.Collector.Send). It returns the spans the collector
	// rejected in a partial success, or an error; wrap a refusal of the
	// data itself with Refused so the batch is split, not retried.
	Send func(ctx context.Context, req []byte) (rejected int64, err error)
	// StatsEvery is how often totals are logged while something is wrong
	// (calls dropped or exports failing). Zero means a minute.
	StatsEvery time.Duration
}

// Refused marks err as the collector refusing the data itself, for
// Options.Send: the shipper then splits the batch to set aside only the
// calls it refuses.
func Refused(err error) error { return &refusal{reason: err.Error()} }

// Stats are the tracer's running totals, in calls (a call is one record
// in the spool: its SERVER span and its CLIENT spans). Every call numbered
// is, at any moment, shipped, dropped or waiting in the spool.
type Stats struct {
	Calls       uint64 // numbered in this run (the last loom.seq)
	Shipped     uint64 // calls (and run markers) the collector accepted
	Dropped     uint64 // SpoolFull + Invalid + AtShutdown
	SpoolFull   uint64 // not recorded: the spool was full
	Invalid     uint64 // refused by the collector as malformed or too large
	AtShutdown  uint64 // lost at stop: only with a temporary spool
	ExportFails uint64 // failed export attempts (each retried)
	Rejected    uint64 // spans the collector accepted but rejected in a partial success
	Spool       spool.Stats
}

// Tracer is a call.Sink that records calls as spans.
type Tracer struct {
	cfg      config.Tracing
	log      *slog.Logger
	enc      *encoder
	spool    *spool.Spool
	tempDir  string // the spool's directory when it is temporary
	send     func(ctx context.Context, req []byte) (int64, error)
	closeFn  func() error
	instance string
	run      string
	seq      atomic.Int64
	bufs     sync.Pool // *[]byte
	refuse   bool

	full, invalid, atShutdown, fails, rejected, shipped atomic.Uint64
	lastFullLog                                         atomic.Int64

	shipCtx    context.Context
	stopShip   context.CancelFunc
	shipDone   chan struct{}
	flushNow   chan struct{} // Flush cuts the shipper's wait for a fuller batch short
	quit       chan struct{}
	logDone    chan struct{}
	stopped    atomic.Bool
	lastRefLog time.Time // shipper goroutine only
}

var _ call.Sink = (*Tracer)(nil)

// New opens the spool, starts a run and the shipper. It does not wait for
// the collector: calls wait in the spool until it answers, and what an
// earlier run left unshipped goes first.
func New(ctx context.Context, cfg config.Tracing, opts Options) (*Tracer, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tracer{cfg: cfg, log: log, refuse: cfg.Spool.WhenFull == config.SpoolRefuse,
		shipDone: make(chan struct{}), quit: make(chan struct{}), logDone: make(chan struct{}), flushNow: make(chan struct{}, 1)}
	t.send = opts.Send
	if t.send == nil {
		s, err := newSender(cfg)
		if err != nil {
			return nil, err
		}
		t.send, t.closeFn = s.send, s.close
	}
	dir := cfg.Spool.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "loom-spool-")
		if err != nil {
			return nil, fmt.Errorf("tracing: temporary spool: %w", err)
		}
		dir, t.tempDir = d, d
		log.Warn("tracing.spool.dir is not set: calls wait for the collector in a temporary spool that a crash loses, and each start is a new instance", "dir", dir)
	}
	sp, err := spool.Open(spool.Options{
		Dir: dir, SegmentBytes: cfg.Spool.SegmentBytes, MaxBytes: cfg.Spool.MaxBytes,
		PendingBytes: min(cfg.QueueBytes, cfg.Spool.MaxBytes/2), PendingRecords: cfg.QueueSize,
		CommitInterval: cfg.Spool.CommitInterval, Logger: log,
	})
	if err != nil {
		t.closeSender()
		return nil, fmt.Errorf("tracing: %w", err)
	}
	t.spool = sp
	t.instance = call.Clean(cfg.InstanceID, maxShort)
	if t.instance == "" {
		t.instance = sp.InstanceID()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	t.run = hex.EncodeToString(b[:])
	t.enc = newEncoder(opts.ServiceVersion, t.instance)
	t.bufs.New = func() any { b := make([]byte, 0, 4<<10); return &b }

	t.appendMarker(runMarker{Event: "start", Run: t.run, At: time.Now(),
		CommitInterval: cfg.Spool.CommitInterval, LossBound: int64(cfg.QueueSize)})
	t.shipCtx, t.stopShip = context.WithCancel(context.Background())
	go t.ship()
	every := opts.StatsEvery
	if every <= 0 {
		every = time.Minute
	}
	go t.logTotals(every)
	if st := sp.Stats(); st.DiskBytes > 0 {
		log.Info("tracing: shipping what an earlier run left in the spool", "bytes", st.DiskBytes)
	}
	return t, nil
}

func (t *Tracer) closeSender() {
	if t.closeFn != nil {
		_ = t.closeFn()
	}
}

// InstanceID is service.instance.id and loom.instance.id: stable for as
// long as the spool directory lives (or as configured).
func (t *Tracer) InstanceID() string { return t.instance }

// RunID is this process start's loom.run.id.
func (t *Tracer) RunID() string { return t.run }

// Calls is the number of calls recorded in this run: the last loom.seq.
func (t *Tracer) Calls() uint64 { return uint64(t.seq.Load()) }

// Record numbers the call and appends its spans to the spool. It never
// blocks on the disk or the collector; a full spool drops the call and
// counts it (its number stays unused: a visible gap).
func (t *Tracer) Record(r *call.Record) {
	seq := t.seq.Add(1)
	bp := t.bufs.Get().(*[]byte)
	b := t.enc.appendCall((*bp)[:0], r, callIDs{Seq: seq, Run: t.run})
	if err := t.spool.Append(b); err != nil {
		t.dropped(err)
	}
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		t.bufs.Put(bp)
	}
}

// maxPooledBuf keeps a call with huge captured content from pinning its
// buffer in the pool for ever.
const maxPooledBuf = 256 << 10

func (t *Tracer) dropped(err error) {
	if errors.Is(err, spool.ErrClosed) {
		t.atShutdown.Add(1)
		return
	}
	n := t.full.Add(1)
	now := time.Now().UnixNano()
	if last := t.lastFullLog.Load(); n == 1 || now-last > int64(10*time.Second) {
		if t.lastFullLog.CompareAndSwap(last, now) {
			t.log.Error("tracing: spool full, calls are not recorded until the collector catches up",
				"max_bytes", t.cfg.Spool.MaxBytes, "dropped_total", n, "error", err)
		}
	}
}

// roomFor is the room Admit asks the spool for: a typical call's record
// with room to spare, so an admitted call is not then dropped.
const roomFor = 64 << 10

// Admit says whether a new call may start: with when_full: refuse, not
// while the spool is full (the caller answers 503), so that no call goes
// unrecorded; with drop, always.
func (t *Tracer) Admit() bool {
	if !t.refuse {
		return true
	}
	bytes, records := t.spool.Available()
	return bytes >= roomFor && records >= 1
}

func (t *Tracer) appendMarker(m runMarker) {
	b := t.enc.appendRunMarker(nil, m)
	if err := t.spool.Append(b); err != nil {
		t.log.Error("tracing: could not spool the run marker", "event", m.Event, "run", m.Run, "error", err)
	}
}

// Stats returns the running totals.
func (t *Tracer) Stats() Stats {
	s := Stats{Calls: t.Calls(), Shipped: t.shipped.Load(), SpoolFull: t.full.Load(), Invalid: t.invalid.Load(),
		AtShutdown: t.atShutdown.Load(), ExportFails: t.fails.Load(), Rejected: t.rejected.Load(), Spool: t.spool.Stats()}
	s.Dropped = s.SpoolFull + s.Invalid + s.AtShutdown
	return s
}

// Flush commits the spool and waits until the collector has acknowledged
// everything in it, or ctx ends. Calls recorded meanwhile are waited for
// too: flush a quiet tracer.
func (t *Tracer) Flush(ctx context.Context) error {
	if err := t.spool.Commit(ctx); err != nil {
		return fmt.Errorf("tracing flush: %w", err)
	}
	for {
		select {
		case t.flushNow <- struct{}{}:
		default:
		}
		if st := t.spool.Stats(); st.DiskBytes == 0 && st.PendingRecords == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tracing flush: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Shutdown closes the run: it writes the stop marker with the run's last
// number, commits the spool, gives the shipper until ctx ends to deliver
// everything, and closes the spool. What is still unshipped stays on disk
// and goes first at the next start (a temporary spool loses it, counted).
func (t *Tracer) Shutdown(ctx context.Context) error {
	if !t.stopped.CompareAndSwap(false, true) {
		return nil
	}
	t.appendMarker(runMarker{Event: "stop", Run: t.run, At: time.Now(), LastSeq: t.seq.Load()})
	err := t.Flush(ctx)
	t.stopShip()
	<-t.shipDone
	close(t.quit)
	<-t.logDone
	st := t.spool.Stats()
	if cerr := t.spool.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	unshipped := st.DiskBytes
	if t.tempDir != "" {
		if unshipped > 0 {
			// A temporary spool dies with the process: count what it held.
			t.atShutdown.Add(st.Committed + uint64(st.PendingRecords) - st.Acked)
		}
		_ = os.RemoveAll(t.tempDir)
	}
	t.closeSender()
	s := t.Stats()
	level := slog.LevelInfo
	if s.Dropped > 0 {
		level = slog.LevelError
	}
	args := append(statsArgs(s), "unshipped_bytes_left_in_spool", unshipped)
	t.log.Log(context.Background(), level, "tracing stopped", args...)
	if err != nil && t.tempDir == "" && unshipped > 0 {
		// Not a loss: the next start ships it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("tracing shutdown: %w", err)
	}
	return nil
}

// logTotals logs the totals every period in which calls were dropped or an
// export failed, so trouble is never silent and quiet times stay quiet.
func (t *Tracer) logTotals(every time.Duration) {
	defer close(t.logDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last Stats
	for {
		select {
		case <-t.quit:
			return
		case <-tick.C:
		}
		s := t.Stats()
		if s.Dropped != last.Dropped || s.ExportFails != last.ExportFails {
			t.log.Warn("tracing: calls dropped or exports failing", statsArgs(s)...)
		}
		last = s
	}
}

func statsArgs(s Stats) []any {
	return []any{"calls", s.Calls, "shipped", s.Shipped, "dropped", s.Dropped, "dropped_spool_full", s.SpoolFull,
		"dropped_invalid", s.Invalid, "dropped_at_shutdown", s.AtShutdown, "export_failures", s.ExportFails,
		"spool_bytes", s.Spool.DiskBytes, "spool_pending", s.Spool.PendingRecords}
}

// AppendMetrics appends the totals in the Prometheus text format.
func (t *Tracer) AppendMetrics(dst []byte) []byte {
	s := t.Stats()
	for _, m := range []struct {
		name, typ, help string
		samples         []sample
	}{
		{"loom_calls_total", "counter", "Calls recorded by this run (the last loom.seq).", []sample{{"", s.Calls}}},
		{"loom_calls_shipped_total", "counter", "Records (calls and run markers) the collector accepted.", []sample{{"", s.Shipped}}},
		{"loom_calls_dropped_total", "counter", "Calls lost before the collector, by reason.",
			[]sample{{`reason="spool_full"`, s.SpoolFull}, {`reason="invalid"`, s.Invalid}, {`reason="shutdown"`, s.AtShutdown}}},
		{"loom_spans_rejected_total", "counter", "Spans the collector accepted in a batch but rejected (OTLP partial success).", []sample{{"", s.Rejected}}},
		{"loom_span_export_failures_total", "counter", "Failed export attempts (each batch is retried).", []sample{{"", s.ExportFails}}},
		{"loom_spool_pending", "gauge", "Records waiting in memory for the spool's next commit.", []sample{{"", uint64(max(s.Spool.PendingRecords, 0))}}},
		{"loom_spool_bytes", "gauge", "Bytes committed to the spool and not yet shipped.", []sample{{"", uint64(max(s.Spool.DiskBytes, 0))}}},
		{"loom_spool_full_total", "counter", "Appends the spool refused because it was full.", []sample{{"", s.Spool.Full}}},
		{"loom_spool_commit_errors_total", "counter", "Spool commits (write or fdatasync) that failed and were retried.", []sample{{"", s.Spool.CommitErrors}}},
		{"loom_spool_torn_bytes_total", "counter", "Bytes of a torn tail cut from the spool at start (a crash mid-write).", []sample{{"", uint64(s.Spool.TornBytesCut)}}},
	} {
		dst = append(dst, "# HELP "+m.name+" "+m.help+"\n# TYPE "+m.name+" "+m.typ+"\n"...)
		for _, x := range m.samples {
			dst = append(dst, m.name...)
			if x.labels != "" {
				dst = append(append(append(dst, '{'), x.labels...), '}')
			}
			dst = strconv.AppendUint(append(dst, ' '), x.value, 10)
			dst = append(dst, '\n')
		}
	}
	return dst
}

type sample struct {
	labels string
	value  uint64
}
