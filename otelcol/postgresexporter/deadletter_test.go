package postgresexporter

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/loom-gateway/loom/proxy/spanattr"
)

// Bad spans never block a batch and are never lost: the rest lands, each bad
// one is a dead letter with its reason and a payload that replays it.
func TestPush_BadSpans_RestLandsBadOnesAreDeadLetters(t *testing.T) {
	t.Parallel()
	x := startExporter(t, func(c *Config) { c.MaxAttributeBytes = 1024 })
	now := time.Now()
	td, spans := newTraces()
	addSpan(spans, 1, now).Attributes().PutStr(spanattr.TenantID, "good")
	bad := map[byte]string{} // span number → what its reason must say
	addSpan(spans, 2, now).Attributes().PutStr(spanattr.GenAIRequestModel, "gpt\xff")
	bad[2] = "invalid UTF-8"
	addSpan(spans, 3, now).Attributes().PutStr("big", strings.Repeat("x", 2000))
	bad[3] = "exceeds max_attribute_bytes"
	addSpan(spans, 4, now).SetName("nul\x00name")
	bad[4] = "NUL"
	addSpan(spans, 5, now.AddDate(0, 0, 30))
	bad[5] = "past the last partition"
	addSpan(spans, 6, now.AddDate(0, 0, -31))
	bad[6] = "older than retention"
	addSpan(spans, 7, time.Unix(0, 0)).SetStartTimestamp(0)
	bad[7] = "start time is zero"
	// Valid UTF-8 and valid JSON that jsonb still refuses (a lone surrogate):
	// only Postgres can say no, so this one takes the one-by-one path.
	addSpan(spans, 8, now).Attributes().PutStr(spanattr.GenAIInputMessages, `["\ud800"]`)
	bad[8] = "refused by Postgres"
	addSpan(spans, 9, now).Attributes().PutStr(spanattr.TenantID, "also good")
	events := addSpan(spans, 10, now).Events()
	events.AppendEmpty().SetName("fine")

	if err := x.push(t.Context(), td); err != nil {
		t.Fatalf("push = %v, want nil: bad spans are handled, not retried", err)
	}

	if n := count(t, x.db, "SELECT count(*) FROM loom.spans"); n != 3 {
		t.Errorf("%d spans landed, want the 3 good ones", n)
	}
	if n := count(t, x.db, "SELECT count(*) FROM loom.span_events"); n != 1 {
		t.Errorf("%d events landed, want 1", n)
	}
	if n := count(t, x.db, "SELECT count(*) FROM loom.dead_letters"); n != len(bad) {
		t.Errorf("%d dead letters, want %d", n, len(bad))
	}
	if got := x.counter(t, "loom_exporter_spans_dead_lettered"); got != int64(len(bad)) {
		t.Errorf("dead-lettered counter = %d, want %d", got, len(bad))
	}
	for n, why := range bad {
		want := spans.At(int(n) - 1)
		d := row(t, x.db, "SELECT * FROM loom.dead_letters WHERE span_id = $1", spanID(n).String())
		if reason := d["reason"].(string); !strings.Contains(reason, why) {
			t.Errorf("span %d: reason %q does not say %q", n, reason, why)
		}
		if d["trace_id"] != traceID(n).String() || d["span_name"] != sanitize(want.Name(), 1024) {
			t.Errorf("span %d: dead letter ids/name = %v %v", n, d["trace_id"], d["span_name"])
		}
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(d["payload"].([]byte))
		if err != nil {
			t.Fatalf("span %d: payload: %v", n, err)
		}
		if td.SpanCount() != 1 {
			t.Fatalf("span %d: payload holds %d spans, want 1", n, td.SpanCount())
		}
		rs := td.ResourceSpans().At(0)
		got := rs.ScopeSpans().At(0).Spans().At(0)
		if got.SpanID() != want.SpanID() || got.Name() != want.Name() || got.StartTimestamp() != want.StartTimestamp() ||
			!reflect.DeepEqual(got.Attributes().AsRaw(), want.Attributes().AsRaw()) {
			t.Errorf("span %d: payload span differs from the one pushed", n)
		}
		if sv, _ := rs.Resource().Attributes().Get(spanattr.ServiceName); sv.Str() != spanattr.ServiceNameLoom ||
			rs.ScopeSpans().At(0).Scope().Name() != "github.com/loom-gateway/loom/proxy" {
			t.Errorf("span %d: payload lost its resource or scope", n)
		}
	}
}

// A Postgres that cannot be reached is an outage, not bad data: the batch
// must be retried, so the error must not be permanent.
func TestPush_PostgresUnreachable_RetryableError(t *testing.T) {
	t.Parallel()
	cfg := testConfig("postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	e, err := newExporter(cfg, nopSettings())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.start(t.Context(), nil); err != nil {
		t.Fatalf("start = %v: a Postgres outage must not stop the collector", err)
	}
	defer e.shutdown(t.Context()) //nolint:errcheck // test
	td, spans := newTraces()
	addSpan(spans, 1, time.Now())
	err = e.push(t.Context(), td)
	if err == nil || consumererror.IsPermanent(err) {
		t.Fatalf("push = %v, want a retryable error", err)
	}
}
