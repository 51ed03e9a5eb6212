package console_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/dashboards/queries"
)

// panelHTML is the section of body that renders panel id, or "".
func panelHTML(body, id string) string {
	i := strings.Index(body, `data-panel="`+id+`"`)
	if i < 0 {
		return ""
	}
	rest := body[i:]
	if j := strings.Index(rest, "</section>"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// colSum adds up a table panel's cells of one column.
func colSum(t *testing.T, body, panel, col string) int64 {
	t.Helper()
	re := regexp.MustCompile(`data-col="` + regexp.QuoteMeta(col) + `">([^<]*)</td>`)
	var sum int64
	for _, m := range re.FindAllStringSubmatch(panelHTML(body, panel), -1) {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			t.Fatalf("%s.%s: cell %q is not a whole number", panel, col, m[1])
		}
		sum += n
	}
	return sum
}

// tileValue is a stat panel's tile for column col.
func tileValue(body, panel, col string) string {
	re := regexp.MustCompile(`<div class="label">` + regexp.QuoteMeta(col) + `</div><div class="value">([^<]*)</div>`)
	if m := re.FindStringSubmatch(panelHTML(body, panel)); m != nil {
		return m[1]
	}
	return ""
}

func TestDashboards(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	t.Run("TenantSession_RendersEveryPanelWithItsOwnNumbers", func(t *testing.T) {
		c := newClient(t, f.URL)
		if code := c.login(keyA); code != http.StatusSeeOther {
			t.Fatalf("login A: %d", code)
		}
		for _, d := range []string{queries.Overview, queries.Tenant, queries.Stream, queries.Calls} {
			for _, rng := range []string{"15m", "1h", "6h", "24h", "7d", "hour", "day"} {
				code, body, _ := c.do("GET", "/console/d/"+d+"?range="+rng, nil)
				if code != http.StatusOK {
					t.Fatalf("%s (%s): %d\n%s", d, rng, code, body)
				}
				for _, p := range queries.Of(d) {
					if panelHTML(body, p.ID) == "" {
						t.Errorf("%s (%s): panel %s not rendered", d, rng, p.ID)
					}
				}
				for _, s := range append([]string{modelB, "globex"}, f.TracesB...) {
					if strings.Contains(body, s) {
						t.Errorf("%s (%s) shows B's %q", d, rng, s)
					}
				}
			}
		}
		_, body, _ := c.do("GET", "/console/", nil)
		// acme: 120+300 in, 48+512 out; its failed call has no tokens.
		if in, out := colSum(t, body, "overview_tokens_by", "input_tokens"), colSum(t, body, "overview_tokens_by", "output_tokens"); in != 420 || out != 560 {
			t.Errorf("overview tokens: %d in, %d out; want 420, 560", in, out)
		}
		if !strings.Contains(panelHTML(body, "overview_latency"), `<g class="series s0`) {
			t.Error("the latency chart has no lines")
		}
		_, body, _ = c.do("GET", "/console/d/tenant", nil)
		if got := tileValue(body, "tenant_keys_in_use", "Keys in use"); got != "1" {
			t.Errorf("keys in use: %q, want 1", got)
		}
		if got := colSum(t, body, "tenant_keys", "requests"); got != 3 {
			t.Errorf("tenant keys requests: %d, want 3", got)
		}
		_, body, _ = c.do("GET", "/console/d/calls", nil)
		for _, tr := range f.TracesA {
			if !strings.Contains(panelHTML(body, "calls_recent"), `href="/console/calls/`+tr+`"`) {
				t.Errorf("recent calls do not link %s", tr)
			}
		}
	})

	t.Run("TenantSession_PipelineIs404", func(t *testing.T) {
		c := newClient(t, f.URL)
		c.login(keyA)
		if code, _, _ := c.do("GET", "/console/d/pipeline", nil); code != http.StatusNotFound {
			t.Errorf("tenant on pipeline: %d", code)
		}
		if _, body, _ := c.do("GET", "/console/", nil); strings.Contains(body, "/console/d/pipeline") {
			t.Error("a tenant's nav lists Pipeline health")
		}
		if code, _, _ := c.do("GET", "/console/d/nope", nil); code != http.StatusNotFound {
			t.Errorf("unknown dashboard: %d", code)
		}
	})

	t.Run("Admin_RendersPipelineAndFiltersByTenant", func(t *testing.T) {
		c := newClient(t, f.URL)
		if code := c.login(adminToken); code != http.StatusSeeOther {
			t.Fatalf("admin login: %d", code)
		}
		code, body, _ := c.do("GET", "/console/d/pipeline", nil)
		if code != http.StatusOK {
			t.Fatalf("admin pipeline: %d\n%s", code, body)
		}
		for _, p := range queries.Of(queries.Pipeline) {
			if panelHTML(body, p.ID) == "" {
				t.Errorf("pipeline panel %s not rendered", p.ID)
			}
		}
		_, body, _ = c.do("GET", "/console/", nil)
		if in := colSum(t, body, "overview_tokens_by", "input_tokens"); in != 420+999+50 {
			t.Errorf("admin overview input tokens: %d", in)
		}
		if _, body, _ := c.do("GET", "/console/?tenant=%3Cb%3Ex%3C/b%3E", nil); strings.Contains(body, "<b>x</b>") {
			t.Error("the tenant parameter is written unescaped")
		}
		_, body, _ = c.do("GET", "/console/?tenant=globex", nil)
		if in, out := colSum(t, body, "overview_tokens_by", "input_tokens"), colSum(t, body, "overview_tokens_by", "output_tokens"); in != 999+50 || out != 777+60 {
			t.Errorf("admin overview for globex: %d in, %d out", in, out)
		}
	})
}
