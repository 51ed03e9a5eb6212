package console_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/dashboards/queries"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/admin"
	"github.com/loom-gateway/loom/proxy/console"
	"github.com/loom-gateway/loom/proxy/rollup"
	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
)

// The console at scale: its pages over a store of a million spans (the
// benchmark) and the plans of every query they run (the test, over fewer).
//
// "Uses indexes" for a page whose panels aggregate a range means: no query
// reads a span partition sequentially to throw most of it away. A Seq Scan
// that keeps at least a quarter of the rows it reads is the right plan (an
// index would visit the same pages in random order: a 7-day aggregate reads
// every partition of the week, and a tenant with 40% of the traffic reads
// most of each); one that discards more than three rows for each it keeps
// is a missing index, or a query an index cannot serve, and fails the test
// with its plan. Index, index-only and bitmap scans pass whatever they read.

// scaleKeys are the keys the scaled console authenticates: the big tenant's
// (40% of the calls) and a small one's.
var scaleKeys = map[string][2]string{
	"sk-loom-scale-big-0000000000000":   {"tenant-00", "tenant-00-key-0"},
	"sk-loom-scale-small-00000000000":   {"tenant-07", "tenant-07-key-3"},
	"loom-admin-token-scale-0123456789": {},
}

const scaleAdminToken = "loom-admin-token-scale-0123456789"

// scaleConsole is a console over a seeded store whose pool records the SQL
// the pages run.
type scaleConsole struct {
	h     http.Handler
	pool  *pgxpool.Pool
	rec   *sqlRecorder
	spans int64
	seed  time.Duration
}

func newScaleConsole(tb testing.TB, calls int) *scaleConsole {
	tb.Helper()
	ctx := tb.Context()
	cfg, err := pgxpool.ParseConfig(pgtest.Database(tb, pgtest.Start(tb)))
	if err != nil {
		tb.Fatal(err)
	}
	rec := &sqlRecorder{}
	cfg.ConnConfig.Tracer = rec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := schema.Migrate(ctx, pool); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	spans, err := seedSpans(ctx, pool, calls, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	sc := &scaleConsole{pool: pool, rec: rec, spans: spans, seed: time.Since(start)}
	tb.Logf("seeded %d spans (%d calls) in %v", spans, calls, sc.seed.Round(time.Millisecond))
	// The hourly usage and panel rollups, as the exporter keeps them:
	// every ended hour rolled up. LOOM_SCALE_NO_ROLLUP=1 leaves every hour marked, so each
	// is read from the spans (the rollup's cold start, for comparison).
	if os.Getenv("LOOM_SCALE_NO_ROLLUP") == "" {
		start := time.Now()
		hours, err := rollup.Refresh(ctx, pool, time.Now())
		if err != nil {
			tb.Fatal(err)
		}
		// Autovacuum would vacuum and analyze the filled tables soon
		// after; the plans measured are those of a store in its steady
		// state.
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) loom.usage_hourly, loom.panel_hourly"); err != nil {
			tb.Fatal(err)
		}
		tb.Logf("rolled up %d hours of usage and panels in %v", hours, time.Since(start).Round(time.Millisecond))
	}
	// The tenants and keys the spans name, in the store, so the tenants
	// and keys pages list what they would in production.
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	box, err := secret.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(ctx, cfg.ConnString(), box, store.WithDeployments([]string{"openai-a", "openai-b"}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	actx := store.WithActor(ctx, store.Actor{Kind: store.ActorOperator, ID: "scale-seed"})
	for t := range 20 {
		id := fmt.Sprintf("tenant-%02d", t)
		if err := st.CreateTenant(actx, store.TenantSpec{ID: id}); err != nil {
			tb.Fatal(err)
		}
		for k := range 10 {
			if _, err := st.CreateKey(actx, id, store.KeySpec{ID: fmt.Sprintf("%s-key-%d", id, k)}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	sc.h = console.New(console.Options{
		Admin: admin.NewInternal(st, sha256.Sum256([]byte(scaleAdminToken)), slog.New(slog.DiscardHandler)).As,
		DB:    pool,
		Authenticate: func(key string) (string, string, bool) {
			k, ok := scaleKeys[key]
			return k[0], k[1], ok && k[0] != ""
		},
		KeyLive:          func(tenantID, keyID string) bool { return strings.HasPrefix(keyID, tenantID+"-key-") },
		AdminTokenSHA256: sha256.Sum256([]byte(scaleAdminToken)),
		SessionKey:       []byte("scale-test-session-key-0123456789"),
		LoginsPerIP:      1000,
		// Long enough to measure a slow page rather than fail it.
		StatementTimeout: time.Minute,
	})
	return sc
}

var (
	csrfRE  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	traceRE = regexp.MustCompile(`href="/console/calls/([0-9a-f]{32})[?"]`)
	olderRE = regexp.MustCompile(`<a href="([^"]+)" id="older"`)
)

// scaleSession is a logged-in console session: its cookie, and what a read
// on its behalf is (the admin's, or a tenant's under row-level security).
type scaleSession struct {
	name, tenant string
	cookie       *http.Cookie
}

func (sc *scaleConsole) login(tb testing.TB, name, key string) scaleSession {
	tb.Helper()
	w := httptest.NewRecorder()
	sc.h.ServeHTTP(w, httptest.NewRequest("GET", "/console/login", nil))
	m := csrfRE.FindStringSubmatch(w.Body.String())
	if m == nil {
		tb.Fatalf("no login form: %s", w.Body)
	}
	r := httptest.NewRequest("POST", "/console/login", strings.NewReader(url.Values{"key": {key}, "csrf": {m[1]}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range w.Result().Cookies() {
		r.AddCookie(c)
	}
	w = httptest.NewRecorder()
	sc.h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.Name == "loom_console" && c.Value != "" {
			return scaleSession{name: name, tenant: scaleKeys[key][0], cookie: c}
		}
	}
	tb.Fatalf("login as %s: %d, no session cookie", name, w.Code)
	return scaleSession{}
}

// get serves one page to s through the console's handler.
func (sc *scaleConsole) get(s scaleSession, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	r.AddCookie(s.cookie)
	w := httptest.NewRecorder()
	sc.h.ServeHTTP(w, r)
	return w
}

// scalePage is a page to time, by URL; optional pages are those other parts
// of the console add, skipped (by name) while they answer 404.
type scalePage struct {
	name, path string
	optional   bool
	// export is a bulk read (the CSV walks a tenant's whole history in
	// batches of 2,000 rows): a batch that takes a fifth of a day's
	// partition is read faster in one pass than by index, so its plans
	// are logged, not held to the page rule.
	export bool
}

// pages lists what s can open: every dashboard, the calls list (first
// page, two filtered pages, a page 20 pages deep by its cursor), a call page,
// the audit log, usage, tenants or keys, and the calls' CSV.
func (sc *scaleConsole) pages(tb testing.TB, s scaleSession) []scalePage {
	tb.Helper()
	// Every dashboard over its default range (the last hour, from the
	// spans) and over 24 hours and 7 days (from the panels' rollup).
	var ps []scalePage
	for _, d := range queries.Dashboards() {
		if d == queries.Pipeline && s.tenant != "" {
			continue
		}
		name, path := "dashboard-"+d, "/console/d/"+d
		if d == queries.Overview {
			name, path = "overview", "/console/"
		}
		ps = append(ps, scalePage{name: name, path: path},
			scalePage{name: name + "-24h", path: path + "?range=24h"},
			scalePage{name: name + "-7d", path: path + "?range=7d"})
	}
	first := sc.get(s, "/console/calls")
	if first.Code != http.StatusOK {
		tb.Fatalf("%s: calls list: %d %s", s.name, first.Code, first.Body)
	}
	// Filtered: one model's streams (about 2.5% of calls), and the last
	// day's errors (2%).
	ps = append(ps, scalePage{name: "calls", path: "/console/calls"},
		scalePage{name: "calls-filtered", path: "/console/calls?" + url.Values{
			"model": {"claude-sonnet-4"}, "stream": {"true"}}.Encode()},
		scalePage{name: "calls-errors-24h", path: "/console/calls?" + url.Values{
			"status": {"error"}, "range": {"24h"}}.Encode()},
		// A model nobody called: the walk finds no page and reads the
		// session's whole history.
		scalePage{name: "calls-unmatched", path: "/console/calls?" + url.Values{"model": {"no-such-model"}}.Encode()},
		scalePage{name: "calls-rare-model", path: "/console/calls?" + url.Values{"model": {"mistral-large"}}.Encode()})
	// Deep: 20 pages in by the Older links, or the last page before that.
	deep, body := "", first.Body.String()
	for range 20 {
		m := olderRE.FindStringSubmatch(body)
		if m == nil {
			break
		}
		deep = html.UnescapeString(m[1])
		body = sc.get(s, deep).Body.String()
	}
	if deep == "" {
		tb.Fatalf("%s: no Older link on the first page of calls", s.name)
	}
	ps = append(ps, scalePage{name: "calls-deep", path: deep})
	m := traceRE.FindStringSubmatch(first.Body.String())
	if m == nil {
		tb.Fatalf("%s: no call linked from the calls list", s.name)
	}
	ps = append(ps, scalePage{name: "call", path: "/console/calls/" + m[1]},
		scalePage{name: "audit", path: "/console/audit"},
		scalePage{name: "usage", path: "/console/usage", optional: true},
		scalePage{name: "usage-7d", path: "/console/usage?range=7d", optional: true},
		scalePage{name: "usage-30d-by-model", path: "/console/usage?range=30d&group=model", optional: true},
		scalePage{name: "calls-csv", path: "/console/calls.csv", optional: true, export: true})
	if s.tenant == "" {
		ps = append(ps, scalePage{name: "tenants", path: "/console/tenants", optional: true})
	} else {
		ps = append(ps, scalePage{name: "keys", path: "/console/keys", optional: true})
	}
	return ps
}

// BenchmarkConsolePages_1MSpans serves each console page over a million
// spans (LOOM_SCALE_CALLS calls, default 500,000: a SERVER and a CLIENT span
// each, plus retries) as the admin, the biggest tenant and a small one
// (tenant-07, about 3% of the calls), and reports
// each page's mean, median and slowest render in ms. make bench-console
// runs it.
func BenchmarkConsolePages_1MSpans(b *testing.B) {
	calls := 500_000
	if v, err := strconv.Atoi(os.Getenv("LOOM_SCALE_CALLS")); err == nil && v > 0 {
		calls = v
	}
	sc := newScaleConsole(b, calls)
	for _, s := range []scaleSession{sc.login(b, "admin", scaleAdminToken), sc.login(b, "tenant", "sk-loom-scale-big-0000000000000"),
		sc.login(b, "small-tenant", "sk-loom-scale-small-00000000000")} {
		for _, p := range sc.pages(b, s) {
			b.Run(s.name+"/"+p.name, func(b *testing.B) {
				if w := sc.get(s, p.path); w.Code == http.StatusNotFound && p.optional {
					b.Skipf("%s (%s) is not in this build", p.name, p.path)
				} else if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", p.path, w.Code, w.Body)
				}
				var took []time.Duration
				for b.Loop() {
					start := time.Now()
					if w := sc.get(s, p.path); w.Code != http.StatusOK {
						b.Fatalf("%s: %d", p.path, w.Code)
					}
					took = append(took, time.Since(start))
				}
				slices.Sort(took)
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
				b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
				b.ReportMetric(0, "ns/op") // the ms above say it in a unit people read
			})
		}
	}
}

// TestConsolePages_AtScale_QueriesUseIndexes opens every page over a seeded
// store as the admin, the biggest tenant and a small one (row-level
// security changes the plans), then EXPLAIN ANALYZEs every query the pages
// ran, with their arguments and as the same reader, and fails on a
// sequential scan of a span partition that discards most of what it reads
// (see the top of this file). It seeds LOOM_SCALE_TEST_CALLS calls
// (default 100,000: about 200,000 spans, some seconds); the benchmark runs
// the million.
func TestConsolePages_AtScale_QueriesUseIndexes(t *testing.T) {
	calls := 100_000
	if v, err := strconv.Atoi(os.Getenv("LOOM_SCALE_TEST_CALLS")); err == nil && v > 0 {
		calls = v
	}
	t.Parallel()
	sc := newScaleConsole(t, calls)
	for _, s := range []scaleSession{sc.login(t, "admin", scaleAdminToken),
		sc.login(t, "big tenant", "sk-loom-scale-big-0000000000000"),
		sc.login(t, "small tenant", "sk-loom-scale-small-00000000000")} {
		for _, p := range sc.pages(t, s) {
			sc.rec.start()
			start := time.Now()
			w := sc.get(s, p.path)
			took := time.Since(start)
			ran := sc.rec.stop()
			if w.Code == http.StatusNotFound && p.optional {
				t.Logf("%s: %s (%s) is not in this build", s.name, p.name, p.path)
				continue
			}
			if w.Code != http.StatusOK {
				t.Errorf("%s: %s: %d %s", s.name, p.path, w.Code, w.Body)
				continue
			}
			t.Logf("%s: %s: %d queries, %v", s.name, p.name, len(ran), took.Round(100*time.Microsecond))
			for _, q := range ran {
				plan, err := sc.explain(t.Context(), s, q)
				if err != nil {
					t.Errorf("%s: %s: explain: %v\n%s", s.name, p.name, err, q.sql)
					continue
				}
				if testing.Verbose() {
					t.Logf("  %s\n%s", strings.Join(strings.Fields(q.sql), " "), indentPlan(plan))
				}
				if bad := wastefulScans(plan); len(bad) > 0 && !p.export {
					t.Errorf("%s: %s reads span partitions sequentially to discard most rows (%s); query:\n%s\nargs: %v\nplan:\n%s",
						s.name, p.name, strings.Join(bad, "; "), q.sql, q.args, indentPlan(plan))
				}
			}
		}
	}
}

// explain runs EXPLAIN ANALYZE of q as s reads.
func (sc *scaleConsole) explain(ctx context.Context, s scaleSession, q recordedQuery) ([]byte, error) {
	var plan []byte
	f := func(tx pgx.Tx) error {
		// As the console's read sets it.
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+q.sql, q.args...).Scan(&plan)
	}
	var err error
	if s.tenant == "" {
		err = schema.ReadAll(ctx, sc.pool, time.Minute, f)
	} else {
		err = schema.ReadAsTenant(ctx, sc.pool, s.tenant, time.Minute, f)
	}
	return plan, err
}

// spanTableRE names loom.spans and loom.span_content and their partitions.
var spanTableRE = regexp.MustCompile(`^(spans|span_content)(_\d{8})?$`)

// minWastefulScan is the fewest rows a Seq Scan must read to be judged.
// Fewer cost a few milliseconds whichever way they are read, and the day in
// progress is such a partition for hours after midnight UTC: the seed is
// relative to now, so today's partition grows with the hour the test runs,
// and the planner rightly reads a small one in one pass (at 04:40 UTC a big
// tenant's usage read today's 13,000 rows so, failing a rule of 1,000).
const minWastefulScan = 20_000

// wastefulScans lists the Seq Scans of a plan (EXPLAIN ANALYZE, JSON) over
// span tables that read at least minWastefulScan rows and discard more
// than three for each one they keep.
func wastefulScans(planJSON []byte) []string {
	var plans []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(planJSON, &plans); err != nil {
		return []string{"unreadable plan: " + err.Error()}
	}
	var bad []string
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		rel, _ := n["Relation Name"].(string)
		if n["Node Type"] == "Seq Scan" && spanTableRE.MatchString(rel) {
			kept, _ := n["Actual Rows"].(float64)
			removed, _ := n["Rows Removed by Filter"].(float64)
			loops, _ := n["Actual Loops"].(float64)
			if (kept+removed)*loops >= minWastefulScan && removed > 3*kept {
				bad = append(bad, fmt.Sprintf("%s: kept %.0f, discarded %.0f (x%.0f loops)", rel, kept, removed, loops))
			}
		}
		children, _ := n["Plans"].([]any)
		for _, c := range children {
			if m, ok := c.(map[string]any); ok {
				walk(m)
			}
		}
	}
	for _, p := range plans {
		walk(p.Plan)
	}
	return bad
}

// indentPlan is the plan's tree, one node a line, and its execution time,
// for a failure message.
func indentPlan(planJSON []byte) string {
	var plans []map[string]any
	if json.Unmarshal(planJSON, &plans) != nil {
		return string(planJSON)
	}
	var b strings.Builder
	var walk func(n map[string]any, depth int)
	walk = func(n map[string]any, depth int) {
		fmt.Fprintf(&b, "%s%v", strings.Repeat("  ", depth), n["Node Type"])
		for _, k := range []string{"Relation Name", "Index Name", "Filter", "Index Cond", "Recheck Cond", "Actual Rows", "Rows Removed by Filter", "Actual Loops", "Actual Total Time"} {
			if v, ok := n[k]; ok {
				fmt.Fprintf(&b, " [%s: %v]", k, v)
			}
		}
		b.WriteByte('\n')
		children, _ := n["Plans"].([]any)
		for _, c := range children {
			if m, ok := c.(map[string]any); ok {
				walk(m, depth+1)
			}
		}
	}
	for _, p := range plans {
		if n, ok := p["Plan"].(map[string]any); ok {
			walk(n, 0)
		}
		fmt.Fprintf(&b, "execution: %v ms\n", p["Execution Time"])
	}
	return b.String()
}

// sqlRecorder is a pgx tracer that records the queries the console runs
// against loom tables while it is on: what a page asked of Postgres,
// whatever file its SQL lives in.
type sqlRecorder struct {
	mu  sync.Mutex
	on  bool
	got []recordedQuery
}

type recordedQuery struct {
	sql  string
	args []any
}

var _ pgx.QueryTracer = (*sqlRecorder)(nil)

func (r *sqlRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The read's own set_config and SET LOCAL ROLE are no page's query.
	if r.on && strings.Contains(d.SQL, "loom.") && !strings.Contains(d.SQL, "set_config(") {
		r.got = append(r.got, recordedQuery{sql: d.SQL, args: slices.Clone(d.Args)})
	}
	return ctx
}

func (r *sqlRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *sqlRecorder) start() {
	r.mu.Lock()
	r.on, r.got = true, nil
	r.mu.Unlock()
}

func (r *sqlRecorder) stop() []recordedQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.got
}
