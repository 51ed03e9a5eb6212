package console

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loom-gateway/loom/dashboards/queries"
)

// The dashboard pages render the panels of dashboards/queries, the SQL that
// Grafana's dashboards run too, so the console and Grafana show the same
// numbers. A page knows panels only by their Kind and Unit and their columns
// by the names the SQL gives them: a panel added there shows up here.

// ranges the dashboards offer, by their query value.
var ranges = map[string]struct {
	span, bucket time.Duration
	label        string
}{
	"hour": {time.Hour, time.Minute, "last hour"},
	"day":  {24 * time.Hour, 30 * time.Minute, "last day"},
}

// maxTableRows caps a table panel's rows on the page.
const maxTableRows = 50

// navItem is one dashboard in the header's nav.
type navItem struct{ Name, Title, URL string }

// visible reports whether s may open dashboard d: the tenant reader role
// cannot read loom.dead_letters, so Pipeline health is the admin's alone.
func visible(s session, d string) bool { return s.admin || d != queries.Pipeline }

// dashboardNav lists the dashboards s may open.
func dashboardNav(s *session) []navItem {
	if s == nil {
		return nil
	}
	var out []navItem
	for _, d := range queries.Dashboards() {
		if visible(*s, d) {
			out = append(out, navItem{Name: d, Title: shortTitle(d), URL: dashboardURL(d)})
		}
	}
	return out
}

func shortTitle(d string) string { return strings.TrimPrefix(queries.Title(d), "Loom / ") }

func dashboardURL(d string) string {
	if d == queries.Overview {
		return "/console/"
	}
	return "/console/d/" + d
}

type dashboardData struct {
	Name, Title       string
	Range, RangeLabel string
	Tenant            string // the admin's tenant selection; "" is all
	HourURL, DayURL   string
	Panels            []panelView
}

// panelView is one panel laid out for the template: Tiles for a stat,
// Chart for a time series, Table for a table.
type panelView struct {
	ID, Title, Kind string
	Tiles           []tile
	Chart           *chart
	Table           *table
}

type tile struct{ Label, Value string }

type table struct {
	Columns   []string
	Rows      [][]cell
	Total     int // rows the query returned, Rows holds at most maxTableRows
	Truncated bool
}

type cell struct {
	Col, Value, Link string
	Num              bool
}

func (h *handler) overview(w http.ResponseWriter, r *http.Request, s session) {
	h.dashboard(w, r, s, queries.Overview)
}

func (h *handler) dashboardPage(w http.ResponseWriter, r *http.Request, s session) {
	h.dashboard(w, r, s, r.PathValue("dashboard"))
}

func (h *handler) dashboard(w http.ResponseWriter, r *http.Request, s session, name string) {
	if !slices.Contains(queries.Dashboards(), name) || !visible(s, name) {
		h.fail(w, &s, http.StatusNotFound, "No such dashboard.")
		return
	}
	q := r.URL.Query()
	rng := q.Get("range")
	if _, ok := ranges[rng]; !ok {
		rng = "hour"
	}
	rg := ranges[rng]
	to := time.Now().UTC().Truncate(rg.bucket).Add(rg.bucket)
	from := to.Add(-rg.span)
	d := dashboardData{Name: name, Title: shortTitle(name), Range: rng, RangeLabel: rg.label}
	// Row-level security confines a tenant to its rows whatever the
	// variables say; the Tenant dashboard names it because Grafana's does.
	var vars map[string][]string
	switch {
	case !s.admin && name == queries.Tenant:
		vars = map[string][]string{"tenant": {s.tenant}}
	case s.admin && q.Get("tenant") != "":
		d.Tenant = q.Get("tenant")
		vars = map[string][]string{"tenant": {d.Tenant}}
	}
	link := func(rng string) string {
		v := url.Values{"range": {rng}}
		if d.Tenant != "" {
			v.Set("tenant", d.Tenant)
		}
		return dashboardURL(name) + "?" + v.Encode()
	}
	d.HourURL, d.DayURL = link("hour"), link("day")
	err := h.read(r.Context(), s, func(tx pgx.Tx) error {
		for _, p := range queries.Of(name) {
			pv, err := runPanel(r, tx, p, from, to, rg.bucket, vars)
			if err != nil {
				return fmt.Errorf("panel %s: %w", p.ID, err)
			}
			d.Panels = append(d.Panels, pv)
		}
		return nil
	})
	if err != nil {
		h.log.Error("console: dashboard", "dashboard", name, "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The spans could not be read.")
		return
	}
	h.render(w, http.StatusOK, "dashboard", page{Title: d.Title, Session: &s, Data: d})
}

// runPanel runs one panel's expanded SQL and lays its rows out by Kind.
func runPanel(r *http.Request, tx pgx.Tx, p queries.Panel, from, to time.Time, iv time.Duration,
	vars map[string][]string) (panelView, error) {
	rows, err := tx.Query(r.Context(), queries.Expand(p.SQL, from, to, iv, vars))
	if err != nil {
		return panelView{}, err
	}
	defer rows.Close()
	var cols []string
	for _, f := range rows.FieldDescriptions() {
		cols = append(cols, f.Name)
	}
	var data [][]any
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return panelView{}, err
		}
		data = append(data, vals)
	}
	if err := rows.Err(); err != nil {
		return panelView{}, err
	}
	pv := panelView{ID: p.ID, Title: p.Title, Kind: p.Kind}
	switch p.Kind {
	case queries.Stat:
		for i, c := range cols {
			v := "–"
			if len(data) > 0 {
				v = formatValue(data[0][i], p.Unit)
			}
			pv.Tiles = append(pv.Tiles, tile{Label: c, Value: v})
		}
	case queries.TimeSeries:
		pv.Chart = newChart(cols, data, from, to, iv, p.Unit)
	default:
		pv.Table = newTable(cols, data, p.Unit)
	}
	return pv, nil
}

func newTable(cols []string, data [][]any, unit string) *table {
	t := &table{Columns: cols, Total: len(data)}
	if len(data) > maxTableRows {
		data, t.Truncated = data[:maxTableRows], true
	}
	for _, vals := range data {
		row := make([]cell, len(vals))
		for i, v := range vals {
			_, num := number(v)
			row[i] = cell{Col: cols[i], Value: formatValue(v, unit), Num: num}
			if id, ok := v.(string); ok && cols[i] == "trace_id" && traceIDRe.MatchString(id) {
				row[i].Link = "/console/calls/" + id
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// chart is a small SVG bar chart of a time series panel, laid out here so
// the template only writes numbers into attributes. Each series (a numeric
// column, or a value of a "metric" column, as Grafana reads long tables) has
// a bar per bucket, side by side within the bucket.
type chart struct {
	Max    string
	Series []seriesView
}

type seriesView struct {
	Name  string
	Class string // s0, s1, ...: its colour
	Bars  []bar
}

type bar struct {
	X, Y, W, H float64
	Tip        string
}

const chartW, chartH = 300.0, 80.0

// point is one value of a series at a bucket.
type point struct {
	at time.Time
	v  float64
}

func newChart(cols []string, data [][]any, from, to time.Time, iv time.Duration, unit string) *chart {
	metric := slices.Index(cols, "metric")
	var names []string
	points := map[string][]point{}
	for _, vals := range data {
		at, ok := vals[0].(time.Time)
		if !ok {
			continue
		}
		for i := 1; i < len(cols); i++ {
			if i == metric {
				continue
			}
			v, ok := number(vals[i])
			if !ok {
				continue
			}
			name := cols[i]
			if metric > 0 {
				name = fmt.Sprint(vals[metric])
				if len(cols) > 3 {
					name += " " + cols[i]
				}
			}
			if _, seen := points[name]; !seen {
				names = append(names, name)
			}
			points[name] = append(points[name], point{at: at, v: v})
		}
	}
	top := 0.0
	for _, ps := range points {
		for _, p := range ps {
			top = max(top, p.v)
		}
	}
	c := &chart{Max: formatFloat(top, unit)}
	span := float64(to.Sub(from))
	bucketW := chartW * float64(iv) / span
	for k, name := range names {
		sv := seriesView{Name: name, Class: "s" + strconv.Itoa(k%6)}
		w := bucketW / float64(len(names))
		for _, p := range points[name] {
			if p.v <= 0 || top == 0 || p.at.Before(from) || !p.at.Before(to) {
				continue
			}
			x := float64(p.at.Sub(from))/span*chartW + float64(k)*w
			bh := p.v / top * chartH
			sv.Bars = append(sv.Bars, bar{X: round1(x), Y: round1(chartH - bh), W: round1(max(w-0.3, 0.5)), H: round1(bh),
				Tip: name + " " + p.at.UTC().Format("2006-01-02 15:04") + ": " + formatFloat(p.v, unit)})
		}
		c.Series = append(c.Series, sv)
	}
	return c
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// number reads a numeric column value: Postgres sums and divisions come as
// numeric, counts as int8, percentiles as float8.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int16:
		return float64(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case pgtype.Numeric:
		f, err := x.Float64Value()
		if err != nil || !f.Valid {
			return 0, false
		}
		return f.Float64, true
	}
	return 0, false
}

// formatValue writes a column value for people, numbers in the panel's
// Grafana unit.
func formatValue(v any, unit string) string {
	if v == nil {
		return "–"
	}
	if f, ok := number(v); ok {
		return formatFloat(f, unit)
	}
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	return format(v)
}

func formatFloat(v float64, unit string) string {
	switch unit {
	case "ms":
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	case "percentunit":
		return strconv.FormatFloat(100*v, 'f', 1, 64) + " %"
	case "reqps":
		return plain(v) + " req/s"
	default:
		return plain(v)
	}
}

// plain writes whole numbers exactly (token counts must read as stored),
// others to three significant digits, or one decimal from 100 up.
func plain(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
