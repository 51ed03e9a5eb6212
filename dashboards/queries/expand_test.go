package queries_test

import (
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/dashboards/queries"
)

var (
	from = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	to   = from.Add(time.Hour)
)

func TestExpand(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		iv   time.Duration
		vars map[string][]string
		want string
	}{
		{name: "time filter", sql: "WHERE $__timeFilter(s.start_time)",
			want: "WHERE s.start_time BETWEEN '2026-11-25T10:00:00Z' AND '2026-11-25T11:00:00Z'"},
		{name: "time group alias on the interval", sql: "SELECT $__timeGroupAlias(start_time, $__interval)", iv: time.Minute,
			want: `SELECT date_bin('60 seconds', start_time, timestamptz '1970-01-01 00:00:00+00') AS "time"`},
		{name: "time group on a fixed width", sql: "$__timeGroup(start_time, 1h)",
			want: "date_bin('3600 seconds', start_time, timestamptz '1970-01-01 00:00:00+00')"},
		{name: "interval in ms and as text", sql: "$__interval_ms $__interval", iv: 30 * time.Second,
			want: "30000 30s"},
		{name: "time bounds", sql: "$__timeFrom() $__timeTo()",
			want: "'2026-11-25T10:00:00Z' '2026-11-25T11:00:00Z'"},
		{name: "absent known variable is All", sql: "x IN ($tenant)",
			want: "x IN ('__all__')"},
		{name: "All among the values is All", sql: "x IN ($tenant)", vars: map[string][]string{"tenant": {"a", "All"}},
			want: "x IN ('__all__')"},
		{name: "values are quoted and escaped", sql: "x IN (${model})", vars: map[string][]string{"model": {"gpt-4o", "o'brien"}},
			want: "x IN ('gpt-4o','o''brien')"},
		{name: "unknown variable left alone", sql: "$other", want: "$other"},
		{name: "sub-second interval becomes a second", sql: "$__interval_ms", iv: time.Millisecond, want: "1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := queries.Expand(tt.sql, from, to, tt.iv, tt.vars); got != tt.want {
				t.Errorf("Expand(%q)\n got %q\nwant %q", tt.sql, got, tt.want)
			}
		})
	}
}

func TestFilter_AllOrSelection(t *testing.T) {
	f := queries.Filter("tenant_id", "tenant")
	all := queries.Expand(f, from, to, time.Minute, nil)
	if all != "('__all__' IN ('__all__') OR tenant_id IN ('__all__'))" {
		t.Errorf("All: %s", all)
	}
	some := queries.Expand(f, from, to, time.Minute, map[string][]string{"tenant": {"acme"}})
	if some != "('__all__' IN ('acme') OR tenant_id IN ('acme'))" {
		t.Errorf("acme: %s", some)
	}
}

func TestPanels_WellFormed(t *testing.T) {
	ids := map[string]bool{}
	for _, p := range queries.All() {
		if ids[p.ID] {
			t.Errorf("panel id %s twice", p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" || p.SQL == "" {
			t.Errorf("%s: no title or SQL", p.ID)
		}
		switch p.Kind {
		case queries.TimeSeries:
			if !strings.Contains(p.SQL, "$__timeGroupAlias(") {
				t.Errorf("%s: a time series without $__timeGroupAlias", p.ID)
			}
		case queries.Stat, queries.Table:
		default:
			t.Errorf("%s: kind %q", p.ID, p.Kind)
		}
		if !strings.Contains(p.SQL, "$__timeFilter(") {
			t.Errorf("%s: no $__timeFilter: it would scan every partition", p.ID)
		}
		if strings.Contains(p.SQL, "span_content") {
			t.Errorf("%s: reads content", p.ID)
		}
		expanded := queries.Expand(p.SQL, from, to, time.Minute, nil)
		if strings.Contains(expanded, "$") {
			t.Errorf("%s: Expand left a $ in\n%s", p.ID, expanded)
		}
	}
	// Every fact is read by a panel, and every panel that reads one names
	// it and keeps its query over the spans, which SQL runs in its stead.
	facts := map[string]bool{}
	for _, f := range queries.Facts() {
		if facts[f.ID] {
			t.Errorf("fact %s twice", f.ID)
		}
		facts[f.ID] = true
		// A Daily fact's read takes one scope of rows, and an AllTenants
		// fact's needs two (rolled).
		if f.Daily && f.AllTenants {
			t.Errorf("fact %s: Daily and AllTenants both", f.ID)
		}
	}
	read := map[string]bool{}
	for _, p := range queries.All() {
		switch {
		case p.Fact == "" && p.Raw == "":
		case !facts[p.Fact] || p.Raw == "" || !strings.Contains(p.SQL, p.Raw) || !strings.Contains(p.SQL, "loom.panel_hourly"):
			t.Errorf("%s: reads fact %q, but not as it says, or without its query over the spans", p.ID, p.Fact)
		default:
			read[p.Fact] = true
		}
	}
	for id := range facts {
		if !read[id] {
			t.Errorf("fact %s: no panel reads it", id)
		}
	}
	for _, d := range queries.Dashboards() {
		if len(queries.Of(d)) == 0 {
			t.Errorf("dashboard %s has no panels", d)
		}
		for _, v := range queries.Variables(d) {
			if strings.Contains(queries.Expand(v.SQL, from, to, time.Minute, nil), "$") {
				t.Errorf("variable %s of %s: Expand left a $", v.Name, d)
			}
		}
	}
}
