package replicas_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/promserver"
	"github.com/loom-gateway/loom/proxy/schema"
)

// requestsMetric is Loom's count of the calls it recorded (one per SERVER
// span handed to its tracer), by tenant, model, deployment, provider,
// operation and status class: the series a dashboard sums.
const requestsMetric = "loom_requests_total"

// exporterInserted selects otelcol-loom's postgres exporter's count of the
// spans it inserted (not those it found there already). The collector's
// Prometheus endpoint leaves out the _total of counters unless its reader
// sets without_type_suffix: false, so either name counts.
const exporterInserted = `{__name__=~"loom_exporter_spans_inserted(_total)?"}`

// scrapeInterval is Prometheus's, for every target: short, so that the
// scrape after the load is at most half a second away.
const scrapeInterval = 500 * time.Millisecond

func TestReplicas_TwoLoomsOneRedis_LimitHoldsAcrossBoth_EachRecordComplete_PrometheusCountsWhatPostgresStores(t *testing.T) {
	began := time.Now()
	st := startStack(t)
	ctx := t.Context()
	up := time.Since(began)

	t0 := time.Now()
	outcomes := runLoad(ctx, st)
	load := time.Since(t0)
	var sent [2]int64
	for n := range outcomes {
		sent[replicaOf(n)]++
	}
	checkAnswers(t, outcomes)
	checkLimit(t, outcomes)

	// Each Loom has counted every call it answered; then Prometheus scrapes
	// both once more, and its answer at that instant is the final word.
	for i, r := range st.replicas {
		if err := waitMetric(ctx, r.opsAddr, requestsMetric, sent[i], 10*time.Second); err != nil {
			t.Fatalf("replica %s: %v", r.name, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	atLoom, err := st.prom.WaitScraped(wctx, jobLoom, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// A graceful stop of both, as a rolling update does: each run closes
	// with its stop marker.
	var wg sync.WaitGroup
	stopErrs := make([]error, 2)
	for i, r := range st.replicas {
		wg.Go(func() { stopErrs[i] = r.loom.stop() })
	}
	wg.Wait()
	if err := errors.Join(stopErrs...); err != nil {
		t.Fatal(err)
	}
	db, err := pgxpool.New(ctx, st.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t1 := time.Now()
	if err := waitClosed(ctx, db, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	settled := time.Now()
	drain := settled.Sub(t1)

	runs, err := auditCompleteness(ctx, binary(t, "loom"), st.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	checkRuns(t, st, runs, sent)
	stored := checkRows(t, db, st, outcomes)
	checkPrometheus(t, db, st, runs, atLoom, settled, stored)
	checkSeries(t, db, st, outcomes, atLoom)

	for _, r := range st.replicas {
		if log, _ := os.ReadFile(r.loom.logPath); bytes.Contains(log, []byte("rate-limit store failing")) {
			t.Errorf("replica %s counted its limits alone for a while (Redis did not answer in time), so the shared limit was not what held:\n%s",
				r.name, tail(r.loom.logPath))
		}
	}
	t.Logf("%d calls over 2 replicas (%d, %d) in %v (%.0f calls/s, %d in flight); stack up in %v, drained and closed in %v; %v in all",
		calls, sent[0], sent[1], load.Round(time.Millisecond), float64(calls)/load.Seconds(), workers,
		up.Round(time.Millisecond), drain.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// checkAnswers: every call got its whole answer, with the status its kind
// and tenant call for: the upstream's 400 relayed, the limited tenant's
// calls admitted or refused with a requests 429, everything else a 200.
func checkAnswers(t *testing.T, outcomes []outcome) {
	t.Helper()
	var bad []string
	for n, o := range outcomes {
		k, ten := kindOf(n), tenantOf(n)
		want := http.StatusOK
		switch {
		case k == upstream400:
			want = http.StatusBadRequest
		case ten == limitedTenant && o.status == http.StatusTooManyRequests && o.errType == "requests":
			// The limited tenant's calls are admitted or refused so.
			want = http.StatusTooManyRequests
		}
		if o.err != "" || !o.complete || o.status != want {
			bad = append(bad, fmt.Sprintf("call %d (%s, %v, replica %d): status %d (%s), complete %v, error %q; want %d",
				n, ten, k, replicaOf(n), o.status, o.errType, o.complete, o.err, want))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d calls not answered as they should be; first of them:\n%s", len(bad), joinFirst(bad, 20))
	}
}

// window is what the client saw of one minute of the limited tenant.
type window struct {
	admitted, refused int
	remaining         map[int64]int // x-ratelimit-remaining-requests -> calls admitted with it
}

// checkLimit proves that the limited tenant's requests per minute held
// across both replicas together; see judgeLimit.
func checkLimit(t *testing.T, outcomes []outcome) {
	t.Helper()
	windows, bad := judgeLimit(outcomes)
	for _, id := range slices.Sorted(maps.Keys(windows)) {
		w := windows[id]
		t.Logf("%s: minute %s: %d admitted over both replicas, %d refused (limit %d)", limitedTenant,
			time.Unix(id*60, 0).UTC().Format("15:04"), w.admitted, w.refused, limitRPM)
	}
	if len(bad) > 0 {
		t.Errorf("the requests limit did not hold across the replicas:\n%s", joinFirst(bad, 20))
	}
}

// judgeLimit groups the limited tenant's calls by the minute window their
// decision counted in and returns what breaks the limit: in a window, the
// calls admitted by either replica exceed the limit, or some were refused
// before exactly the limit was admitted. The remaining counts that the
// admitted calls of a window were told must all differ: one counter,
// shared through Redis, was taken once per call; two replicas counting
// apart would hand out the same counts twice. A run that never reached
// the limit proved nothing, and says so.
func judgeLimit(outcomes []outcome) (map[int64]*window, []string) {
	windows := map[int64]*window{}
	var bad []string
	for n, o := range outcomes {
		if tenantOf(n) != limitedTenant {
			continue
		}
		if o.window < 0 {
			bad = append(bad, fmt.Sprintf("call %d (%v, status %d) has no x-ratelimit-*-requests headers", n, kindOf(n), o.status))
			continue
		}
		w := windows[o.window]
		if w == nil {
			w = &window{remaining: map[int64]int{}}
			windows[o.window] = w
		}
		if o.status == http.StatusTooManyRequests {
			w.refused++
			continue
		}
		w.admitted++
		if o.remaining < 0 || o.remaining >= limitRPM {
			bad = append(bad, fmt.Sprintf("call %d admitted with %d remaining of %d", n, o.remaining, limitRPM))
		}
		w.remaining[o.remaining]++
	}
	refused := 0
	for _, id := range slices.Sorted(maps.Keys(windows)) {
		w := windows[id]
		refused += w.refused
		dup := 0
		for _, c := range w.remaining {
			dup += c - 1
		}
		switch {
		case w.admitted > limitRPM:
			bad = append(bad, fmt.Sprintf("minute %d: %d admitted over both replicas, over the limit %d", id, w.admitted, limitRPM))
		case w.refused > 0 && w.admitted != limitRPM:
			bad = append(bad, fmt.Sprintf("minute %d: %d refused, yet %d admitted, not the limit %d", id, w.refused, w.admitted, limitRPM))
		}
		if dup > 0 {
			bad = append(bad, fmt.Sprintf("minute %d: %d admitted calls were told a remaining count another was told too: not one shared counter", id, dup))
		}
	}
	if refused == 0 {
		bad = append(bad, fmt.Sprintf("no call of %s was refused: the run never reached the limit, so it proved nothing", limitedTenant))
	}
	return windows, bad
}

// waitMetric polls Loom's /metrics until the samples of name add up to
// want, and fails if they pass it.
func waitMetric(ctx context.Context, opsAddr, name string, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var got float64
	var err error
	for {
		got, err = scrapeSum(ctx, "http://"+opsAddr+"/metrics", name)
		switch {
		case err == nil && got == float64(want):
			return nil
		case err == nil && got > float64(want):
			return fmt.Errorf("%s is %v, more than the %d calls sent", name, got, want)
		case time.Now().After(deadline):
			return lastErr(fmt.Sprintf("%s is %v after %v, want %d", name, got, timeout, want), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastErr is a poll's verdict msg, with the last error it met, if any.
func lastErr(msg string, err error) error {
	if err != nil {
		return fmt.Errorf("%s (last error: %w)", msg, err)
	}
	return errors.New(msg)
}

// scrapeSum reads a Prometheus text exposition and adds up the samples of
// one metric over all its label sets.
func scrapeSum(ctx context.Context, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return sumSamples(io.LimitReader(resp.Body, 64<<20), name)
}

// sumSamples adds up the samples of metric name in the text format:
// `name value`, `name{labels} value`, each maybe followed by a timestamp or
// an exemplar.
func sumSamples(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if rest[0] == '{' {
			i := strings.LastIndexByte(rest, '}')
			if i < 0 {
				return 0, fmt.Errorf("sample %q: labels not closed", line)
			}
			if j := strings.Index(rest, " # "); j >= 0 && j < i {
				// The closing brace found was an exemplar's.
				i = strings.LastIndexByte(rest[:j], '}')
			}
			rest = rest[i+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, fmt.Errorf("sample %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("sample %q: %w", line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no %s in the exposition", name)
	}
	return sum, nil
}

// waitClosed polls the completeness query until both replicas' runs are
// closed (their stop markers stored) and hold every call they numbered:
// both collectors have drained into Postgres.
func waitClosed(ctx context.Context, db *pgxpool.Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var runs []schema.Run
	var err error
	for {
		runs, err = schema.Completeness(ctx, db, time.Now().Add(-time.Hour), 10*time.Second)
		done := err == nil && len(runs) == 2
		for _, r := range runs {
			done = done && r.Closed && r.Stored == r.Numbered
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return lastErr(fmt.Sprintf("the runs are not closed and whole %v after the stop: %+v", timeout, runs), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// auditCompleteness runs the real `loom audit completeness -json` against
// the database. It exits 1 when a run has a gap and still prints its
// report: that is a finding for the checks, not a failure to audit.
func auditCompleteness(ctx context.Context, loom, dbURL string) ([]schema.Run, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, loom, "audit", "completeness", "-json")
	cmd.Env = append(os.Environ(), "LOOM_DATABASE_URL="+dbURL)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out struct {
		Runs []schema.Run `json:"runs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("loom audit completeness -json: %w: %.300s %.300s", errors.Join(err, runErr), stdout.Bytes(), stderr.Bytes())
	}
	return out.Runs, nil
}

// checkRuns holds the audit to the replicas: one run of each instance,
// opened and closed by its markers, every call it answered numbered and
// stored, no gap.
func checkRuns(t *testing.T, st *stack, runs []schema.Run, sent [2]int64) {
	t.Helper()
	if len(runs) != 2 {
		t.Fatalf("the audit reports %d runs, want one per replica: %+v", len(runs), runs)
	}
	for i, r := range st.replicas {
		j := slices.IndexFunc(runs, func(a schema.Run) bool { return a.InstanceID == r.instanceID })
		if j < 0 {
			t.Errorf("the audit has no run of %s: %+v", r.instanceID, runs)
			continue
		}
		a := runs[j]
		if !a.HasStartMarker || !a.Closed || a.Gaps != 0 || a.Stored != a.Numbered || a.Numbered != sent[i] {
			t.Errorf("replica %s: want a run with its start and stop markers, %d calls numbered and stored, no gap; the audit says %+v",
				r.name, sent[i], a)
		}
	}
}

// checkRows holds each call to its rows: the call answered by replica r
// has one SERVER row from r's instance, with its tenant and the status the
// client saw, and a CLIENT row for each upstream attempt (none when the
// limit refused it). It returns the SERVER rows numbered (with a loom.seq):
// the calls stored.
func checkRows(t *testing.T, db *pgxpool.Pool, st *stack, outcomes []outcome) int64 {
	t.Helper()
	ctx := t.Context()
	type row struct {
		servers, clients int
		instance, tenant string
		status           int
	}
	rows := make([]row, len(outcomes))
	var foreign, numbered int64
	q, err := db.Query(ctx, `
		select trace_id, kind, coalesce(instance_id, ''), coalesce(tenant_id, ''), coalesce(http_status, 0), seq is not null
		from loom.spans where kind in ('server', 'client')`)
	if err != nil {
		t.Fatal(err)
	}
	for q.Next() {
		var id, kind, instance, ten string
		var status int
		var hasSeq bool
		if err := q.Scan(&id, &kind, &instance, &ten, &status, &hasSeq); err != nil {
			t.Fatal(err)
		}
		if kind == "server" && hasSeq {
			numbered++
		}
		n, ok := callOf(id)
		if !ok {
			foreign++
			continue
		}
		r := &rows[n]
		if kind == "client" {
			r.clients++
			continue
		}
		r.servers++
		r.instance, r.tenant, r.status = instance, ten, status
	}
	q.Close()
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	var bad []string
	if foreign > 0 {
		bad = append(bad, fmt.Sprintf("%d SERVER or CLIENT rows of traces no call of the test made", foreign))
	}
	for n, o := range outcomes {
		r, want := rows[n], st.replicas[replicaOf(n)].instanceID
		clientsOK := r.clients >= 1
		if o.status == http.StatusTooManyRequests {
			clientsOK = r.clients == 0
		}
		if r.servers != 1 || r.instance != want || r.tenant != tenantOf(n) || r.status != o.status || !clientsOK {
			bad = append(bad, fmt.Sprintf("call %d (%s, %v, status %d, sent to %s): %d SERVER rows (instance %q, tenant %q, status %d), %d CLIENT rows",
				n, tenantOf(n), kindOf(n), o.status, want, r.servers, r.instance, r.tenant, r.status, r.clients))
		}
	}
	var dupSpans, dead int64
	if err := db.QueryRow(ctx, `select count(*) from (select 1 from loom.spans group by trace_id, span_id, start_time having count(*) > 1) d`).Scan(&dupSpans); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, `select count(*) from loom.dead_letters`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if dupSpans != 0 || dead != 0 {
		bad = append(bad, fmt.Sprintf("%d spans stored twice, %d dead letters", dupSpans, dead))
	}
	if len(bad) > 0 {
		t.Errorf("calls and their rows in Postgres disagree:\n%s", joinFirst(bad, 20))
	}
	return numbered
}

// checkPrometheus: Prometheus's sum of Loom's calls, at its scrape after the
// load, is the number of calls stored, in all and per replica; and the
// collectors, scraped after the last row landed, inserted exactly the rows
// Postgres holds.
func checkPrometheus(t *testing.T, db *pgxpool.Pool, st *stack, runs []schema.Run, atLoom, settled time.Time, stored int64) {
	t.Helper()
	ctx := t.Context()
	v, err := st.prom.Query(ctx, "sum("+requestsMetric+")", atLoom)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v.Sum() != float64(stored) || stored != calls {
		t.Errorf("Prometheus: sum(%s) = %v; Postgres stores %d calls; %d were made", requestsMetric, v, stored, calls)
	}
	byReplica, err := st.prom.Query(ctx, "sum by (replica) ("+requestsMetric+")", atLoom)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.replicas {
		i := slices.IndexFunc(byReplica, func(s promserver.Sample) bool { return s.Metric["replica"] == r.name })
		j := slices.IndexFunc(runs, func(a schema.Run) bool { return a.InstanceID == r.instanceID })
		if i < 0 || j < 0 || byReplica[i].Value != float64(runs[j].Stored) {
			t.Errorf("Prometheus: %s of replica %s disagrees with the calls its run stored (%v; runs %+v)", requestsMetric, r.name, byReplica, runs)
		}
	}

	// The collectors: both scraped, and their inserts are the rows.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	atCol, err := st.prom.WaitScraped(wctx, jobCollector, settled)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	if err := db.QueryRow(ctx, `select count(*) from loom.spans`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err = st.prom.Query(ctx, "sum("+exporterInserted+")", time.Time{})
		if err == nil && v.Sum() == float64(rows) {
			break
		}
		if time.Now().After(deadline) {
			names, _ := st.prom.Query(ctx, `group by (__name__) ({job="`+jobCollector+`", __name__=~"loom_.*|otelcol_exporter_.*"})`, time.Time{})
			t.Errorf("Prometheus: sum(%s) = %v (error %v); Postgres holds %d spans; the collectors' series: %v", exporterInserted, v, err, rows, names)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	upv, err := st.prom.Query(ctx, `up{job="`+jobCollector+`"}`, atCol)
	if err != nil {
		t.Fatal(err)
	}
	if len(upv) != 2 || upv.Sum() != 2 {
		t.Errorf("Prometheus: up of the collectors = %v, want both up", upv)
	}
	// Each collector's queue is visible, and drained.
	queue, err := st.prom.Query(ctx, `otelcol_exporter_queue_size{job="`+jobCollector+`",exporter="postgres"}`, atCol)
	if err != nil {
		t.Fatal(err)
	}
	if len(queue) != 2 || queue.Sum() != 0 {
		t.Errorf("Prometheus: the collectors' postgres queue sizes = %v, want one per replica, both empty", queue)
	}
}

// checkSeries holds Loom's per-call series, summed over both replicas at
// the scrape after the load, to Postgres and to what the client saw: the
// calls by tenant and status class are the SERVER rows by tenant and
// status, and the limit refusals are the 429s the limited tenant got.
func checkSeries(t *testing.T, db *pgxpool.Pool, st *stack, outcomes []outcome, atLoom time.Time) {
	t.Helper()
	ctx := t.Context()
	got := map[string]float64{}
	v, err := st.prom.Query(ctx, "sum by (tenant, status_class) ("+requestsMetric+")", atLoom)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range v {
		got[s.Metric["tenant"]+" "+s.Metric["status_class"]] = s.Value
	}
	want := map[string]float64{}
	rows, err := db.Query(ctx, `
		select tenant_id, (http_status / 100)::text || 'xx', count(*) from loom.spans
		where kind = 'server' and seq is not null group by 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ten, class string
		var n int64
		if err := rows.Scan(&ten, &class, &n); err != nil {
			t.Fatal(err)
		}
		want[ten+" "+class] = float64(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("Prometheus: sum by (tenant, status_class) (%s) = %v; Postgres's calls by tenant and status class: %v", requestsMetric, got, want)
	}
	refused := 0
	for _, o := range outcomes {
		if o.status == http.StatusTooManyRequests {
			refused++
		}
	}
	v, err = st.prom.Query(ctx, `sum by (tenant, limit) (loom_limit_refusals_total)`, atLoom)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].Metric["tenant"] != limitedTenant || v[0].Metric["limit"] != "requests" || v[0].Value != float64(refused) {
		t.Errorf("Prometheus: loom_limit_refusals_total = %v; want only {tenant=%q, limit=\"requests\"}, %d: the 429s the client got",
			v, limitedTenant, refused)
	}
}

func joinFirst(lines []string, n int) string {
	var b strings.Builder
	for i, l := range lines {
		if i == n {
			fmt.Fprintf(&b, "... and %d more\n", len(lines)-n)
			break
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
