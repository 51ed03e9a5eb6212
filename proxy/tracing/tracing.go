// Package tracing turns each finished call into OpenTelemetry spans, one
// SERVER span for the inbound request and one CLIENT span for the upstream
// attempt, following the GenAI semantic conventions (v1.41), and exports them
// over OTLP. Every call is sampled and numbered (loom.seq, no gaps per
// instance), and every span that cannot be delivered is counted: the totals
// are logged and served as metrics. It must never put a client key or an
// upstream credential on a span.
package tracing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/spanattr"
)

// Options are what the tracer needs beyond its configuration.
type Options struct {
	// ServiceVersion is service.version on every span.
	ServiceVersion string
	// Logger gets the export failures and drop totals. Nil discards them.
	Logger *slog.Logger
	// Exporter replaces the OTLP exporter the configuration describes
	// (tests use an in-memory one).
	Exporter sdktrace.SpanExporter
	// StatsEvery is how often totals are logged while something is wrong
	// (spans dropped or exports failing). Zero means a minute.
	StatsEvery time.Duration
}

// Tracer is a call.Sink that records calls as spans.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	queue    *queue
	log      *slog.Logger
	instance string
	seq      atomic.Uint64
	attrs    sync.Pool // *[]attribute.KeyValue
	quit     chan struct{}
	logDone  chan struct{}
}

var _ call.Sink = (*Tracer)(nil)

// New starts a tracer exporting as cfg says. It does not wait for the
// collector: spans queue until it answers.
func New(ctx context.Context, cfg config.Tracing, opts Options) (*Tracer, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	exp := opts.Exporter
	if exp == nil {
		var err error
		if exp, err = newExporter(ctx, cfg); err != nil {
			return nil, err
		}
	}
	instance := call.Clean(cfg.InstanceID, maxShort)
	if instance == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		instance = hex.EncodeToString(b[:])
	}
	t := &Tracer{
		log: log, instance: instance,
		queue: newQueue(exp, log, queueOptions{
			size: cfg.QueueSize, batchSize: cfg.BatchSize, queueBytes: cfg.QueueBytes, batchBytes: cfg.BatchBytes,
			batchTimeout: cfg.BatchTimeout, timeout: cfg.ExportTimeout,
		}),
		quit: make(chan struct{}), logDone: make(chan struct{}),
	}
	t.provider = sdktrace.NewTracerProvider(
		// A caller's sampled=0 must not erase a billable call.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(t.queue),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String(spanattr.ServiceName, spanattr.ServiceNameLoom),
			attribute.String(spanattr.ServiceVersion, call.Clean(opts.ServiceVersion, maxShort)),
			attribute.String(spanattr.ServiceInstanceID, instance),
		)),
	)
	t.tracer = t.provider.Tracer("github.com/loom-gateway/loom/proxy")
	t.attrs.New = func() any { s := make([]attribute.KeyValue, 0, 48); return &s }
	every := opts.StatsEvery
	if every <= 0 {
		every = time.Minute
	}
	go t.logTotals(every)
	return t, nil
}

func newExporter(ctx context.Context, cfg config.Tracing) (sdktrace.SpanExporter, error) {
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("tracing: no endpoint configured")
	}
	var client otlptrace.Client
	switch cfg.Protocol {
	case config.TracingHTTP:
		client = otlptracehttp.NewClient(
			otlptracehttp.WithEndpointURL(httpTracesURL(cfg.Endpoint)),
			otlptracehttp.WithHeaders(cfg.Headers),
			otlptracehttp.WithTimeout(cfg.ExportTimeout),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
				Enabled: true, InitialInterval: 250 * time.Millisecond, MaxInterval: 5 * time.Second,
				MaxElapsedTime: cfg.RetryMaxElapsed,
			}))
	default:
		client = otlptracegrpc.NewClient(
			otlptracegrpc.WithEndpointURL(cfg.Endpoint),
			otlptracegrpc.WithHeaders(cfg.Headers),
			otlptracegrpc.WithTimeout(cfg.ExportTimeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{
				Enabled: true, InitialInterval: 250 * time.Millisecond, MaxInterval: 5 * time.Second,
				MaxElapsedTime: cfg.RetryMaxElapsed,
			}))
	}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("tracing: start OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	return exp, nil
}

// InstanceID is this process's service.instance.id and loom.instance.id.
func (t *Tracer) InstanceID() string { return t.instance }

// Calls is the number of calls recorded so far: the last loom.seq given.
func (t *Tracer) Calls() uint64 { return t.seq.Load() }

// Stats returns the export queue's totals.
func (t *Tracer) Stats() Stats { return t.queue.Stats() }

// Flush exports every span ended so far, or gives up when ctx ends.
func (t *Tracer) Flush(ctx context.Context) error { return t.queue.ForceFlush(ctx) }

// Shutdown exports what is queued, retrying until ctx ends, and logs the
// totals; spans still unsent then are counted as dropped.
func (t *Tracer) Shutdown(ctx context.Context) error {
	close(t.quit)
	<-t.logDone
	err := t.provider.Shutdown(ctx)
	s := t.Stats()
	level := slog.LevelInfo
	if s.Dropped > 0 {
		level = slog.LevelError
	}
	t.log.Log(context.Background(), level, "tracing stopped", statsArgs(t.Calls(), s)...)
	if err != nil {
		return fmt.Errorf("tracing shutdown: %w", err)
	}
	return nil
}

// logTotals logs the totals every period in which spans were dropped or an
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
			t.log.Warn("tracing: spans dropped or exports failing", statsArgs(t.Calls(), s)...)
		}
		last = s
	}
}

func statsArgs(calls uint64, s Stats) []any {
	return []any{"calls", calls, "spans_ended", s.Ended, "spans_exported", s.Exported,
		"spans_dropped", s.Dropped, "dropped_queue_full", s.QueueFull, "dropped_at_shutdown", s.AtShutdown,
		"dropped_invalid", s.Invalid, "export_failures", s.ExportFails, "pending", s.Pending, "pending_bytes", s.PendingSize}
}

// AppendMetrics appends the totals in the Prometheus text format.
func (t *Tracer) AppendMetrics(dst []byte) []byte {
	s := t.Stats()
	for _, m := range []struct {
		name, typ, help string
		samples         []sample
	}{
		{"loom_calls_total", "counter", "Calls recorded by this instance (the last loom.seq).", []sample{{"", t.Calls()}}},
		{"loom_spans_ended_total", "counter", "Spans ended, two per relayed call.", []sample{{"", s.Ended}}},
		{"loom_spans_exported_total", "counter", "Spans the collector accepted.", []sample{{"", s.Exported}}},
		{"loom_spans_dropped_total", "counter", "Spans lost before export, by reason.",
			[]sample{{`reason="queue_full"`, s.QueueFull}, {`reason="shutdown"`, s.AtShutdown}, {`reason="invalid"`, s.Invalid}}},
		{"loom_span_export_failures_total", "counter", "Failed export attempts (each batch is retried).", []sample{{"", s.ExportFails}}},
		{"loom_span_queue_pending", "gauge", "Spans waiting for export.", []sample{{"", uint64(s.Pending)}}},
		{"loom_span_queue_bytes", "gauge", "Estimated encoded size of the spans waiting for export.", []sample{{"", uint64(max(s.PendingSize, 0))}}},
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
