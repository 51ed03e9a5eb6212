package console

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/internal/json"
)

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
