package console

import (
	"errors"
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

// dashPresets are the ranges a dashboard offers, back from now, each with
// a bucket that cuts it into 60 to 100 points up to 6 hours; beyond, whole
// hours (24 points a day), which the panels read from their hourly rollup
// (dashboards/queries RollupAfter).
var dashPresets = []struct {
	name, label  string
	span, bucket time.Duration
}{
	{"15m", "last 15 minutes", 15 * time.Minute, 15 * time.Second},
	{"1h", "last hour", time.Hour, time.Minute},
	{"6h", "last 6 hours", 6 * time.Hour, 5 * time.Minute},
	{"24h", "last 24 hours", 24 * time.Hour, time.Hour},
	{"7d", "last 7 days", 7 * 24 * time.Hour, 2 * time.Hour},
}

// defaultRange is the range of a dashboard URL without one.
const defaultRange = "1h"

// legacyRanges are the range values of the console's first URLs, still
// honoured so that bookmarks keep working.
var legacyRanges = map[string]string{"hour": "1h", "day": "24h"}

// customBuckets are the buckets a custom range may get: each divides a
// day, so buckets start at round UTC times as Postgres cuts them.
var customBuckets = []time.Duration{
	15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
	15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour,
	12 * time.Hour, 24 * time.Hour,
}

// Bounds of a custom range: its span, the points a chart gets (the smallest
// bucket that keeps within maxBuckets, and whole hours over
// queries.RollupAfter,
// as the panels' rollup has them), the length of a time parameter.
const (
	maxCustomSpan = 31 * 24 * time.Hour
	minCustomSpan = time.Minute
	maxBuckets    = 120
	maxTimeParam  = 64
	maxTenantLen  = 256
)

// dashRange is the window a dashboard shows: [From, To), cut into buckets
// of Bucket, both ends on bucket boundaries so that every bucket is whole
// on the chart.
type dashRange struct {
	Name     string // a preset's name, or "custom"
	Label    string // for the page's heading
	From, To time.Time
	Bucket   time.Duration
}

// parseDashRange reads range, or from and to, at now. A preset ends with
// the bucket now is in; a custom range (from and to: RFC 3339, or what a
// datetime-local input sends, taken as UTC) is widened to whole buckets.
// The errors are written for the person who typed the range.
func parseDashRange(q url.Values, now time.Time) (dashRange, error) {
	name := q.Get("range")
	if n, ok := legacyRanges[name]; ok {
		name = n
	}
	from, to := q.Get("from"), q.Get("to")
	if name == "" && (from != "" || to != "") {
		name = "custom"
	}
	if name == "" {
		name = defaultRange
	}
	for _, p := range dashPresets {
		if p.name == name {
			to := now.UTC().Truncate(p.bucket).Add(p.bucket)
			return dashRange{Name: name, Label: p.label, From: to.Add(-p.span), To: to, Bucket: p.bucket}, nil
		}
	}
	if name != "custom" {
		return dashRange{}, fmt.Errorf("There is no range %q: choose 15m, 1h, 6h, 24h, 7d or a custom range.", cut(name, 20))
	}
	if from == "" || to == "" {
		return dashRange{}, errors.New("A custom range needs both a start (from) and an end (to).")
	}
	f, err := parseDashTime("from", from)
	if err != nil {
		return dashRange{}, err
	}
	t, err := parseDashTime("to", to)
	if err != nil {
		return dashRange{}, err
	}
	span := t.Sub(f)
	switch {
	case span <= 0:
		return dashRange{}, errors.New("The custom range must start (from) before it ends (to).")
	case span < minCustomSpan:
		return dashRange{}, errors.New("A custom range spans at least a minute.")
	case span > maxCustomSpan:
		return dashRange{}, errors.New("A custom range spans at most 31 days.")
	}
	b := customBuckets[len(customBuckets)-1]
	for _, c := range customBuckets {
		if span/c <= maxBuckets && (span <= queries.RollupAfter || c >= time.Hour) {
			b = c
			break
		}
	}
	r := dashRange{Name: "custom", From: f.Truncate(b), To: t.Truncate(b), Bucket: b}
	if r.To.Before(t) {
		r.To = r.To.Add(b)
	}
	r.Label = f.Format("2006-01-02 15:04") + " to " + t.Format("2006-01-02 15:04")
	return r, nil
}

// parseDashTime reads one end of a custom range as the calls filter does
// (parseFilterTime), with an error that names it.
func parseDashTime(name, v string) (time.Time, error) {
	if len(v) <= maxTimeParam {
		if t, err := parseFilterTime(v); err == nil && !t.IsZero() {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("The %s of the range, %q, is not a date and time: write it as 2026-01-31T15:04 (UTC) or in RFC 3339.", name, cut(v, maxTimeParam))
}

// cut shortens an echoed parameter so that an error page stays small.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// dashRefreshes are the auto-refresh intervals, by their query value; the
// page reloads itself with a <meta http-equiv="refresh">, which the CSP
// allows and which needs no script.
var dashRefreshes = []struct {
	name    string
	seconds int
}{{"off", 0}, {"30s", 30}, {"1m", 60}, {"5m", 300}}

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
		// Grafana's Calls dashboard is a recent-calls table: the console's
		// calls list is that, filtered and paged, so the nav names one.
		if visible(*s, d) && d != queries.Calls {
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
	Name, Title string
	Range       dashRange
	Tenant      string // the admin's tenant selection; "" is all
	// Ranges and Refreshes are the links that change one and keep the rest.
	Ranges, Refreshes []choice
	Refresh           string // the refresh parameter; "" is off
	RefreshSeconds    int
	// CustomFrom and CustomTo fill the custom range form (datetime-local).
	CustomFrom, CustomTo string
	// Error says why the range could not be shown; there are no panels then.
	Error  string
	Panels []panelView
}

// choice is one of a set of links, On when it is the page's.
type choice struct {
	Label, Value, URL string
	On                bool
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
	Columns   []column
	Rows      [][]cell
	Total     int // rows the query returned, Rows holds at most maxTableRows
	Truncated bool
}

// column is a table's column: its SQL name, which cells carry as
// data-col, and its label for people.
type column struct{ Name, Label string }

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
	d := dashboardData{Name: name, Title: shortTitle(name)}
	if s.admin {
		d.Tenant = q.Get("tenant")
	}
	for _, rf := range dashRefreshes {
		if rf.name == q.Get("refresh") && rf.seconds > 0 {
			d.Refresh, d.RefreshSeconds = rf.name, rf.seconds
		}
	}
	now := time.Now()
	rg, err := parseDashRange(q, now)
	if len(d.Tenant) > maxTenantLen {
		d.Tenant, err = "", fmt.Errorf("A tenant id is at most %d bytes long.", maxTenantLen)
	}
	status := http.StatusOK
	if err != nil {
		// The page still offers every range and the forms, to put it right;
		// it does not reload an error.
		status, d.Error, d.RefreshSeconds = http.StatusBadRequest, err.Error(), 0
		rg, _ = parseDashRange(url.Values{}, now)
		rg.Name, rg.Label = "", ""
	}
	d.Range = rg
	// The custom form starts from the range on show, so that "a bit
	// earlier" is one edit away.
	d.CustomFrom, d.CustomTo = rg.From.Format("2006-01-02T15:04"), rg.To.Format("2006-01-02T15:04")
	link := func(set url.Values) string {
		v := url.Values{}
		if d.Tenant != "" {
			v.Set("tenant", d.Tenant)
		}
		if d.Refresh != "" {
			v.Set("refresh", d.Refresh)
		}
		if rg.Name == "custom" {
			v.Set("range", "custom")
			v.Set("from", rg.From.Format("2006-01-02T15:04:05"))
			v.Set("to", rg.To.Format("2006-01-02T15:04:05"))
		} else if rg.Name != "" {
			v.Set("range", rg.Name)
		}
		for k, x := range set {
			v[k] = x
		}
		if v.Get("range") != "custom" {
			v.Del("from")
			v.Del("to")
		}
		if v.Get("refresh") == "off" {
			v.Del("refresh")
		}
		return dashboardURL(name) + "?" + v.Encode()
	}
	for _, p := range dashPresets {
		d.Ranges = append(d.Ranges, choice{Label: p.name, Value: p.name, URL: link(url.Values{"range": {p.name}}), On: p.name == rg.Name})
	}
	for _, rf := range dashRefreshes {
		d.Refreshes = append(d.Refreshes, choice{Label: rf.name, Value: rf.name, URL: link(url.Values{"refresh": {rf.name}}),
			On: rf.seconds == d.RefreshSeconds && (d.Error == "" || rf.seconds == 0)})
	}
	if d.Error != "" {
		h.render(w, status, "dashboard", page{Title: d.Title, Session: &s, Data: d})
		return
	}
	// Row-level security confines a tenant to its rows whatever the
	// variables say. A tenant's session still names its tenant in them:
	// then the planner knows which tenant the rows are (row-level
	// security's condition it cannot estimate) and reads a small tenant's
	// range by the tenant index instead of the range whole (the overview
	// over 7 days for a tenant with 3% of a million spans: 5.0 s without).
	var vars map[string][]string
	switch {
	case !s.admin:
		vars = map[string][]string{"tenant": {s.tenant}}
	case s.admin && d.Tenant != "":
		vars = map[string][]string{"tenant": {d.Tenant}}
	}
	err = h.read(r.Context(), s, func(tx pgx.Tx) error {
		for _, p := range queries.Of(name) {
			pv, err := runPanel(r, tx, p, rg, vars)
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
	h.render(w, status, "dashboard", page{Title: d.Title, Session: &s, Data: d})
}

// runPanel runs one panel's expanded SQL and lays its rows out by Kind.
func runPanel(r *http.Request, tx pgx.Tx, p queries.Panel, rg dashRange, vars map[string][]string) (panelView, error) {
	rows, err := tx.Query(r.Context(), queries.Expand(p.SQL, rg.From, rg.To, rg.Bucket, vars))
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
			pv.Tiles = append(pv.Tiles, tile{Label: columnLabel(c), Value: v})
		}
	case queries.TimeSeries:
		pv.Chart = newChart(cols, data, rg.From, rg.To, rg.Bucket, p.Unit, p.Title)
	default:
		pv.Table = newTable(cols, data, p.Unit)
	}
	return pv, nil
}

func newTable(cols []string, data [][]any, unit string) *table {
	t := &table{Total: len(data)}
	for _, c := range cols {
		t.Columns = append(t.Columns, column{Name: c, Label: columnLabel(c)})
	}
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

// number reads a numeric value: a column (Postgres sums and divisions come
// as numeric, counts as int8, percentiles as float8) or an attribute.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int16:
		return float64(x), true
	case int:
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
