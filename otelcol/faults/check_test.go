package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

func connect(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// settle waits until the span count in Postgres has stopped moving for a
// while: Loom has stopped and shipped, and the collector's queue drained.
func settle(ctx context.Context, db *pgxpool.Pool, limit time.Duration) (time.Duration, error) {
	const still = 6 // one-second polls without a change
	t0 := time.Now()
	var last int64 = -1
	same := 0
	for time.Since(t0) < limit {
		var n int64
		err := db.QueryRow(ctx, `select count(*) from loom.spans`).Scan(&n)
		if err == nil && n == last && n > 0 {
			if same++; same >= still {
				return time.Since(t0), nil
			}
		} else {
			same = 0
		}
		last = n
		select {
		case <-ctx.Done():
			return time.Since(t0), ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return time.Since(t0), fmt.Errorf("spans in Postgres still changing after %v (last count %d)", limit, last)
}

// rowCounts is how many SERVER and CLIENT rows each call has.
type rowCounts struct{ server, client []uint8 }

func storedRows(t *testing.T, db *pgxpool.Pool) rowCounts {
	t.Helper()
	rows, err := db.Query(t.Context(), `
		select trace_id, count(*) filter (where kind = 'server'), count(*) filter (where kind = 'client')
		from loom.spans where kind in ('server', 'client') group by trace_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var rc rowCounts
	var foreign int
	for rows.Next() {
		var id string
		var s, c int
		if err := rows.Scan(&id, &s, &c); err != nil {
			t.Fatal(err)
		}
		n, ok := callOf(id)
		if !ok {
			foreign++
			continue
		}
		if n >= len(rc.server) {
			rc.server = slices.Grow(rc.server, n+1-len(rc.server))[:n+1]
			rc.client = slices.Grow(rc.client, n+1-len(rc.client))[:n+1]
		}
		rc.server[n], rc.client[n] = uint8(min(s, 255)), uint8(min(c, 255))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if foreign > 0 {
		t.Errorf("%d traces with SERVER or CLIENT spans that no call of the suite made", foreign)
	}
	return rc
}

func (rc rowCounts) of(n int) (server, client uint8) {
	if n >= len(rc.server) {
		return 0, 0
	}
	return rc.server[n], rc.client[n]
}

// tailJitter is how far apart, on the client, two answers can end in the
// other order than Loom finished their records (a loaded 2-core machine
// schedules the clients late). A client abort is recorded later still:
// Loom drains the upstream (20 events, 5 ms apart) after the client left.
const (
	tailJitter  = 250 * time.Millisecond
	abortJitter = 500 * time.Millisecond
)

// checkCalls asserts that every call the client saw answered (or aborted
// after the first event, which Loom records too) has exactly one SERVER
// row and one CLIENT row, and that no call has two, except what a SIGKILL
// took: the tail of the killed process's answers, those after its last
// stored one. The spool appends records in the order calls finish and a
// crash loses what was not yet committed, so a loss anywhere but the tail
// (a hole) is a failure, however close to the kill. How far back the tail
// reaches is reported: the commit window as it was in wall-clock time.
func checkCalls(t *testing.T, r *faultRun, outcomes []outcome, rows rowCounts, rep *report) {
	t.Helper()
	var killed []life
	for _, l := range rep.lives {
		if l.ended == "sigkill" {
			killed = append(killed, l)
		}
	}
	// edge[k] is when the killed process's last stored answer ended.
	edge := make([]time.Time, len(r.kills))
	for n, o := range outcomes {
		if s, _ := rows.of(n); s > 0 && (o.state == answered || o.state == aborted) {
			if k := killedBy(r.kills, killed, o); k >= 0 && o.end.After(edge[k]) {
				edge[k] = o.end
			}
		}
	}
	rep.exempt = make([]int, len(r.kills))
	rep.exemptMax = make([]time.Duration, len(r.kills))
	var examples []string
	for n, o := range outcomes {
		rep.states[o.state]++
		s, c := rows.of(n)
		if s > 0 {
			rep.stored++
		}
		if s > 1 {
			rep.duplicates++
			examples = append(examples, fmt.Sprintf("call %d (%v, %v): %d SERVER rows", n, kindOf(n), o.state, s))
		}
		if s == 1 && c != 1 {
			rep.noClient++
			examples = append(examples, fmt.Sprintf("call %d (%v, %v): %d CLIENT rows beside its SERVER row", n, kindOf(n), o.state, c))
		}
		if o.state == cut && crashWindow(r.kills, o, 100*time.Millisecond) < 0 {
			// Only a SIGKILL may break an answer off; a graceful stop
			// finishes the calls in flight.
			rep.cutOutside++
			examples = append(examples, fmt.Sprintf("call %d (%v) broke off %v into the load, at no SIGKILL: %s",
				n, kindOf(n), o.end.Sub(r.began).Round(time.Millisecond), o.err))
		}
		if o.state != answered && o.state != aborted {
			continue
		}
		rep.expected++
		if s != 0 {
			continue
		}
		jitter := tailJitter
		if o.state == aborted {
			jitter += abortJitter
		}
		if k := killedBy(r.kills, killed, o); k >= 0 && !o.end.Before(edge[k].Add(-jitter)) && !o.end.After(r.kills[k].Add(time.Second)) {
			rep.exempt[k]++
			rep.exemptMax[k] = max(rep.exemptMax[k], r.kills[k].Sub(o.end))
			continue
		}
		rep.missing++
		examples = append(examples, fmt.Sprintf("call %d (%v, %v, status %d, ended %v into the load): no SERVER row",
			n, kindOf(n), o.state, o.status, o.end.Sub(r.began).Round(time.Millisecond)))
	}
	if len(examples) > 0 {
		t.Errorf("%d answered calls missing outside the tails SIGKILLs took, %d duplicated, %d without their CLIENT row, %d broken off outside a SIGKILL; first of them:\n%s",
			rep.missing, rep.duplicates, rep.noClient, rep.cutOutside, joinFirst(examples, 20))
	}
	if rep.states[answered] == 0 {
		t.Error("no call was answered: the suite proved nothing")
	}
}

// crashWindow returns the SIGKILL whose window holds call o, or -1: the
// call was sent to the process that was killed (it started before the
// kill) and ended at most before ahead of the kill, or up to a second
// after it (the last bytes of an answer, or the broken connection, can
// reach a client on a loaded machine well after the process died; the
// next process starts within that second, but a call sent before the kill
// cannot have gone to it).
func crashWindow(kills []time.Time, o outcome, before time.Duration) int {
	const after = time.Second
	for k, at := range kills {
		if o.start.Before(at) && !o.end.Before(at.Add(-before)) && !o.end.After(at.Add(after)) {
			return k
		}
	}
	return -1
}

// killedBy returns the SIGKILL of the process call o was sent to, or -1:
// the call started after that process did and before it was killed.
func killedBy(kills []time.Time, killed []life, o outcome) int {
	for k, at := range kills {
		if k < len(killed) && !o.start.Before(killed[k].start) && o.start.Before(at) {
			return k
		}
	}
	return -1
}

func joinFirst(lines []string, n int) string {
	var b bytes.Buffer
	for i, l := range lines {
		if i == n {
			fmt.Fprintf(&b, "... and %d more\n", len(lines)-n)
			break
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// checkNoDuplicates asserts the store's own invariant directly: no span
// stored twice, and no call numbered twice within a run.
func checkNoDuplicates(t *testing.T, db *pgxpool.Pool, rep *report) {
	t.Helper()
	var dupSpans, dupSeq int64
	if err := db.QueryRow(t.Context(), `
		select count(*) from (select 1 from loom.spans group by trace_id, span_id, start_time having count(*) > 1) d`).Scan(&dupSpans); err != nil {
		t.Fatal(err)
	}
	// The run column arrives with the spool's migration; before it, a
	// restart numbers from 1 again and seq is not unique per instance.
	var hasRun bool
	if err := db.QueryRow(t.Context(), `
		select exists (select 1 from information_schema.columns where table_schema = 'loom' and table_name = 'spans' and column_name = 'run_id')`).Scan(&hasRun); err != nil {
		t.Fatal(err)
	}
	if hasRun {
		if err := db.QueryRow(t.Context(), `
			select count(*) from (select 1 from loom.spans where kind = 'server'
			group by instance_id, run_id, seq having count(*) > 1) d`).Scan(&dupSeq); err != nil {
			t.Fatal(err)
		}
	}
	var dead int64
	if err := db.QueryRow(t.Context(), `select count(*) from loom.dead_letters`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	rep.duplicates += int(dupSpans + dupSeq)
	if dupSpans != 0 || dupSeq != 0 || dead != 0 {
		t.Errorf("%d spans stored twice, %d (instance, run, seq) numbers on two SERVER rows, %d dead letters", dupSpans, dupSeq, dead)
	}
}

// mockRequest is what the suite reads of the mock's request log.
type mockRequest struct {
	Path    string            `json:"path"`
	Arrived time.Time         `json:"arrived"`
	Header  map[string]string `json:"header"`
}

// mockLog is every request that reached the upstream: the ground truth of
// what Loom relayed, kept by a process the suite never faults.
func mockLog(t *testing.T, st *stack) []mockRequest {
	t.Helper()
	resp, err := http.Get("http://" + st.mockAddr + "/_mock/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []mockRequest
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("read the mock's request log: %v", err)
	}
	return out
}

// auditRun is one run in `loom audit completeness -json`.
type auditRun struct {
	InstanceID            string     `json:"instance_id"`
	RunID                 string     `json:"run_id"`
	StartedAt             time.Time  `json:"started_at"`
	Closed                bool       `json:"closed"`
	HasStartMarker        bool       `json:"has_start_marker"`
	Numbered              int64      `json:"numbered"`
	Stored                int64      `json:"stored"`
	Gaps                  int64      `json:"gaps"`
	Missing               [][2]int64 `json:"missing"`
	LossBound             int64      `json:"loss_bound"`
	CommitIntervalSeconds float64    `json:"commit_interval_seconds"`
}

// crashed is the audit's verdict once every Loom has stopped: a run
// without its stop marker crashed.
func (a *auditRun) crashed() bool { return !a.Closed }

// auditCompleteness runs the real `loom audit completeness -json` against
// the suite's database and returns its runs, oldest first. The command
// exits 1 when a run has a gap, and still prints its report: that is a
// finding for the checks, not a failure to audit.
func auditCompleteness(ctx context.Context, dbURL string) ([]auditRun, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "loom"), "audit", "completeness", "-json")
	cmd.Env = append(os.Environ(), "LOOM_DATABASE_URL="+dbURL)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out struct {
		Runs []auditRun `json:"runs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		msg, _, _ := bytes.Cut(bytes.TrimSpace(stderr.Bytes()), []byte("\n"))
		return nil, fmt.Errorf("loom audit completeness -json: %w: %.300s %s", errors.Join(err, runErr), stdout.Bytes(), msg)
	}
	slices.SortFunc(out.Runs, func(a, b auditRun) int { return a.StartedAt.Compare(b.StartedAt) })
	return out.Runs, nil
}

// checkRuns holds each Loom process (one run each, oldest first) against
// the audit's report of it and the mock's log of it:
//   - one instance (the spool directory is the same throughout), one run
//     per process start;
//   - a run stopped by SIGTERM is closed, with no gap, and numbered every
//     call that reached the upstream while it was up;
//   - a run SIGKILLed is crashed, and what it may have lost (its gaps, the
//     answered calls missing inside its window, the calls the upstream saw
//     that it never numbered, less those still in flight at the kill) is
//     within its loss bound.
func checkRuns(t *testing.T, r *faultRun, st *stack, outcomes []outcome, mock []mockRequest, rep *report) {
	t.Helper()
	lives := st.loom.history()
	rep.lives = lives
	rep.runs = make([]runRow, len(lives))
	// Each request reached the mock during exactly one Loom process: they
	// never overlap. Count distinct calls, in case a run retried one.
	seen := make([]map[int]bool, len(lives))
	for i := range seen {
		seen[i] = map[int]bool{}
	}
	for _, m := range mock {
		if m.Path != "/v1/chat/completions" {
			continue
		}
		n, err := strconv.Atoi(m.Header["x-mock-tag"])
		if err != nil {
			t.Errorf("a request reached the mock without the suite's x-mock-tag: %v", m.Header)
			continue
		}
		if i := lifeAt(lives, m.Arrived); i >= 0 {
			seen[i][n] = true
		} else {
			t.Errorf("call %d reached the mock at %v, while no Loom ran", n, m.Arrived)
		}
	}
	for i, l := range lives {
		rep.runs[i] = runRow{life: l, mock: len(seen[i])}
	}
	for _, o := range outcomes {
		if o.state == answered {
			if i := lifeAt(lives, o.end); i >= 0 {
				rep.runs[i].answer++
			}
		}
	}
	if rep.auditErr != nil {
		t.Errorf("the completeness audit is the suite's last word and it failed: %v", rep.auditErr)
		return
	}
	checkAudit(t, r, rep.audit, rep)
}

// checkAudit is the comparison of the audit with the processes and the
// mock; see checkRuns.
func checkAudit(t *testing.T, r *faultRun, runs []auditRun, rep *report) {
	t.Helper()
	instances := map[string]bool{}
	for _, a := range runs {
		instances[a.InstanceID] = true
	}
	if len(instances) != 1 || len(runs) != len(rep.lives) {
		t.Errorf("audit: %d runs of %d instances; want %d runs (one per Loom start) of one instance (one spool dir)",
			len(runs), len(instances), len(rep.lives))
		return
	}
	killIdx := 0
	for i := range runs {
		a, row := &runs[i], &rep.runs[i]
		row.audit = a
		if !a.HasStartMarker {
			t.Errorf("run %d (%s): no start marker reached Postgres", i+1, a.RunID)
		}
		switch row.life.ended {
		case "sigkill":
			lostAnswered := 0
			if killIdx < len(rep.exempt) {
				lostAnswered = rep.exempt[killIdx]
			}
			killIdx++
			unnumbered := int64(row.mock) - a.Numbered
			switch {
			case !a.crashed():
				t.Errorf("run %d (%s) was SIGKILLed but the audit says it did not crash: %+v", i+1, a.RunID, *a)
			case a.Gaps > a.LossBound || int64(lostAnswered) > a.LossBound:
				t.Errorf("run %d (%s): %d gaps and %d answered calls lost, over its loss bound %d", i+1, a.RunID, a.Gaps, lostAnswered, a.LossBound)
			case unnumbered < 0 || unnumbered > a.LossBound+int64(r.p.conns):
				t.Errorf("run %d (%s): the upstream saw %d calls, the audit numbered %d: want between 0 and the loss bound %d plus %d in flight more",
					i+1, a.RunID, row.mock, a.Numbered, a.LossBound, r.p.conns)
			}
		default:
			if !a.Closed || a.crashed() || a.Gaps != 0 || a.Stored != a.Numbered || a.Numbered != int64(row.mock) {
				t.Errorf("run %d (%s) stopped cleanly: want closed, no gap, and every call the upstream saw (%d) numbered and stored; audit says %+v",
					i+1, a.RunID, row.mock, *a)
			}
		}
	}
}

// lifeAt is the Loom process that ran at time at, or -1.
func lifeAt(lives []life, at time.Time) int {
	for i, l := range lives {
		if !at.Before(l.start) && (l.end.IsZero() || !at.After(l.end)) {
			return i
		}
	}
	return -1
}
