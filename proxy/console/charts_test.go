package console_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// texts are the contents of the <text> elements in the first element of
// class cls in html: the value axis (yaxis) or the time axis (xlabels).
func texts(html, cls string) []string {
	i := strings.Index(html, `class="`+cls)
	if i < 0 {
		return nil
	}
	html = html[i:]
	if j := strings.Index(html, "</svg>"); j >= 0 && cls == "yaxis" {
		html = html[:j]
	} else if j := strings.Index(html, "</g>"); j >= 0 {
		html = html[:j]
	}
	var out []string
	for _, m := range regexp.MustCompile(`<text[^>]*>([^<]*)</text>`).FindAllStringSubmatch(html, -1) {
		out = append(out, m[1])
	}
	return out
}

var (
	clockLabel = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d$|^[A-Z][a-z]{2} \d{1,2}$`)
	dateLabel  = regexp.MustCompile(`^[A-Z][a-z]{2} \d{1,2}$`)
)

func TestCharts_Page(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newClient(t, f.URL)
	if code := c.login(keyA); code != http.StatusSeeOther {
		t.Fatalf("login A: %d", code)
	}

	t.Run("AxesWithUnitsGridAndHoverValues", func(t *testing.T) {
		code, body, _ := c.do("GET", "/console/?range=1h", nil)
		if code != http.StatusOK {
			t.Fatalf("%d\n%s", code, body)
		}
		lat := panelHTML(body, "overview_latency")
		ys := texts(lat, "yaxis")
		// 2100 ms at the top: ticks of a second.
		if !slices.Equal(ys, []string{"0 s", "1 s", "2 s", "3 s"}) {
			t.Errorf("latency value axis %q: want 0 s to 3 s", ys)
		}
		xs := texts(lat, "xlabels")
		if len(xs) < 3 || len(xs) > 7 {
			t.Errorf("latency time axis %q: want 3 to 7 labels", xs)
		}
		for _, x := range xs {
			if !clockLabel.MatchString(x) {
				t.Errorf("time label %q is not a time of day or a date", x)
			}
		}
		if strings.Count(lat, `<line x1="0" x2="100%"`) != len(ys) {
			t.Errorf("a gridline per value tick: %d lines, %d ticks", strings.Count(lat, `<line x1="0" x2="100%"`), len(ys))
		}
		// acme's calls took 840 and 2100 ms (the failed one 95): each
		// bucket with a call tells its time and values.
		for _, want := range []string{"p50: 840.0 ms", "p99: 2100.0 ms", "p50: 95.0 ms"} {
			if !strings.Contains(lat, want) {
				t.Errorf("no hover value %q in the latency chart", want)
			}
		}
		if !regexp.MustCompile(`<tspan class="when">[A-Z][a-z]{2} \d{1,2} \d\d:\d\d–\d\d:\d\d UTC</tspan>`).MatchString(lat) {
			t.Error("hover values do not say their bucket's time in UTC")
		}
		for _, s := range []string{"p50", "p95", "p99"} {
			if !regexp.MustCompile(`<label for="overview_latency-s\d"[^>]*>` + s + `</label>`).MatchString(lat) {
				t.Errorf("no legend entry for %s", s)
			}
		}
		for id, unit := range map[string]string{
			"overview_requests": "req/s", "overview_tokens": "tokens/s", "overview_attempts": "/min", "overview_latency": "",
		} {
			if !strings.Contains(panelHTML(body, id), `<div class="chart" data-unit="`+unit+`">`) {
				t.Errorf("%s: not captioned %q", id, unit)
			}
		}
		if ys := texts(panelHTML(body, "overview_error_rate"), "yaxis"); len(ys) == 0 || !strings.HasSuffix(ys[len(ys)-1], "%") {
			t.Errorf("error rate axis %q: want percentages", ys)
		}
		if !strings.Contains(body, `<th data-col="input_tokens">Input tokens</th>`) {
			t.Error("table headers are SQL names")
		}
		if !strings.Contains(body, "times in UTC") {
			t.Error("the page does not say its times are UTC")
		}
	})

	t.Run("Ranges", func(t *testing.T) {
		for _, tt := range []struct{ q, on string }{
			{"", "1h"}, {"range=15m", "15m"}, {"range=1h", "1h"}, {"range=6h", "6h"}, {"range=24h", "24h"}, {"range=7d", "7d"},
			{"range=hour", "1h"}, {"range=day", "24h"},
		} {
			code, body, _ := c.do("GET", "/console/d/overview?"+tt.q, nil)
			if code != http.StatusOK {
				t.Fatalf("%s: %d", tt.q, code)
			}
			if !strings.Contains(body, `data-range="`+tt.on+`" class="on"`) {
				t.Errorf("%q: range %s is not marked as shown", tt.q, tt.on)
			}
			if got := strings.Count(body, `<div class="chart"`); got != 8 {
				t.Errorf("%q: %d charts, want 8", tt.q, got)
			}
			if tt.on == "7d" {
				for _, x := range texts(panelHTML(body, "overview_requests"), "xlabels") {
					if !dateLabel.MatchString(x) {
						t.Errorf("7d: time label %q is not a date", x)
					}
				}
			}
		}
		to := time.Now().UTC().Add(time.Minute)
		from := to.Add(-3 * time.Hour)
		code, body, _ := c.do("GET", "/console/?range=custom&from="+from.Format("2006-01-02T15:04")+"&to="+to.Format("2006-01-02T15:04"), nil)
		if code != http.StatusOK {
			t.Fatalf("custom: %d\n%s", code, body)
		}
		if !strings.Contains(body, "p50: 840.0 ms") || !strings.Contains(body, from.Format("2006-01-02 15:04")+" to ") {
			t.Error("the custom range shows neither the calls in it nor its bounds")
		}
		// A range change from a custom range keeps nothing of it.
		if !strings.Contains(body, `href="/console/?range=6h"`) {
			t.Error("the 6h link from a custom range carries more than the range")
		}
	})

	t.Run("BadRange_400WithTheReason", func(t *testing.T) {
		for q, want := range map[string]string{
			"range=custom&from=2026-12-02T00:00&to=2026-12-01T00:00": "must start (from) before it ends (to)",
			"range=custom&from=2026-01-01T00:00&to=2026-12-01T00:00": "at most 31 days",
			"range=custom&from=%3Cscript%3E&to=2026-12-01T00:00":     "&#34;&lt;script&gt;&#34;, is not a date and time",
			"range=fortnight":                  "There is no range &#34;fortnight&#34;",
			"range=custom&to=2026-12-01T00:00": "needs both a start (from) and an end (to)",
		} {
			code, body, _ := c.do("GET", "/console/?"+q, nil)
			if code != http.StatusBadRequest || !strings.Contains(body, want) {
				t.Errorf("%s: %d, want 400 saying %q\n%s", q, code, want, body)
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, `<section class="panel`) {
				t.Errorf("%s: the error page echoes markup or shows panels", q)
			}
		}
	})

	t.Run("AutoRefresh_KeptAcrossRangeChanges", func(t *testing.T) {
		_, body, _ := c.do("GET", "/console/?range=6h&refresh=30s", nil)
		if !strings.Contains(body, `<meta http-equiv="refresh" content="30">`) {
			t.Error("no refresh every 30 s")
		}
		if !strings.Contains(body, `href="/console/?range=7d&amp;refresh=30s"`) {
			t.Error("the 7d link drops the refresh")
		}
		if !strings.Contains(body, `href="/console/?range=6h" data-refresh="off"`) {
			t.Error("no link that turns refresh off and keeps the range")
		}
		if _, body, _ := c.do("GET", "/console/?refresh=1s", nil); strings.Contains(body, "http-equiv") {
			t.Error("an interval not offered refreshes anyway")
		}
	})

	t.Run("Admin_TenantKeptAcrossRangeChanges", func(t *testing.T) {
		a := newClient(t, f.URL)
		if code := a.login(adminToken); code != http.StatusSeeOther {
			t.Fatalf("admin login: %d", code)
		}
		_, body, _ := a.do("GET", "/console/?range=day&tenant=globex", nil)
		for _, rng := range []string{"15m", "1h", "6h", "24h", "7d"} {
			if !strings.Contains(body, `href="/console/?range=`+rng+`&amp;tenant=globex"`) {
				t.Errorf("the %s link drops the tenant", rng)
			}
		}
		if !strings.Contains(body, `<input type="hidden" name="tenant" value="globex">`) {
			t.Error("the custom range form drops the tenant")
		}
		if !strings.Contains(body, `<input type="hidden" name="range" value="24h">`) {
			t.Error("the tenant form drops the range")
		}
		// In the last hour globex's two calls are a bucket each.
		_, body, _ = a.do("GET", "/console/?tenant=globex", nil)
		if lat := panelHTML(body, "overview_latency"); strings.Contains(lat, "p50: 840.0 ms") || !strings.Contains(lat, "p50: 1300.0 ms") {
			t.Errorf("the tenant filter does not apply to the charts:\n%s", lat)
		}
	})
}
