package schema_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/proxy/schema"
)

// callRow writes a call's SERVER span as the exporter would.
func callRow(t *testing.T, db *pgxpool.Pool, instance, run string, seq int64, at time.Time) {
	t.Helper()
	_, err := db.Exec(t.Context(), `INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, instance_id, run_id, seq)
VALUES ($1, 's', $2, 'POST /v1/chat/completions', 'server', 'ok', $3, $4, $5)`,
		fmt.Sprintf("%s-%s-%d", instance, run, seq), at, instance, run, seq)
	if err != nil {
		t.Fatal(err)
	}
}

// markerRow writes a run marker span; attrs is its attributes jsonb.
func markerRow(t *testing.T, db *pgxpool.Pool, instance, run, attrs string, at time.Time) {
	t.Helper()
	_, err := db.Exec(t.Context(), `INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, instance_id, run_id, attributes)
VALUES ($1, 'm', $2, 'loom run', 'internal', 'unset', $3, $4, $5::jsonb)`,
		instance+run+attrs, at, instance, run, attrs)
	if err != nil {
		t.Fatal(err)
	}
}

func TestCompleteness_CleanCrashedAndGappyRuns_EachReportedAsStored(t *testing.T) {
	_, db := migrated(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := schema.EnsurePartitions(t.Context(), db, now.Add(-time.Hour), now); err != nil {
		t.Fatal(err)
	}
	start := `{"loom.run.event":"start","loom.run.commit_interval":0.005,"loom.run.loss_bound":65536}`
	// Run a: started, 1..5 stored, closed at 5: complete.
	markerRow(t, db, "i1", "a", start, now.Add(-50*time.Minute))
	for s := int64(1); s <= 5; s++ {
		callRow(t, db, "i1", "a", s, now.Add(-49*time.Minute))
	}
	markerRow(t, db, "i1", "a", `{"loom.run.event":"stop","loom.run.last_seq":5}`, now.Add(-48*time.Minute))
	// Run b: started, 1..3 and 6 stored, then a crash: no stop marker.
	markerRow(t, db, "i1", "b", start, now.Add(-40*time.Minute))
	for _, s := range []int64{1, 2, 3, 6} {
		callRow(t, db, "i1", "b", s, now.Add(-39*time.Minute))
	}
	// Run c: closed at 10, but 1, 4..5 and 9..10 never arrived.
	markerRow(t, db, "i2", "c", start, now.Add(-30*time.Minute))
	for _, s := range []int64{2, 3, 6, 7, 8} {
		callRow(t, db, "i2", "c", s, now.Add(-29*time.Minute))
	}
	markerRow(t, db, "i2", "c", `{"loom.run.event":"stop","loom.run.last_seq":10}`, now.Add(-28*time.Minute))

	runs, err := schema.Completeness(t.Context(), db, now.Add(-time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("got %d runs, want 3: %+v", len(runs), runs)
	}
	want := []struct {
		run                    string
		closed                 bool
		numbered, stored, gaps int64
		missing                [][2]int64
	}{
		{"a", true, 5, 5, 0, nil},
		{"b", false, 6, 4, 2, [][2]int64{{4, 5}}},
		{"c", true, 10, 5, 5, [][2]int64{{1, 1}, {4, 5}, {9, 10}}},
	}
	for i, w := range want {
		r := runs[i]
		if r.RunID != w.run || r.Closed != w.closed || r.Numbered != w.numbered || r.Stored != w.stored || r.Gaps != w.gaps ||
			fmt.Sprint(r.Missing) != fmt.Sprint(w.missing) {
			t.Errorf("run %s: got %+v, want %+v", w.run, r, w)
		}
		if !r.HasStartMarker || r.LossBound != 65536 || r.CommitIntervalSeconds != 0.005 {
			t.Errorf("run %s: start marker not read: %+v", w.run, r)
		}
	}

	// A run that began before "since" is reported whole, not with its head missing.
	runs, err = schema.Completeness(t.Context(), db, now.Add(-35*time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].RunID != "c" || runs[0].Stored != 5 {
		t.Fatalf("since 35 minutes ago: got %+v, want only run c", runs)
	}
}
