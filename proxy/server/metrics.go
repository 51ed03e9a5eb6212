package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/loom-gateway/loom/proxy/call"
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
// label set's first call allocates.
type callMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec

	series children[seriesKey, *series]
}

// seriesKey is a call's full label set; every series a call adds to is a
// projection of it.
type seriesKey struct {
	tenant, model, deployment, provider string
	op                                  call.Operation
	class                               string
}

// series are the children one label set adds to, made together on its
// first call.
type series struct {
	requests prometheus.Counter
}

func newCallMetrics() *callMetrics {
	m := &callMetrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loom_requests_total",
		Help: "Calls recorded (one per SERVER span handed to the tracer), by tenant, model, deployment, provider, operation and status class.",
	}, []string{"tenant", "model", "deployment", "provider", "operation", "status_class"})
	m.reg.MustRegister(m.requests)
	return m
}

func newSeries(m *callMetrics, k seriesKey) *series {
	return &series{
		requests: m.requests.WithLabelValues(k.tenant, k.model, k.deployment, k.provider, string(k.op), k.class),
	}
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
