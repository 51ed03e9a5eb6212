package console

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// callFilter is what a calls view is narrowed to. The calls list, its CSV
// and a call page's previous/next links read it from the same query
// parameters, so a call opened from a filtered list steps through that list
// and leads back to it.
type callFilter struct {
	// Tenant is the admin's choice; a tenant session never sets it (row-level
	// security confines it, whatever the URL says).
	Tenant, Key, Model, Provider, ErrorType string
	// Status is "", "ok", "error", "4xx", "5xx" or "client_closed".
	Status string
	// Stream is "", "true" or "false".
	Stream string
	// MinMs keeps calls that took at least this long; 0 is no bound.
	MinMs float64
	// Range is a named span back from now ("15m" … "7d"); when empty, From
	// and To (either may be zero: unbounded) hold a custom range.
	Range    string
	From, To time.Time
	// since, when set (bindSince), is where the walk of a key or model
	// filter starts; it is never in the URL.
	since time.Time
}

// callRanges are the named ranges a calls view offers.
var callRanges = map[string]time.Duration{
	"15m": 15 * time.Minute, "1h": time.Hour, "6h": 6 * time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour,
}

// maxFilterLen bounds a text filter: ids and model names are short, and a
// longer value is somebody probing, not a search.
const maxFilterLen = 256

// errBadFilter is a filter the console cannot apply; its message says why,
// in words a person can act on.
var errBadFilter = errors.New("bad filter")

// parseCallFilter reads the filter from q. Unknown parameters are ignored
// (the page's own, such as a cursor); a value that cannot be applied is an
// error rather than silently dropped, so nobody reads an unfiltered list
// believing it filtered.
func parseCallFilter(q url.Values, s session) (callFilter, error) {
	var f callFilter
	text := func(name string, dst *string) error {
		v := q.Get(name)
		if len(v) > maxFilterLen {
			return fmt.Errorf("%w: %s is longer than %d bytes", errBadFilter, name, maxFilterLen)
		}
		*dst = v
		return nil
	}
	for name, dst := range map[string]*string{
		"key": &f.Key, "model": &f.Model, "provider": &f.Provider, "error_type": &f.ErrorType,
	} {
		if err := text(name, dst); err != nil {
			return callFilter{}, err
		}
	}
	if s.admin {
		if err := text("tenant", &f.Tenant); err != nil {
			return callFilter{}, err
		}
	}
	switch v := q.Get("status"); v {
	case "", "ok", "error", "4xx", "5xx", "client_closed":
		f.Status = v
	default:
		return callFilter{}, fmt.Errorf("%w: status must be ok, error, 4xx, 5xx or client_closed", errBadFilter)
	}
	switch v := q.Get("stream"); v {
	case "", "true", "false":
		f.Stream = v
	default:
		return callFilter{}, fmt.Errorf("%w: stream must be true or false", errBadFilter)
	}
	if v := q.Get("min_ms"); v != "" {
		ms, err := strconv.ParseFloat(v, 64)
		if err != nil || ms < 0 || ms > 1e9 {
			return callFilter{}, fmt.Errorf("%w: min_ms must be a number of milliseconds", errBadFilter)
		}
		f.MinMs = ms
	}
	if v := q.Get("range"); v != "" {
		if _, ok := callRanges[v]; !ok {
			return callFilter{}, fmt.Errorf("%w: range must be 15m, 1h, 6h, 24h or 7d", errBadFilter)
		}
		f.Range = v
		return f, nil
	}
	var err error
	if f.From, err = parseFilterTime(q.Get("from")); err != nil {
		return callFilter{}, fmt.Errorf("%w: from: %w", errBadFilter, err)
	}
	if f.To, err = parseFilterTime(q.Get("to")); err != nil {
		return callFilter{}, fmt.Errorf("%w: to: %w", errBadFilter, err)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return callFilter{}, fmt.Errorf("%w: from must be before to", errBadFilter)
	}
	return f, nil
}

// parseFilterTime reads RFC 3339 or what an <input type="datetime-local">
// sends (no zone: taken as UTC, the zone the console shows).
func parseFilterTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not a time (use 2006-01-02T15:04 in UTC, or RFC 3339)")
}

// values is the filter as query parameters, only those set, for links.
func (f callFilter) values() url.Values {
	v := url.Values{}
	for name, x := range map[string]string{
		"tenant": f.Tenant, "key": f.Key, "model": f.Model, "provider": f.Provider, "error_type": f.ErrorType,
		"status": f.Status, "stream": f.Stream, "range": f.Range,
	} {
		if x != "" {
			v.Set(name, x)
		}
	}
	if f.MinMs > 0 {
		v.Set("min_ms", strconv.FormatFloat(f.MinMs, 'f', -1, 64))
	}
	if f.Range == "" {
		if !f.From.IsZero() {
			v.Set("from", f.From.Format(time.RFC3339Nano))
		}
		if !f.To.IsZero() {
			v.Set("to", f.To.Format(time.RFC3339Nano))
		}
	}
	return v
}

// bounds is the time range the filter selects at now; zero ends are open.
func (f callFilter) bounds(now time.Time) (from, to time.Time) {
	if d, ok := callRanges[f.Range]; ok {
		return now.Add(-d), time.Time{}
	}
	return f.From, f.To
}

// where is the filter as SQL conditions, each starting " AND ", over s (a
// call's SERVER span) and c (its CLIENT span), as callsFrom joins them;
// arg binds a value and returns its placeholder. Time bounds are on
// s.start_time so that the partitions and indexes on it apply.
func (f callFilter) where(now time.Time, arg func(any) string) string {
	sql := ""
	if f.Tenant != "" {
		sql += " AND s.tenant_id = " + arg(f.Tenant)
	}
	if f.Key != "" {
		sql += " AND s.api_key_id = " + arg(f.Key)
	}
	// Model and stream test the SERVER span's column first: the planner
	// knows how often a value occurs there (a coalesce over both sides it
	// guesses at 0.5%, and then reads a tenant's whole history rather than
	// walking the time index to the first page: TestConsolePages_AtScale).
	if f.Model != "" {
		m := arg(f.Model)
		sql += " AND (s.request_model = " + m + " OR (s.request_model IS NULL AND c.request_model = " + m + "))"
	}
	if f.Provider != "" {
		sql += " AND coalesce(c.provider, s.provider) = " + arg(f.Provider)
	}
	if f.ErrorType != "" {
		sql += " AND coalesce(s.error_type, c.error_type) = " + arg(f.ErrorType)
	}
	switch f.Status {
	case "ok":
		sql += " AND NOT " + isError
	case "error":
		sql += " AND " + isError
	case "4xx":
		sql += " AND s.http_status BETWEEN 400 AND 499"
	case "5xx":
		sql += " AND s.http_status >= 500"
	case "client_closed":
		sql += " AND s.client_disconnected"
	}
	if f.Stream != "" {
		v := arg(f.Stream == "true")
		sql += " AND (s.stream = " + v + " OR (s.stream IS NULL AND coalesce(c.stream, false) = " + v + "))"
	}
	if f.MinMs > 0 {
		sql += " AND s.duration_ms >= " + arg(f.MinMs)
	}
	if !f.since.IsZero() {
		sql += " AND s.start_time >= " + arg(f.since)
	}
	from, to := f.bounds(now)
	if !from.IsZero() {
		sql += " AND s.start_time >= " + arg(from)
	}
	if !to.IsZero() {
		sql += " AND s.start_time < " + arg(to)
	}
	return sql
}

// neverUsed is bindSince's bound for a key or model the store has no
// call of: later than any call can start, so the walk reads nothing.
var neverUsed = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// bindSince sets f.since for a key or model filter: the first hour the
// usage rollup counts a call of that key (and of that model), or the first
// hour writes have marked since its refresh, whichever is older
// (migration 0009: every hour of spans is one or the other). Without it, a
// filter that matches little walks the time index through the whole
// history before it has a page (a model nobody called: 5.2 s for the
// admin at 1,000,000 spans); with it, such a walk reads the hours not yet
// rolled up. It is read first, as a constant for the planner (the same
// bound inside the list's statement, unknown when planned, made the planner
// misjudge the list's other filters). A call written between the two reads
// is in the next read, as one written after the list's would be.
func (h *handler) bindSince(ctx context.Context, s session, f *callFilter) error {
	if f.Key == "" && f.Model == "" {
		return nil
	}
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	first := func(dim, value string) string {
		tenant := ""
		if f.Tenant != "" {
			tenant = " AND r.tenant_id = " + arg(f.Tenant)
		}
		return `coalesce(least(
    (SELECT min(r.hour) FROM loom.usage_hourly r WHERE r.dim = '` + dim + `' AND r.dim_value = ` + arg(value) + tenant + `),
    (SELECT min(d.hour) FROM loom.usage_dirty d)), 'infinity')`
	}
	var bounds []string
	if f.Key != "" {
		bounds = append(bounds, first("key", f.Key))
	}
	if f.Model != "" {
		bounds = append(bounds, first("model", f.Model))
	}
	var since pgtype.Timestamptz
	err := h.read(ctx, s, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT greatest("+strings.Join(bounds, ", ")+")", args...).Scan(&since)
	})
	switch {
	case err != nil:
		return fmt.Errorf("filter bound: %w", err)
	case since.InfinityModifier == pgtype.Infinity:
		f.since = neverUsed
	case since.Valid && since.InfinityModifier == pgtype.Finite:
		f.since = since.Time
	}
	return nil
}
