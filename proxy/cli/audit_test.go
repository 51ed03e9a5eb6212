package cli_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/schema"
)

// Not parallel: the command reads the environment.
func TestAuditCompleteness_GapAndCrash_ReportedAndExitNonZero(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	t.Setenv(cli.EnvDatabaseURL, url)
	ok(t, "", "migrate")
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	now := time.Now()
	if err := schema.EnsurePartitions(t.Context(), conn, now, now); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, instance_id, run_id, attributes)
		 VALUES ('m1', 'm', now(), 'loom run', 'internal', 'unset', 'inst', 'r1', '{"loom.run.event":"start","loom.run.loss_bound":64,"loom.run.commit_interval":0.005}')`,
		`INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, instance_id, run_id, seq)
		 SELECT 't' || s, 's', now(), 'POST /v1/chat/completions', 'server', 'ok', 'inst', 'r1', s FROM generate_series(1, 9) s WHERE s <> 4`,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}

	var out, errOut bytes.Buffer
	err = cli.Run(t.Context(), []string{"audit", "completeness", "-json"}, cli.Stdio{Out: &out, Err: &errOut})
	if !errors.Is(err, cli.ErrIncomplete) {
		t.Fatalf("a run with a gap: got %v, want ErrIncomplete\n%s", err, errOut.String())
	}
	var got struct{ Runs []schema.Run }
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(got.Runs) != 1 {
		t.Fatalf("got %+v, want one run", got.Runs)
	}
	r := got.Runs[0]
	if r.InstanceID != "inst" || r.RunID != "r1" || r.Closed || r.Numbered != 9 || r.Stored != 8 || r.Gaps != 1 ||
		len(r.Missing) != 1 || r.Missing[0] != [2]int64{4, 4} || r.LossBound != 64 {
		t.Fatalf("got %+v", r)
	}

	out.Reset()
	_ = cli.Run(t.Context(), []string{"audit", "completeness"}, cli.Stdio{Out: &out, Err: &errOut})
	if s := out.String(); !strings.Contains(s, "inst") || !strings.Contains(s, "crashed or running") || !strings.Contains(s, "up to 64 more") {
		t.Fatalf("table: %s", s)
	}
}
