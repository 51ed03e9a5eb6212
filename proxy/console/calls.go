package console

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// callRow is one line of the calls table (and of its CSV).
type callRow struct {
	TraceID, Tenant, KeyID, Model, Provider, Status, ErrorType string
	Start                                                      time.Time
	Stream, Error, ClientClosed                                bool
	HTTPStatus                                                 int
	TokensIn, TokensOut                                        *int64
	Duration, TTFC, Overhead                                   *float64
	// Cost is loom.cost as stored (numeric, exact, as text) with its
	// currency; nil when the call had no price.
	Cost, Currency *string
	// Href opens the call, keeping the list's filter for its previous/next
	// and back links. Built here: a query string put together in the
	// template would be escaped a second time.
	Href string
}

// StatusClass colours the status cell: a client that hung up is neither
// Loom's nor the upstream's failure, so it is told apart from 4xx and 5xx;
// "err" is a failure under a 2xx head (a stream that broke after it began).
func (c callRow) StatusClass() string {
	switch {
	case c.ClientClosed:
		return "closed"
	case c.HTTPStatus >= 500:
		return "s5xx"
	case c.HTTPStatus >= 400:
		return "s4xx"
	case c.Error:
		return "err"
	}
	return "ok"
}

// StatusText is the status cell's words.
func (c callRow) StatusText() string {
	switch {
	case c.ClientClosed:
		return "client closed"
	case c.HTTPStatus == 0:
		return "–"
	}
	return strconv.Itoa(c.HTTPStatus) + " " + http.StatusText(c.HTTPStatus)
}

// callsPageSize is the default number of calls a page shows; ?n= asks for
// another, up to maxCallsPageSize.
const (
	callsPageSize    = 50
	maxCallsPageSize = 500
)

// The CSV export reads the list in batches of csvBatch calls, each in its
// own short transaction, and writes each batch before reading the next: it
// never holds the whole export in memory, nor a connection while a slow
// client reads. It stops after maxCSVRows calls and says so in a last line.
const (
	csvBatch   = 2000
	maxCSVRows = 100000
)

// cursor is where a page of calls ends: the (start_time, trace_id) of its
// last (or first) row, in the order the list is sorted. A trace has one
// SERVER span, so the pair names one call.
type cursor struct {
	start time.Time
	trace string
}

// errBadCursor is a paging link that was not made by the console (or was
// cut short): answered 400 rather than guessed at.
var errBadCursor = errors.New("this page link is not valid: open the calls list again from its first page")

// String is the cursor as a URL parameter: opaque to people, so nobody
// hand-edits one; microseconds, Postgres's own precision, so the row
// comparison is exact.
func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.start.UnixMicro(), 10) + "." + c.trace))
}

func parseCursor(v string) (cursor, error) {
	if len(v) > 128 {
		return cursor{}, errBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return cursor{}, errBadCursor
	}
	us, trace, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || !traceIDRe.MatchString(trace) {
		return cursor{}, errBadCursor
	}
	// Postgres keeps timestamps between 4713 BC and 294276 AD; the console
	// only ever made cursors well inside that.
	const maxMicro = 253402300799999999 // 9999-12-31T23:59:59.999999Z
	if n < -maxMicro || n > maxMicro {
		return cursor{}, errBadCursor
	}
	return cursor{start: time.UnixMicro(n).UTC(), trace: trace}, nil
}

// callsPage asks for up to n calls matching f, newest first; after those
// strictly older than after, or (before set) the n strictly newer than
// before, nearest first, which the caller reverses. The keyset is a row
// comparison on the sort key, so a call arriving while somebody pages
// (always newer than every cursor made before it) shifts no page: no call
// shows twice and none is skipped.
func callsPage(f callFilter, now time.Time, after, before *cursor, n int) (string, []any) {
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	sql := callsSelect + f.where(now, arg)
	order := " ORDER BY s.start_time DESC, s.trace_id DESC"
	// The plain start_time bound repeats the row comparison's so that an
	// index on start_time alone (a tenant's (tenant_id, start_time) under
	// row-level security) starts at the cursor too.
	switch {
	case after != nil:
		t := arg(after.start)
		sql += " AND s.start_time <= " + t + " AND (s.start_time, s.trace_id) < (" + t + "::timestamptz, " + arg(after.trace) + "::text)"
	case before != nil:
		t := arg(before.start)
		sql += " AND s.start_time >= " + t + " AND (s.start_time, s.trace_id) > (" + t + "::timestamptz, " + arg(before.trace) + "::text)"
		order = " ORDER BY s.start_time, s.trace_id"
	}
	return sql + order + " LIMIT " + arg(n), args
}

// readCalls runs a callsPage query as s.
func (h *handler) readCalls(ctx context.Context, s session, sql string, args []any) ([]callRow, error) {
	var out []callRow
	err := h.read(ctx, s, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c callRow
			if err := rows.Scan(&c.TraceID, &c.Start, &c.Tenant, &c.KeyID, &c.Model, &c.Provider, &c.Stream, &c.Status,
				&c.HTTPStatus, &c.Error, &c.ClientClosed, &c.ErrorType, &c.TokensIn, &c.TokensOut, &c.Duration, &c.TTFC,
				&c.Overhead, &c.Cost, &c.Currency); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read calls: %w", err)
	}
	return out, nil
}

type callsData struct {
	Rows   []callRow
	Filter callFilter
	// Ranges are the named time ranges, in order, for the range select.
	Ranges []string
	// Statuses are the status filter's choices.
	Statuses []option
	// Providers are the provider names Loom records, offered as
	// suggestions (the filter takes any).
	Providers []string
	// PageSize is ?n= when the URL set it, kept in the paging links.
	PageSize int
	// Newest (the first page), Newer and Older are the paging links, empty
	// where there is nothing to go to; CSV exports the filtered list.
	Newest, Newer, Older, CSV string
}

type option struct{ Value, Label string }

var callStatuses = []option{{"ok", "ok"}, {"error", "any error"}, {"4xx", "4xx (refused)"},
	{"5xx", "5xx (failed)"}, {"client_closed", "client closed"}}

// FromValue and ToValue are the custom range as an <input
// type="datetime-local"> shows it (UTC, the console's zone).
func (d callsData) FromValue() string { return localValue(d.Filter.From) }
func (d callsData) ToValue() string   { return localValue(d.Filter.To) }

func localValue(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05")
}

// callProviders are gen_ai.provider.name as Loom's upstreams set it.
var callProviders = []string{"openai", "azure.ai.openai", "anthropic"}

// pageParams reads the list's own parameters: the page size and at most one
// cursor.
func pageParams(q url.Values) (n int, after, before *cursor, err error) {
	n = callsPageSize
	if v := q.Get("n"); v != "" {
		n, err = strconv.Atoi(v)
		if err != nil || n < 1 || n > maxCallsPageSize {
			return 0, nil, nil, fmt.Errorf("n (calls per page) must be a number from 1 to %d", maxCallsPageSize)
		}
	}
	for name, dst := range map[string]**cursor{"after": &after, "before": &before} {
		if v := q.Get(name); v != "" {
			c, err := parseCursor(v)
			if err != nil {
				return 0, nil, nil, err
			}
			*dst = &c
		}
	}
	if after != nil && before != nil {
		return 0, nil, nil, errBadCursor
	}
	return n, after, before, nil
}

func (h *handler) calls(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	f, err := parseCallFilter(q, s)
	if err != nil {
		h.fail(w, &s, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errBadFilter.Error()+": "))
		return
	}
	n, after, before, err := pageParams(q)
	if err != nil {
		h.fail(w, &s, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.bindSince(r.Context(), s, &f); err != nil {
		h.log.Error("console: calls", "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The calls could not be read.")
		return
	}
	// One more than a page tells whether there is a next one.
	sql, args := callsPage(f, time.Now(), after, before, n+1)
	rows, err := h.readCalls(r.Context(), s, sql, args)
	if err != nil {
		h.log.Error("console: calls", "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The calls could not be read.")
		return
	}
	more := len(rows) > n
	rows = rows[:min(len(rows), n)]
	if before != nil {
		slices.Reverse(rows)
	}
	d := callsData{Rows: rows, Filter: f, Providers: callProviders, Statuses: callStatuses, Ranges: []string{"15m", "1h", "6h", "24h", "7d"}}
	base := f.values()
	if q.Has("n") {
		d.PageSize = n
		base.Set("n", strconv.Itoa(n))
	}
	link := func(name string, c *cursor) string {
		v := url.Values{}
		for k, x := range base {
			v[k] = x
		}
		if c != nil {
			v.Set(name, c.String())
		}
		if len(v) == 0 {
			return "/console/calls"
		}
		return "/console/calls?" + v.Encode()
	}
	// The CSV and each call keep the filter (not the page).
	suffix := ""
	if fv := f.values(); len(fv) > 0 {
		suffix = "?" + fv.Encode()
	}
	d.CSV = "/console/calls.csv" + suffix
	for i := range d.Rows {
		d.Rows[i].Href = "/console/calls/" + d.Rows[i].TraceID + suffix
	}
	if len(rows) > 0 {
		first, last := rows[0], rows[len(rows)-1]
		// Older: there is more past the last row, or this page came from
		// a Newer link (so the page it came from lies past it).
		if (before == nil && more) || before != nil {
			d.Older = link("after", &cursor{last.Start, last.TraceID})
		}
		// Newer: this page began past a cursor, or more newer rows remain.
		if after != nil || (before != nil && more) {
			d.Newer = link("before", &cursor{first.Start, first.TraceID})
		}
	}
	if after != nil || before != nil {
		d.Newest = link("", nil)
	}
	h.render(w, http.StatusOK, "calls", page{Title: "Calls", Session: &s, Data: d})
}

// callsCSV exports the filtered list, newest first, as CSV: the same
// filter and the same rows as the pages, read batch by batch along the same
// keyset (so calls arriving during the export are not in it, and none is
// written twice).
func (h *handler) callsCSV(w http.ResponseWriter, r *http.Request, s session) {
	f, err := parseCallFilter(r.URL.Query(), s)
	if err != nil {
		h.fail(w, &s, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errBadFilter.Error()+": "))
		return
	}
	// A named range ("the last hour") is pinned at the first batch: the
	// export is one consistent slice of time.
	now := time.Now()
	ctx := r.Context()
	if err := h.bindSince(ctx, s, &f); err != nil {
		h.log.Error("console: calls csv", "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The calls could not be read.")
		return
	}
	sql, args := callsPage(f, now, nil, nil, min(csvBatch, maxCSVRows+1))
	rows, err := h.readCalls(ctx, s, sql, args)
	if err != nil {
		h.log.Error("console: calls csv", "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The calls could not be read.")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/csv; charset=utf-8")
	hd.Set("Content-Disposition", `attachment; filename="loom-calls-`+now.UTC().Format("20060102-150405")+`.csv"`)
	// A csv.Writer's errors are sticky: each batch's Flush and Error say
	// whether the client is still there.
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	written := 0
	for len(rows) > 0 {
		for _, c := range rows {
			if written == maxCSVRows {
				_ = cw.Write([]string{fmt.Sprintf("# stopped at %d calls, the export's limit: narrow the filter or the time range for the rest", maxCSVRows)})
				cw.Flush()
				return
			}
			_ = cw.Write(csvRecord(c))
			written++
		}
		cw.Flush()
		if cw.Error() != nil || len(rows) < csvBatch {
			return // the client went away, or that was the last batch
		}
		last := rows[len(rows)-1]
		sql, args = callsPage(f, now, &cursor{last.Start, last.TraceID}, nil, csvBatch)
		if rows, err = h.readCalls(ctx, s, sql, args); err != nil {
			// The head is sent: all that is left is to say so in the file.
			h.log.Error("console: calls csv", "error", err, "written", written)
			_ = cw.Write([]string{fmt.Sprintf("# incomplete: the export failed after %d calls", written)})
			cw.Flush()
			return
		}
	}
}

// csvHeader names the CSV's columns, units included; numbers in the rows
// are plain (no separators, full precision) for spreadsheets to read.
var csvHeader = []string{"Time (UTC)", "Trace ID", "Tenant", "Key", "Model", "Provider", "Stream", "HTTP status",
	"Outcome", "Error type", "Input tokens", "Output tokens", "Cost", "Currency", "Duration (ms)", "TTFC (ms)",
	"Overhead (ms)"}

func csvRecord(c callRow) []string {
	outcome := "ok"
	switch {
	case c.ClientClosed:
		outcome = "client closed"
	case c.Error:
		outcome = "error"
	}
	i := func(v *int64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatInt(*v, 10)
	}
	fl := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	str := func(v *string) string {
		if v == nil {
			return ""
		}
		return *v
	}
	return []string{c.Start.UTC().Format("2006-01-02T15:04:05.000000Z"), c.TraceID, csvText(c.Tenant),
		csvText(c.KeyID), csvText(c.Model), csvText(c.Provider), strconv.FormatBool(c.Stream),
		strconv.Itoa(c.HTTPStatus), outcome, csvText(c.ErrorType), i(c.TokensIn), i(c.TokensOut), str(c.Cost),
		csvText(str(c.Currency)), fl(c.Duration), fl(c.TTFC), fl(c.Overhead)}
}

// csvText neutralises a cell a spreadsheet would run as a formula: model
// names, key ids and error types come from clients and upstreams, and
// "=HYPERLINK(...)" must open as text. The leading quote is the OWASP
// advice; tab and carriage return start formulas in some programs too.
func csvText(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// Cells of the HTML table, formatted for people (the CSV keeps the plain
// numbers); "–" where the call has no such value.

// InText and OutText are the token counts with thousands separators.
func (c callRow) InText() string  { return countText(c.TokensIn) }
func (c callRow) OutText() string { return countText(c.TokensOut) }

// DurationText, TTFCText and OverheadText are milliseconds.
func (c callRow) DurationText() string { return msText(c.Duration) }
func (c callRow) TTFCText() string     { return msText(c.TTFC) }
func (c callRow) OverheadText() string { return msText(c.Overhead) }

// CostText is the stored cost and its currency, exact as stored.
func (c callRow) CostText() string {
	switch {
	case c.Cost == nil:
		return "–"
	case c.Currency == nil:
		return *c.Cost
	}
	return *c.Cost + " " + *c.Currency
}

func countText(v *int64) string {
	if v == nil {
		return "–"
	}
	return groupDigits(strconv.FormatInt(*v, 10))
}

// msText shows as many decimals as a person can use: a gateway overhead of
// 0.16 ms needs two, a 2,100 ms call none.
func msText(v *float64) string {
	if v == nil {
		return "–"
	}
	switch x := *v; {
	case x < 1:
		return strconv.FormatFloat(x, 'f', 2, 64)
	case x < 100:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return groupDigits(strconv.FormatFloat(x, 'f', 0, 64))
	}
}
