package console

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/internal/json"
)

var funcs = template.FuncMap{
	"ms": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return strconv.FormatFloat(*v, 'f', 1, 64) + " ms"
	},
	// cost is a stored cost and its currency ("0.0075 USD"); "–" for a
	// call with no price.
	"cost": func(v, currency *string) string {
		if v == nil {
			return "–"
		}
		if currency == nil {
			return *v
		}
		return *v + " " + *currency
	},
	"num": func(v *int64) string {
		if v == nil {
			return "–"
		}
		return strconv.FormatInt(*v, 10)
	},
	"time":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
	"dashboards": dashboardNav,
}

// callRow is one line of the calls table.
type callRow struct {
	TraceID, Tenant, KeyID, Model, Status string
	Start                                 time.Time
	Stream, Error                         bool
	HTTPStatus                            int
	TokensIn, TokensOut                   *int64
	Duration, TTFC                        *float64
	// Cost is loom.cost as stored (numeric, exact, as text) with its
	// currency; nil when the call had no price.
	Cost, Currency *string
}

type callsData struct {
	Rows                          []callRow
	Model, Status, Stream, Tenant string
	Page                          int
	PrevURL, NextURL              string
}

const pageSize = 50

func (h *handler) calls(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	d := callsData{Model: q.Get("model"), Status: q.Get("status"), Stream: q.Get("stream")}
	if s.admin {
		d.Tenant = q.Get("tenant")
	}
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = max(d.Page, 0)
	sql := callsSelect
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if d.Model != "" {
		sql += " AND coalesce(s.request_model, c.request_model) = " + arg(d.Model)
	}
	switch d.Status {
	case "ok":
		sql += " AND NOT " + isError
	case "error":
		sql += " AND " + isError
	default:
		d.Status = ""
	}
	switch d.Stream {
	case "true", "false":
		sql += " AND coalesce(s.stream, c.stream, false) = " + arg(d.Stream == "true")
	default:
		d.Stream = ""
	}
	if d.Tenant != "" { // admin only: a tenant's rows are already its own
		sql += " AND s.tenant_id = " + arg(d.Tenant)
	}
	sql += " ORDER BY s.start_time DESC, s.trace_id LIMIT " + arg(pageSize+1) + " OFFSET " + arg(d.Page*pageSize)
	err := h.read(r.Context(), s, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.Context(), sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c callRow
			if err := rows.Scan(&c.TraceID, &c.Start, &c.Tenant, &c.KeyID, &c.Model, &c.Stream, &c.Status,
				&c.HTTPStatus, &c.Error, &c.TokensIn, &c.TokensOut, &c.Duration, &c.TTFC, &c.Cost, &c.Currency); err != nil {
				return err
			}
			d.Rows = append(d.Rows, c)
		}
		return rows.Err()
	})
	if err != nil {
		h.log.Error("console: calls", "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The calls could not be read.")
		return
	}
	link := func(p int) string {
		v := url.Values{}
		for k, x := range map[string]string{"model": d.Model, "status": d.Status, "stream": d.Stream, "tenant": d.Tenant} {
			if x != "" {
				v.Set(k, x)
			}
		}
		if p > 0 {
			v.Set("page", strconv.Itoa(p))
		}
		return "/console/calls?" + v.Encode()
	}
	if len(d.Rows) > pageSize {
		d.Rows = d.Rows[:pageSize]
		d.NextURL = link(d.Page + 1)
	}
	if d.Page > 0 {
		d.PrevURL = link(d.Page - 1)
	}
	h.render(w, http.StatusOK, "calls", page{Title: "Calls", Session: &s, Data: d})
}

var traceIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// spanView is one span: its timeline bar and every non-null column.
type spanView struct {
	SpanID, Name, Kind, Status string
	Start                      time.Time
	DurationMs                 string
	Bar                        bar
	Fields                     []field
}

type field struct{ Name, Value string }

type contentView struct{ SpanID, Input, Output string }

type callData struct {
	TraceID string
	Spans   []spanView
	Content []contentView
	Height  float64
}

const timelineW = 800.0

func (h *handler) call(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("trace")
	if !traceIDRe.MatchString(id) {
		h.fail(w, &s, http.StatusNotFound, "No such call.")
		return
	}
	d := callData{TraceID: id}
	type times struct{ start, end time.Time }
	var ts []times
	err := h.read(r.Context(), s, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.Context(), spansSQL, id)
		if err != nil {
			return err
		}
		cols := rows.FieldDescriptions()
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				rows.Close()
				return err
			}
			var sv spanView
			var t times
			for i, c := range cols {
				v := vals[i]
				switch c.Name {
				case "span_id":
					sv.SpanID, _ = v.(string)
				case "name":
					sv.Name, _ = v.(string)
				case "kind":
					sv.Kind, _ = v.(string)
				case "status_code":
					sv.Status, _ = v.(string)
				case "start_time":
					t.start, _ = v.(time.Time)
				case "end_time":
					t.end, _ = v.(time.Time)
				case "ingested_at":
					continue
				}
				if v == nil {
					continue
				}
				sv.Fields = append(sv.Fields, field{Name: c.Name, Value: format(v)})
				if c.Name == "attributes" || c.Name == "resource" {
					sv.Fields = sv.Fields[:len(sv.Fields)-1]
					sv.Fields = append(sv.Fields, flatten(c.Name, v)...)
				}
			}
			if t.end.IsZero() {
				t.end = t.start
			}
			sv.Start = t.start
			sv.DurationMs = strconv.FormatFloat(float64(t.end.Sub(t.start).Microseconds())/1000, 'f', 1, 64)
			d.Spans = append(d.Spans, sv)
			ts = append(ts, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(d.Spans) == 0 {
			return errNotFound
		}
		crows, err := tx.Query(r.Context(), contentSQL, id)
		if err != nil {
			return err
		}
		defer crows.Close()
		for crows.Next() {
			var c contentView
			if err := crows.Scan(&c.SpanID, &c.Input, &c.Output); err != nil {
				return err
			}
			d.Content = append(d.Content, c)
		}
		return crows.Err()
	})
	if errors.Is(err, errNotFound) {
		h.fail(w, &s, http.StatusNotFound, "No such call.")
		return
	}
	if err != nil {
		h.log.Error("console: call", "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The call could not be read.")
		return
	}
	first, last := ts[0].start, ts[0].end
	for _, t := range ts {
		if t.start.Before(first) {
			first = t.start
		}
		if t.end.After(last) {
			last = t.end
		}
	}
	total := float64(last.Sub(first))
	for i, t := range ts {
		x, wd := 0.0, timelineW
		if total > 0 {
			x = float64(t.start.Sub(first)) / total * timelineW
			wd = float64(t.end.Sub(t.start)) / total * timelineW
		}
		d.Spans[i].Bar = bar{X: round1(x), Y: float64(i*24 + 4), W: round1(max(wd, 2)), H: 16}
	}
	d.Height = float64(len(ts)*24 + 8)
	h.render(w, http.StatusOK, "call", page{Title: "Call " + id, Session: &s, Data: d})
}

// format writes a column value for people.
func format(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case string:
		return x
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

// flatten lists a jsonb object's keys as prefix.key fields.
func flatten(prefix string, v any) []field {
	m, ok := v.(map[string]any)
	if !ok {
		return []field{{Name: prefix, Value: format(v)}}
	}
	var out []field
	for k, x := range m {
		out = append(out, field{Name: prefix + "." + k, Value: format(x)})
	}
	slices.SortFunc(out, func(a, b field) int { return strings.Compare(a.Name, b.Name) })
	return out
}
