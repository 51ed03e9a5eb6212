package postgresexporter

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/spanattr"
)

// testConfig is the default config pointed at url, queue off (tests push
// directly).
func testConfig(url string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = configopaque.String(url)
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	return cfg
}

// started is an exporter on a fresh database, and a pool to read it with.
type started struct {
	*pgExporter
	db  *pgxpool.Pool
	tel *componenttest.Telemetry
}

// startExporter starts an exporter on a fresh database of a server of the
// test's own; edit adjusts the config first.
func startExporter(t *testing.T, edit func(*Config)) started {
	t.Helper()
	return startTuned(t, edit, nil)
}

// startTuned is startExporter with tune adjusting the exporter itself
// before it starts.
func startTuned(t *testing.T, edit func(*Config), tune func(*pgExporter)) started {
	t.Helper()
	url := pgtest.Database(t, pgtest.Start(t))
	cfg := testConfig(url)
	if edit != nil {
		edit(cfg)
	}
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := nopSettings()
	set.TelemetrySettings = tel.NewTelemetrySettings()
	e, err := newExporter(cfg, set)
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(e)
	}
	if err := e.start(t.Context(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.shutdown(context.Background()) })
	db, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return started{pgExporter: e, db: db, tel: tel}
}

// counter is the value of one of the exporter's counters.
func (s started) counter(t *testing.T, name string) int64 {
	t.Helper()
	m, err := s.tel.GetMetric(name)
	if err != nil {
		return 0 // never recorded
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is a %T, want a Sum[int64]", name, m.Data)
	}
	var n int64
	for _, dp := range sum.DataPoints {
		n += dp.Value
	}
	return n
}

// row reads one row as column → value, as pgx decodes it.
func row(t *testing.T, db *pgxpool.Pool, sql string, args ...any) map[string]any {
	t.Helper()
	rows, _ := db.Query(t.Context(), sql, args...)
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToMap)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return m
}

func count(t *testing.T, db *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// compare reports every column of got that differs from want (times by
// instant, the rest deeply).
func compare(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	for col, w := range want {
		g, ok := got[col]
		if !ok {
			t.Errorf("%s: no column %s", what, col)
			continue
		}
		if wt, isTime := w.(time.Time); isTime {
			if gt, _ := g.(time.Time); !gt.Equal(wt) {
				t.Errorf("%s.%s = %v, want %v", what, col, g, w)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s.%s = %#v, want %#v", what, col, g, w)
		}
	}
}

// ids makes distinct trace and span ids from n.
func traceID(n byte) pcommon.TraceID { return pcommon.TraceID{0xab, 15: n} }
func spanID(n byte) pcommon.SpanID   { return pcommon.SpanID{0xcd, 7: n} }

// newTraces is one resource and scope as the proxy sends them; add spans
// with addSpan.
func newTraces() (ptrace.Traces, ptrace.SpanSlice) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(spanattr.ServiceName, spanattr.ServiceNameLoom)
	rs.Resource().Attributes().PutStr(spanattr.ServiceInstanceID, "inst-1")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("github.com/loom-gateway/loom/proxy")
	ss.Scope().SetVersion("0.1.0")
	return td, ss.Spans()
}

// addSpan appends a plain span numbered n starting at start.
func addSpan(spans ptrace.SpanSlice, n byte, start time.Time) ptrace.Span {
	s := spans.AppendEmpty()
	s.SetTraceID(traceID(n))
	s.SetSpanID(spanID(n))
	s.SetName("span")
	s.SetKind(ptrace.SpanKindInternal)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
	return s
}

func nopSettings() exporter.Settings { return exportertest.NewNopSettings(Type) }
