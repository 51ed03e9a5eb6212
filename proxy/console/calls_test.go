package console_test

import (
	"encoding/csv"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/rollup"
)

var (
	traceAttr = regexp.MustCompile(`data-trace="([0-9a-f]{32})"`)
	pagerLink = regexp.MustCompile(`<a href="([^"]+)" id="(newest|newer|older)">`)
	callHref  = regexp.MustCompile(`<td class="time"><a href="([^"]+)">`)
)

// listed is a calls page's traces, in order, and its paging links.
func listed(t *testing.T, c *client, path string) (traces []string, links map[string]string) {
	t.Helper()
	code, body, _ := c.do("GET", path, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	for _, m := range traceAttr.FindAllStringSubmatch(body, -1) {
		traces = append(traces, m[1])
	}
	links = map[string]string{}
	for _, m := range pagerLink.FindAllStringSubmatch(body, -1) {
		links[m[2]] = html.UnescapeString(m[1])
	}
	return traces, links
}

// serverTraces is every call in the table, as the list sorts them: an
// account independent of the console's paging.
func serverTraces(t *testing.T, f *fixture) []string {
	t.Helper()
	rows, err := f.pool.Query(t.Context(), `SELECT trace_id FROM loom.spans
WHERE kind = 'server' AND attributes->>'http.route' <> '/v1/models' ORDER BY start_time DESC, trace_id DESC`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func loggedIn(t *testing.T, f *fixture, key string) *client {
	t.Helper()
	c := newClient(t, f.URL)
	if code := c.login(key); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	return c
}

// walk follows link ("older" or "newer") from path until there is none,
// and returns the pages seen, in order, and the path of the last one.
func walk(t *testing.T, c *client, path, link string, midway func(page int)) (pages [][]string, last string) {
	t.Helper()
	for page := 0; path != ""; page++ {
		if page > 100 {
			t.Fatal("paging does not end")
		}
		traces, links := listed(t, c, path)
		pages = append(pages, traces)
		if midway != nil {
			midway(page)
		}
		last, path = path, links[link]
	}
	return pages, last
}

func TestCalls_KeysetPaging_NoRowTwiceNoneSkipped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for i := range 9 {
		insertCall(ctx, t, f.pool, call{tenant: "acme", key: "acme-key", model: modelA, in: 1, out: 1, durMs: 10},
			base.Add(-time.Duration(i)*time.Minute))
	}
	// Calls that started in the same microsecond: the trace id orders them,
	// and a page may end between them.
	for range 3 {
		insertCall(ctx, t, f.pool, call{tenant: "globex", key: "globex-key", model: modelB, durMs: 10}, base.Add(-90*time.Second))
	}
	want := serverTraces(t, f)
	c := loggedIn(t, f, adminToken)

	var arrived string
	pages, last := walk(t, c, "/console/calls?n=3", "older", func(page int) {
		if page == 1 { // a call arrives while somebody pages
			arrived = insertCall(ctx, t, f.pool, call{tenant: "acme", key: "acme-key", model: modelA, durMs: 5}, time.Now().UTC())
		}
	})
	if got := slices.Concat(pages...); !slices.Equal(got, want) {
		t.Fatalf("walking Older saw\n%v\nwant every call once, newest first:\n%v", got, want)
	}
	for i, p := range pages {
		if len(p) != 3 && i != len(pages)-1 || len(p) == 0 {
			t.Fatalf("page %d has %d calls, want 3 (the last 1 to 3)", i, len(p))
		}
	}
	// And back from the last page to the newest: every call once more, and
	// the one that arrived meanwhile at the top.
	back, _ := walk(t, c, last, "newer", nil)
	slices.Reverse(back)
	got := slices.Concat(back[:len(back)-1]...) // the last page again, read first
	wantBack := append([]string{arrived}, want[:len(want)-len(pages[len(pages)-1])]...)
	if !slices.Equal(got, wantBack) {
		t.Fatalf("walking Newer saw\n%v\nwant\n%v", got, wantBack)
	}
}

func TestCalls_Filters_CombineAndSurviveLinks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := loggedIn(t, f, adminToken)
	a0, a1, a2, b0, b1 := f.TracesA[0], f.TracesA[1], f.TracesA[2], f.TracesB[0], f.TracesB[1]
	// The fixture's calls started 3, 6, 9, 12 and 15 minutes ago.
	from := url.QueryEscape(time.Now().UTC().Add(-10 * time.Minute).Format(time.RFC3339))
	to := url.QueryEscape(time.Now().UTC().Add(-4 * time.Minute).Format(time.RFC3339))
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"none", "", []string{a0, a1, a2, b0, b1}},
		{"model and stream", "model=" + modelA + "&stream=true", []string{a1}},
		{"5xx of one error type", "status=5xx&error_type=upstream_error", []string{a2}},
		{"4xx", "status=4xx", nil},
		{"tenant and not streamed", "tenant=globex&stream=false", []string{b0}},
		{"min duration", "min_ms=1000", []string{a1, b0}},
		{"provider, tenant, min duration", "provider=openai&tenant=acme&min_ms=1000", []string{a1}},
		{"key and ok", "key=acme-key&status=ok", []string{a0, a1}},
		{"from and to", "from=" + from + "&to=" + to, []string{a1, a2}},
		{"named range and model", "range=15m&model=" + modelB, []string{b0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := listed(t, c, "/console/calls?"+tc.query)
			if !slices.Equal(got, tc.want) {
				t.Errorf("?%s lists %v, want %v", tc.query, got, tc.want)
			}
		})
	}

	// Every call link and the CSV link carry the filter; paging links too.
	_, body, _ := c.do("GET", "/console/calls?n=1&tenant=acme&model="+modelA, nil)
	for _, m := range callHref.FindAllStringSubmatch(body, -1) {
		u, err := url.Parse(html.UnescapeString(m[1]))
		if err != nil || u.Query().Get("model") != modelA || u.Query().Get("tenant") != "acme" || u.Query().Has("n") {
			t.Errorf("a call links to %q: want the filter, not the page", m[1])
		}
	}
	_, links := listed(t, c, "/console/calls?n=1&tenant=acme&model="+modelA)
	older, _ := url.Parse(links["older"])
	if older == nil || older.Query().Get("model") != modelA || older.Query().Get("n") != "1" || older.Query().Get("after") == "" {
		t.Fatalf("older link %q loses the filter", links["older"])
	}
	if got, _ := listed(t, c, links["older"]); !slices.Equal(got, []string{a1}) {
		t.Errorf("the filtered second page lists %v, want %v", got, []string{a1})
	}
	if !strings.Contains(body, `href="/console/calls.csv?model=`+modelA+`&amp;tenant=acme"`) {
		t.Error("the CSV link does not carry the filter")
	}
}

func TestCalls_BadFilterOrCursor_400(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := loggedIn(t, f, adminToken)
	_, links := listed(t, c, "/console/calls?n=2")
	good, _ := url.Parse(links["older"])
	after := good.Query().Get("after")
	for _, q := range []string{
		"after=not-a-cursor", "after=" + after[:len(after)-3], "before=" + after + "&after=" + after,
		"after=MTIzLnh5eg", // "123.xyz": no trace id
		"after=" + strings.Repeat("A", 200), "n=0", "n=100000", "n=ten",
		"status=bogus", "stream=maybe", "min_ms=-1", "range=2y", "from=yesterday",
		"model=" + strings.Repeat("m", 300),
	} {
		for _, p := range []string{"/console/calls?", "/console/calls.csv?"} {
			if p == "/console/calls.csv?" && (strings.Contains(q, "after=") || strings.HasPrefix(q, "n=")) {
				continue // the export has no pages
			}
			code, body, _ := c.do("GET", p+q, nil)
			if code != http.StatusBadRequest || strings.Contains(body, "SQLSTATE") {
				t.Errorf("GET %s%s: %d, want 400 with a message\n%s", p, q, code, body)
			}
		}
	}
}

func TestCalls_CSV_MatchesTheListAndNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	evil := insertCall(ctx, t, f.pool, call{tenant: "acme", key: "@key", model: `=HYPERLINK("http://x.example","y")`,
		in: 1, out: 2, durMs: 12.5}, time.Now().UTC().Add(-time.Minute))
	// More calls than one batch of the export reads: it must go on from
	// where each batch ended, neither repeating nor skipping a call.
	_, err := f.pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, start_time, end_time, duration_ms, name, kind, status_code, tenant_id,
    api_key_id, request_model, stream, http_status, attributes)
SELECT md5('csv' || g), substr(md5('span' || g), 1, 16), now() - interval '1 hour' - g * interval '100 ms',
    now() - interval '1 hour', 1, 'POST /v1/embeddings', 'server', 'unset', 'globex', 'globex-key', 'embed', false, 200,
    '{"http.route": "/v1/embeddings"}'
FROM generate_series(1, 2345) g`)
	if err != nil {
		t.Fatal(err)
	}
	c := loggedIn(t, f, adminToken)
	code, body, resp := c.do("GET", "/console/calls.csv", nil)
	if code != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!regexp.MustCompile(`^attachment; filename="loom-calls-\d{8}-\d{6}\.csv"$`).MatchString(resp.Header.Get("Content-Disposition")) {
		t.Fatalf("GET /console/calls.csv: %d %v", code, resp.Header)
	}
	records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if records[0][0] != "Time (UTC)" || records[0][14] != "Duration (ms)" {
		t.Fatalf("header %v", records[0])
	}
	var got []string
	for _, r := range records[1:] {
		got = append(got, r[1])
		if r[1] == evil && (r[3] != "'@key" || r[4] != `'=HYPERLINK("http://x.example","y")` || r[14] != "12.5") {
			t.Errorf("the hostile call's row %q: want ' before each formula and plain numbers", r)
		}
	}
	if want := serverTraces(t, f); !slices.Equal(got, want) {
		t.Fatalf("the CSV has %d calls, want all %d in the list's order", len(got), len(want))
	}

	// Filtered: the same calls as the filtered list.
	list, _ := listed(t, c, "/console/calls?tenant=acme&status=ok")
	_, body, _ = c.do("GET", "/console/calls.csv?tenant=acme&status=ok", nil)
	records, err = csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, r := range records[1:] {
		got = append(got, r[1])
	}
	if !slices.Equal(got, list) || len(list) != 3 {
		t.Errorf("filtered CSV %v, list %v", got, list)
	}
}

func TestCalls_TenantSession_NeverSeesAnotherTenant_ListOrCSV(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := loggedIn(t, f, keyA)
	forbidden := append([]string{modelB, "globex"}, f.TracesB...)
	for _, p := range []string{"/console/calls", "/console/calls?tenant=globex", "/console/calls?model=" + modelB,
		"/console/calls.csv", "/console/calls.csv?tenant=globex"} {
		code, body, _ := c.do("GET", p, nil)
		if code != 200 {
			t.Fatalf("GET %s: %d", p, code)
		}
		for _, s := range forbidden {
			if strings.Contains(body, s) && !(s == modelB && strings.Contains(p, "model=")) { // the form shows its own filter
				t.Errorf("tenant A's GET %s shows B's %q", p, s)
			}
		}
		if !strings.Contains(p, modelB) {
			for _, tr := range f.TracesA {
				if !strings.Contains(body, tr) {
					t.Errorf("tenant A's GET %s misses its call %s", p, tr)
				}
			}
		}
	}
}

func TestCalls_ModelListing_NotListedAsACall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	var models []string
	for _, route := range []string{"/v1/models", "/v1/models/{model}", "/v1/responses/{response_id}"} {
		trace := hexID(16)
		_, err := f.pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, start_time, end_time, duration_ms, name, kind, status_code, tenant_id,
    api_key_id, http_status, attributes)
VALUES ($1, $2, now() - interval '1 minute', now() - interval '1 minute', 0.2, 'GET ' || $3, 'server', 'unset',
    'acme', 'acme-key', 200, jsonb_build_object('http.route', $3::text))`, trace, hexID(8), route)
		if err != nil {
			t.Fatal(err)
		}
		models = append(models, trace)
	}
	for _, key := range []string{keyA, adminToken} {
		c := loggedIn(t, f, key)
		for _, p := range []string{"/console/calls", "/console/calls.csv"} {
			_, body, _ := c.do("GET", p, nil)
			for _, tr := range models {
				if strings.Contains(body, tr) {
					t.Errorf("GET %s lists a request that is not a call (%s)", p, tr)
				}
			}
			if !strings.Contains(body, f.TracesA[0]) {
				t.Errorf("GET %s misses a call", p)
			}
		}
	}
}

// A key or model filter starts its walk at the first hour the usage rollup
// (or a write since its refresh) has the key or model in: a call in a
// rolled-up hour is listed, and so is one written later into an hour
// rolled up before it (its write marked the hour), while a model nobody
// called lists nothing.
func TestCalls_ModelOrKeyFilter_FindsCallsInRolledUpAndLateHours(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	old := time.Now().UTC().Truncate(time.Hour).Add(-30 * time.Hour)
	early := insertCall(ctx, t, f.pool, call{tenant: "acme", key: "acme-key-9", model: "m-rolled", in: 1, out: 1, durMs: 5}, old.Add(time.Minute))
	if _, err := rollup.Refresh(ctx, f.pool, time.Now()); err != nil {
		t.Fatal(err)
	}
	late := insertCall(ctx, t, f.pool, call{tenant: "acme", key: "acme-key-9", model: "m-late", in: 1, out: 1, durMs: 5}, old.Add(2*time.Minute))
	admin := loggedIn(t, f, adminToken)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"model=m-rolled", []string{early}},
		{"model=m-rolled&tenant=acme", []string{early}},
		{"model=m-late", []string{late}},
		{"key=acme-key-9", []string{late, early}},
		{"model=no-such-model", nil},
		{"model=m-rolled&tenant=globex", nil},
	} {
		if got, _ := listed(t, admin, "/console/calls?"+c.query); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.query, got, c.want)
		}
	}
	// A tenant's session reads the rollup under row-level security too.
	if got, _ := listed(t, loggedIn(t, f, keyA), "/console/calls?model=m-rolled"); !slices.Equal(got, []string{early}) {
		t.Errorf("acme's session: %v, want %v", got, []string{early})
	}
}
