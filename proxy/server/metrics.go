package server

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/limit"
	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// labelOther stands for a tenant the store does not know or a model the
// configuration does not name: a client cannot grow a metric's series by
// sending names.
const labelOther = "other"

// callMetrics are the per-call series of the ops listener's /metrics, kept
// with the Prometheus client (its counters and histograms, and its
// exposition: text, OpenMetrics with exemplars, protobuf). Each call is
// counted once, in finish, right after the sink got its record: so
// sum(loom_requests_total) is the calls handed to the tracer.
//
// The per-call cost must stay tiny: a call looks its label set up once in a
// map of the children already made (read-locked) and adds to them; only a
// label set's first call allocates, and an exemplar (at most one a second
// per label set: a scrape keeps one per bucket anyway).
type callMetrics struct {
	reg                      *prometheus.Registry
	requests, errors         *prometheus.CounterVec
	duration, ttfc, overhead *prometheus.HistogramVec
	tokens, cost, refusals   *prometheus.CounterVec

	series children[seriesKey, *series]
	errs   children[errorKey, prometheus.Counter]
	costs  children[costKey, prometheus.Counter]
	limits children[limitKey, prometheus.Counter]
	// errTypes are the error types admitted as error_type values.
	errTypesMu sync.RWMutex
	errTypes   map[string]struct{}
}

// seriesKey is a call's full label set; the series a call always adds to
// are projections of it.
type seriesKey struct {
	tenant, model, deployment, provider string
	op                                  call.Operation
	class                               string
}

type errorKey struct{ tenant, model, provider, errorType string }

type costKey struct{ tenant, model, currency string }

type limitKey struct{ tenant, limit string }

// series are the children one label set adds to, made together on its
// first call.
type series struct {
	requests                 prometheus.Counter
	duration, ttfc, overhead prometheus.Observer
	// tokens by kind, in tokenKinds' order.
	tokens [4]prometheus.Counter
	// exemplarAt is when (Unix ns) this label set last left an exemplar.
	exemplarAt atomic.Int64
	// cost is the cost counter of the currency this label set's calls
	// were last priced in (one, nearly always), to skip a lookup.
	cost atomic.Pointer[costChild]
	// errs is the error counter of the error type this label set's last
	// failed call had (its calls fail alike, mostly), to skip two lookups.
	errs atomic.Pointer[errChild]
}

type costChild struct {
	currency string
	counter  prometheus.Counter
}

type errChild struct {
	errorType string
	counter   prometheus.Counter
}

// tokenKinds are loom_tokens_total's kind label. input includes the cached
// ones, as gen_ai.usage.input_tokens does.
var tokenKinds = [4]string{"input", "output", "cached_input", "reasoning"}

// Histogram buckets, in seconds. Calls take from tens of milliseconds
// (embeddings) to minutes (long generations); the first chunk comes in
// tens of milliseconds to seconds; Loom's own share is tens of
// microseconds, and its SLO is 2 ms at p99 (bench/gates.yaml), so 0.002
// is a bucket edge.
var (
	durationBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	ttfcBuckets     = []float64{0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30}
	overheadBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25}
)

// exemplarEvery is the least time between two exemplars of one label set.
const exemplarEvery = time.Second

// maxErrorTypes bounds error_type's values: error.type can come from an
// upstream's error body, so past this many distinct ones a new one counts
// as "other".
const maxErrorTypes = 64

func newCallMetrics() *callMetrics {
	m := &callMetrics{reg: prometheus.NewRegistry(), errTypes: map[string]struct{}{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loom_requests_total",
		Help: "Calls recorded (one per SERVER span handed to the tracer), by tenant, model, deployment, provider, operation and status class.",
	}, []string{"tenant", "model", "deployment", "provider", "operation", "status_class"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loom_request_errors_total",
		Help: "Calls that ended in an error, by the error.type of their span.",
	}, []string{"tenant", "model", "provider", "error_type"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "loom_request_duration_seconds", Buckets: durationBuckets,
		Help: "Calls from the request read to the last byte to the client.",
	}, []string{"tenant", "model", "operation"})
	m.ttfc = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "loom_time_to_first_chunk_seconds", Buckets: ttfcBuckets,
		Help: "Time from the upstream request to its first chunk (gen_ai.response.time_to_first_chunk).",
	}, []string{"tenant", "model"})
	m.overhead = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "loom_overhead_seconds", Buckets: overheadBuckets,
		Help: "Loom's own time per relayed call: the whole call minus the time waiting on the upstream (loom.gateway.overhead).",
	}, []string{"operation"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loom_tokens_total",
		Help: "Tokens of the attempts that served, by kind (input includes cached_input; output includes reasoning).",
	}, []string{"tenant", "model", "kind"})
	m.cost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loom_cost_total",
		Help: "What priced calls cost, in units of the price catalog's currency.",
	}, []string{"tenant", "model", "currency"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loom_limit_refusals_total",
		Help: "Calls refused by a limit: requests, tokens, concurrency (streams), budget or deployment_share.",
	}, []string{"tenant", "limit"})
	m.reg.MustRegister(m.requests, m.errors, m.duration, m.ttfc, m.overhead, m.tokens, m.cost, m.refusals)
	return m
}

func newSeries(m *callMetrics, k seriesKey) *series {
	se := &series{
		requests: m.requests.WithLabelValues(k.tenant, k.model, k.deployment, k.provider, string(k.op), k.class),
		duration: m.duration.WithLabelValues(k.tenant, k.model, string(k.op)),
		ttfc:     m.ttfc.WithLabelValues(k.tenant, k.model),
		overhead: m.overhead.WithLabelValues(string(k.op)),
	}
	for i, kind := range tokenKinds {
		se.tokens[i] = m.tokens.WithLabelValues(k.tenant, k.model, kind)
	}
	return se
}

func newErrorCounter(m *callMetrics, k errorKey) prometheus.Counter {
	return m.errors.WithLabelValues(k.tenant, k.model, k.provider, k.errorType)
}

func newCostCounter(m *callMetrics, k costKey) prometheus.Counter {
	return m.cost.WithLabelValues(k.tenant, k.model, k.currency)
}

func newLimitCounter(m *callMetrics, k limitKey) prometheus.Counter {
	return m.refusals.WithLabelValues(k.tenant, k.limit)
}

// errorType is t as an error_type value: t itself once admitted, which
// it is while fewer than maxErrorTypes are; "other" after that. Types
// past the bound are not kept, so hostile ones cost no memory either.
func (m *callMetrics) errorType(t string) string {
	m.errTypesMu.RLock()
	_, ok := m.errTypes[t]
	full := len(m.errTypes) >= maxErrorTypes
	m.errTypesMu.RUnlock()
	switch {
	case ok:
		return t
	case full:
		return labelOther
	}
	m.errTypesMu.Lock()
	defer m.errTypesMu.Unlock()
	if len(m.errTypes) >= maxErrorTypes {
		return labelOther
	}
	m.errTypes[t] = struct{}{}
	return t
}

// observe counts one finished call that a tenant owns.
func (m *callMetrics) observe(ex *exchange) {
	rec := &ex.rec
	tenant, model := labelOther, labelOther
	if _, ok := ex.live.dir.Tenant(rec.TenantID); ok {
		tenant = rec.TenantID
	}
	if _, ok := ex.live.models[rec.Model]; ok {
		model = rec.Model
	}
	se := m.series.get(seriesKey{tenant: tenant, model: model, deployment: rec.Deployment, provider: rec.Provider,
		op: rec.Operation, class: statusClass(rec)}, m, newSeries)
	se.requests.Inc()

	var exemplar prometheus.Labels
	if rec.TraceID != ([16]byte{}) {
		now := rec.End.UnixNano()
		if last := se.exemplarAt.Load(); now-last >= int64(exemplarEvery) && se.exemplarAt.CompareAndSwap(last, now) {
			exemplar = prometheus.Labels{"trace_id": hex.EncodeToString(rec.TraceID[:])}
		}
	}
	observeWith(se.duration, rec.Duration().Seconds(), exemplar)
	if ttfc := rec.TimeToFirstChunk(); ttfc > 0 {
		observeWith(se.ttfc, ttfc.Seconds(), exemplar)
	}
	if rec.Overhead > 0 {
		observeWith(se.overhead, rec.Overhead.Seconds(), exemplar)
	}
	if rec.UsageSource != call.UsageNone {
		u := &rec.Usage
		se.tokens[0].Add(float64(u.InputTokens))
		se.tokens[1].Add(float64(u.OutputTokens))
		if u.HasCached {
			se.tokens[2].Add(float64(u.CachedInputTokens))
		}
		if u.HasReasoning {
			se.tokens[3].Add(float64(u.ReasoningTokens))
		}
	}
	if rec.PriceID != "" && rec.Cost > 0 {
		cc := se.cost.Load()
		if cc == nil || cc.currency != rec.CostCurrency {
			cc = &costChild{rec.CostCurrency, m.costs.get(costKey{tenant, model, rec.CostCurrency}, m, newCostCounter)}
			se.cost.Store(cc)
		}
		cc.counter.Add(price.Amount(rec.Cost).Float64())
	}
	if rec.ErrorType != "" {
		ec := se.errs.Load()
		if ec == nil || ec.errorType != rec.ErrorType {
			// Keyed by the record's error type, not the label: one past
			// the bound still finds its "other" counter here.
			ec = &errChild{rec.ErrorType, m.errs.get(errorKey{tenant, model, rec.Provider, m.errorType(rec.ErrorType)}, m, newErrorCounter)}
			se.errs.Store(ec)
		}
		c := ec.counter
		if exemplar != nil {
			c.(prometheus.ExemplarAdder).AddWithExemplar(1, exemplar)
		} else {
			c.Inc()
		}
	}
	if rec.Outcome == call.OutcomeRateLimited {
		m.limits.get(limitKey{tenant, refusedBy(ex)}, m, newLimitCounter).Inc()
	}
}

// observeWith observes v, with the exemplar when there is one.
func observeWith(o prometheus.Observer, v float64, exemplar prometheus.Labels) {
	if exemplar != nil {
		o.(prometheus.ExemplarObserver).ObserveWithExemplar(v, exemplar)
		return
	}
	o.Observe(v)
}

// refusedBy is loom_limit_refusals_total's limit label for a call a limit
// refused.
func refusedBy(ex *exchange) string {
	switch ex.rec.ErrorType {
	case "insufficient_quota":
		return "budget"
	case "deployment_share_exceeded":
		return "deployment_share"
	}
	switch ex.decision.Limited {
	case limit.LimitedTokens:
		return "tokens"
	case limit.LimitedStreams:
		return "concurrency"
	}
	return "requests"
}

// statusClass is the status_class label: what the client got, or
// "client_closed" when it left before the end (nginx's 499).
func statusClass(rec *call.Record) string {
	if rec.ClientDisconnected || rec.Outcome == call.OutcomeClientGone {
		return "client_closed"
	}
	switch rec.Status / 100 {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return labelOther
}

// modelSet is the public model names of tenants: the model label's values.
func modelSet(tenants []tenancy.Tenant) map[string]struct{} {
	set := map[string]struct{}{}
	for _, t := range tenants {
		for _, m := range t.Models {
			set[m.Name] = struct{}{}
		}
	}
	return set
}

// children maps label sets to what was made for them. A hit takes a read
// lock and allocates nothing; mk runs once per key.
type children[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

// get returns k's value, made by mk(m, k) on first use. mk is a plain
// function, not a closure, so that a hit allocates nothing.
func (c *children[K, V]) get(k K, m *callMetrics, mk func(*callMetrics, K) V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok = c.m[k]; !ok {
		if c.m == nil {
			c.m = map[K]V{}
		}
		v = mk(m, k)
		c.m[k] = v
	}
	return v
}

// metricFormats are the expositions /metrics offers, best first:
// OpenMetrics (the only text format with exemplars), protobuf (native
// scrapes), then the classic text format.
var metricFormats = []expfmt.Format{
	expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1, expfmt.FmtProtoDelim, expfmt.FmtText,
}

// Gather returns every metric of the ops listener: the per-call series and
// the counters AppendMetrics writes by hand (the gateway's, the tracer's,
// the budgets'), sorted by name.
func (s *Server) Gather() ([]*dto.MetricFamily, error) {
	return prometheus.Gatherers{s.metrics.reg, prometheus.GathererFunc(s.gatherText)}.Gather()
}

// gatherText parses AppendMetrics' text exposition back into families, so
// that one encoder writes everything in the format the scraper asked for.
func (s *Server) gatherText() ([]*dto.MetricFamily, error) {
	dec := expfmt.NewDecoder(bytes.NewReader(s.AppendMetrics(nil)), expfmt.NewFormat(expfmt.TypeTextPlain))
	var fams []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if errors.Is(err, io.EOF) {
				return fams, nil
			}
			return fams, fmt.Errorf("gateway metrics: %w", err)
		}
		fams = append(fams, mf)
	}
}

// writeMetrics encodes Gather's families in the format accept asks for and
// returns the body and its content type.
func (s *Server) writeMetrics(accept []byte) ([]byte, string, error) {
	format := expfmt.NegotiateAccept(http.Header{"Accept": {string(accept)}}, metricFormats...)
	fams, err := s.Gather()
	if err != nil {
		return nil, "", err
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, format)
	for _, mf := range fams {
		if err := enc.Encode(mf); err != nil {
			return nil, "", fmt.Errorf("encode %s: %w", mf.GetName(), err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			return nil, "", fmt.Errorf("encode: %w", err)
		}
	}
	return b.Bytes(), string(format), nil
}

// gauges reports, at scrape time, what holds now: the streams being
// relayed and each deployment's connection pool.
type gauges struct{ s *Server }

var (
	streamsActiveDesc = prometheus.NewDesc("loom_streams_active", "Streams being relayed now.", nil, nil)
	poolInUseDesc     = prometheus.NewDesc("loom_upstream_connections_in_use",
		"Places of the deployment's connection pool held by calls now.", []string{"deployment"}, nil)
	poolWaitingDesc = prometheus.NewDesc("loom_upstream_connections_waiting",
		"Calls waiting for a place in the deployment's connection pool now.", []string{"deployment"}, nil)
)

func (g gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- streamsActiveDesc
	ch <- poolInUseDesc
	ch <- poolWaitingDesc
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	s := g.s
	s.streamsMu.Lock()
	open := len(s.streams)
	s.streamsMu.Unlock()
	ch <- prometheus.MustNewConstMetric(streamsActiveDesc, prometheus.GaugeValue, float64(open))
	for name, d := range s.live.Load().deployments {
		inUse, waiting := d.Pool()
		ch <- prometheus.MustNewConstMetric(poolInUseDesc, prometheus.GaugeValue, float64(inUse), name)
		ch <- prometheus.MustNewConstMetric(poolWaitingDesc, prometheus.GaugeValue, float64(waiting), name)
	}
}
