package postgresexporter

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"

	"github.com/loom-gateway/loom/proxy/schema"
)

func partitionDays(t *testing.T, x started) []time.Time {
	t.Helper()
	days, err := schema.Partitions(t.Context(), x.db, "spans")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(days, time.Time.Compare)
	return days
}

func dayRange(from time.Time, n int) []time.Time {
	var out []time.Time
	for i := range n {
		out = append(out, schema.Day(from).AddDate(0, 0, i))
	}
	return out
}

// The clock moves on ten days: a push makes the new day's partition on the
// spot, maintenance makes the days ahead, and retention drops the old days
// (and the spans in them) but never today's.
func TestPartitions_ClockMovesOn_NewDaysMadeOldDaysDropped(t *testing.T) {
	t.Parallel()
	x := startExporter(t, func(c *Config) { c.Retention = 48 * time.Hour; c.PartitionsAhead = 2 })
	t0 := time.Now()
	if got, want := partitionDays(t, x), dayRange(t0.AddDate(0, 0, -1), 4); !slices.Equal(got, want) {
		t.Fatalf("at start: partitions %v, want yesterday to 2 days ahead %v", got, want)
	}
	td, spans := newTraces()
	addSpan(spans, 1, t0)
	if err := x.push(t.Context(), td); err != nil {
		t.Fatal(err)
	}

	t1 := t0.AddDate(0, 0, 10)
	x.now = func() time.Time { return t1 }
	td, spans = newTraces()
	addSpan(spans, 2, t1)
	if err := x.push(t.Context(), td); err != nil {
		t.Fatalf("push on a day with no partition yet: %v", err)
	}
	if !slices.Contains(partitionDays(t, x), schema.Day(t1)) {
		t.Fatalf("no partition made for %s", schema.Day(t1))
	}

	if err := x.maintain(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Retention 48h from t1 drops every day of t0; what is left is what
	// maintenance keeps ready: yesterday to 2 days ahead of t1.
	if got, want := partitionDays(t, x), dayRange(t1.AddDate(0, 0, -1), 4); !slices.Equal(got, want) {
		t.Errorf("after maintenance: partitions %v, want %v", got, want)
	}
	if n := count(t, x.db, "SELECT count(*) FROM loom.spans"); n != 1 {
		t.Errorf("%d spans left, want only the recent one", n)
	}
}

// A partition dropped behind the exporter's back (another collector's
// retention, a human) is a retryable error, and the retry recreates it.
func TestPush_PartitionDroppedUnderneath_RetryRecreatesIt(t *testing.T) {
	t.Parallel()
	x := startExporter(t, nil)
	now := time.Now()
	if _, err := x.db.Exec(t.Context(), "DROP TABLE loom."+schema.PartitionName("spans", now)); err != nil {
		t.Fatal(err)
	}
	td, spans := newTraces()
	addSpan(spans, 1, now)
	err := x.push(t.Context(), td)
	if err == nil || consumererror.IsPermanent(err) {
		t.Fatalf("first push = %v, want a retryable error", err)
	}
	if err := x.push(t.Context(), td); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := count(t, x.db, "SELECT count(*) FROM loom.spans"); n != 1 {
		t.Errorf("%d spans, want 1", n)
	}
	if n := count(t, x.db, "SELECT count(*) FROM loom.dead_letters"); n != 0 {
		t.Errorf("%d dead letters, want 0: a missing partition is not bad data", n)
	}
}

// Through the factory and the exporterhelper, as a collector runs it, with
// migrations switched off against a schema already there.
func TestFactory_Traces_EndToEnd(t *testing.T) {
	t.Parallel()
	x := startExporter(t, nil) // migrates the database
	cfg := testConfig(string(x.cfg.Endpoint))
	cfg.SchemaMigrations = false
	exp, err := NewFactory().CreateTraces(t.Context(), nopSettings(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(t.Context(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	td := callTraces(time.Now())
	if err := exp.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, x.db, "SELECT count(*) FROM loom.spans"); n != td.SpanCount() {
		t.Errorf("%d spans, want %d", n, td.SpanCount())
	}
}
