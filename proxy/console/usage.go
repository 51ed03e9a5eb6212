package console

// The Usage page: calls, tokens by kind and spend per tenant, key or model,
// in hour or day buckets, with a CSV export of the same numbers.
//
// What it counts, and why:
//   - A call is a SERVER span with a route that is not a /v1/models route:
//     GET /v1/models (and /v1/models/{model}) is answered from the
//     gateway's snapshot and generates nothing; a request for an unknown
//     URL gets no route. Both still have SERVER spans, neither is a call.
//   - Tokens and cost come from the CLIENT span of the attempt that served
//     (the highest loom.upstream.attempt under the SERVER span, as
//     queries.go callsFrom and dashboards/queries LastAttempt pick it), so
//     a call that failed over counts once.
//   - Cost is loom.cost, numeric and exact, in cost_currency; it is summed
//     by Postgres as numeric and shown as the text Postgres gives, never
//     through a float. A call with usage but no cost is "unpriced" (no
//     price covered it): it is counted as such, never as a cost of 0.
//
// What it counts is rollup.Aggregate's definition; each hour comes from
// the hourly rollup where it is current, from the spans otherwise (sql).
//
// Buckets are UTC hours or days of the SERVER span's start. No query
// filters by tenant for isolation: row-level security does that (h.read);
// the admin's tenant choice is a filter only.

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/rollup"
)

// Usage groupings, by their query value: the rollup's rows each reads
// (dim: its calls summed by key or by model), the column of
// rollup.Aggregate's rows that matches their dim_value (live), and the
// expression over sql's per_hour rows it groups by. The model is the one
// the client asked for (the calls list's Model), falling back to the
// upstream model for spans that lack it.
var usageGroups = map[string]struct{ label, dim, live, expr string }{
	"tenant": {"Tenant", "key", "api_key_id", "coalesce(tenant_id, '')"},
	"key":    {"Key", "key", "api_key_id", "coalesce(dim_value, '')"},
	"model":  {"Model", "model", "model", "coalesce(dim_value, '')"},
}

// Preset ranges, by their query value.
var usageRanges = map[string]time.Duration{
	"24h": 24 * time.Hour,
	"7d":  7 * 24 * time.Hour,
	"30d": 30 * 24 * time.Hour,
}

// Bounds of what one page or export may ask for.
const (
	// maxUsageSpan bounds a custom range: beyond it a query reads more
	// partitions than a page should (and retention has usually dropped
	// them anyway).
	maxUsageSpan = 92 * 24 * time.Hour
	// maxHourlySpan bounds hourly buckets: 744 points is already more
	// than a chart shows apart.
	maxHourlySpan = 31 * 24 * time.Hour
	// maxUsageParam bounds any one query parameter's length.
	maxUsageParam = 128
	// maxUsageRowsShown caps the groups listed on the page (the busiest
	// first); the totals row and the CSV cover them all.
	maxUsageRowsShown = 100
	// maxUsageCSVRows bounds an export: a larger one is refused before
	// anything is written, with a hint to narrow it.
	maxUsageCSVRows = 200_000
)

// errUsageQuery is a usage request that cannot be answered as asked; its
// text says what to change.
var errUsageQuery = errors.New("bad usage query")

// usageQuery is a validated usage request.
type usageQuery struct {
	Group  string // tenant, key or model
	Gran   string // hour or day
	Range  string // 24h, 7d, 30d or custom
	From   time.Time
	To     time.Time // exclusive
	Tenant string    // the admin's one tenant; "" is all
	// FromIn and ToIn are the custom range as the form shows it.
	FromIn, ToIn string
}

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsageQuery}, a...)...)
}

// parseUsageQuery reads and validates a usage request's parameters. A
// tenant session's tenant parameter is ignored: its rows are its own.
func parseUsageQuery(q url.Values, s session, now time.Time) (usageQuery, error) {
	for k, vs := range q {
		for _, v := range vs {
			if len(v) > maxUsageParam {
				return usageQuery{}, usageErr("the %s parameter is too long (at most %d characters)", usageClip(k), maxUsageParam)
			}
		}
	}
	u := usageQuery{Group: q.Get("group"), Gran: q.Get("granularity"), Range: q.Get("range"),
		FromIn: strings.TrimSpace(q.Get("from")), ToIn: strings.TrimSpace(q.Get("to"))}
	if u.Group == "" {
		u.Group = "key"
		if s.admin {
			u.Group = "tenant"
		}
	}
	if _, ok := usageGroups[u.Group]; !ok {
		return usageQuery{}, usageErr("group must be tenant, key or model")
	}
	if s.admin {
		u.Tenant = strings.TrimSpace(q.Get("tenant"))
	}
	if u.Range == "" {
		// The last day by default: the view anyone opens first must be
		// quick at any scale, and a month of every tenant's calls is a
		// wide aggregate (seconds at a million spans).
		u.Range = "24h"
		if u.FromIn != "" || u.ToIn != "" {
			u.Range = "custom"
		}
	}
	now = now.UTC()
	if span, ok := usageRanges[u.Range]; ok {
		// Whole minutes: the same request a few seconds apart asks for
		// the same range.
		u.To = now.Truncate(time.Minute).Add(time.Minute)
		u.From = u.To.Add(-span)
	} else if u.Range == "custom" {
		var err error
		if u.From, err = parseUsageTime("from", u.FromIn); err != nil {
			return usageQuery{}, err
		}
		if u.To, err = parseUsageTime("to", u.ToIn); err != nil {
			return usageQuery{}, err
		}
		switch {
		case !u.From.Before(u.To):
			return usageQuery{}, usageErr("the range must end after it starts (from %s, to %s)", u.FromIn, u.ToIn)
		case u.To.Sub(u.From) > maxUsageSpan:
			return usageQuery{}, usageErr("a range covers at most %d days", maxUsageSpan/(24*time.Hour))
		case u.From.After(now):
			return usageQuery{}, usageErr("the range starts in the future")
		case u.From.Year() < 2000:
			return usageQuery{}, usageErr("the range starts before 2000")
		}
	} else {
		return usageQuery{}, usageErr("range must be 24h, 7d, 30d or custom")
	}
	span := u.To.Sub(u.From)
	switch u.Gran {
	case "":
		u.Gran = "hour"
		if span > 7*24*time.Hour {
			u.Gran = "day"
		}
	case "hour", "day":
	default:
		return usageQuery{}, usageErr("granularity must be hour or day")
	}
	if u.Gran == "hour" && span > maxHourlySpan {
		return usageQuery{}, usageErr("hourly buckets cover at most %d days: choose day for a longer range", maxHourlySpan/(24*time.Hour))
	}
	return u, nil
}

// parseUsageTime reads one end of a custom range, as the calls filter does.
func parseUsageTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, usageErr("a custom range needs both from and to")
	}
	t, err := parseFilterTime(v)
	if err != nil {
		return time.Time{}, usageErr("%s is %s", name, err)
	}
	return t, nil
}

// usageClip bounds a parameter (or its name) echoed in an error or a form.
func usageClip(k string) string {
	if len(k) > 32 {
		return k[:32] + "..."
	}
	return k
}

// values are the request's parameters, for links (the CSV) and the form.
func (u usageQuery) values() url.Values {
	v := url.Values{"group": {u.Group}, "granularity": {u.Gran}, "range": {u.Range}}
	if u.Range == "custom" {
		v.Set("from", u.FromIn)
		v.Set("to", u.ToIn)
	}
	if u.Tenant != "" {
		v.Set("tenant", u.Tenant)
	}
	return v
}

// step is one bucket's length.
func (u usageQuery) step() time.Duration {
	if u.Gran == "day" {
		return 24 * time.Hour
	}
	return time.Hour
}

// buckets are the starts of every bucket the range touches.
func (u usageQuery) buckets() []time.Time {
	var out []time.Time
	for t := u.From.Truncate(u.step()); t.Before(u.To); t = t.Add(u.step()) {
		out = append(out, t)
	}
	return out
}

// sql is the per-bucket, per-group, per-currency aggregate, and its
// arguments: $1 from, $2 to, $3 the bucket ('hour' or 'day'), $4 the
// rollup's dim, $5 the admin's tenant.
//
// Each UTC hour of the range is read from the hourly rollup when the whole
// hour lies in the range and no write has marked it since its rollup
// (migration 0009), and from the spans otherwise (rollup.Aggregate, the
// rollup's own definition): the range's partial first and last hours, the
// current one, and any hour late spans landed in. One statement, so one
// snapshot: an hour is never counted from both or from neither.
func (u usageQuery) sql() (string, []any) {
	g := usageGroups[u.Group]
	args := []any{u.From, u.To, u.Gran, g.dim}
	rwhere, tenant := "", ""
	if u.Tenant != "" {
		args = append(args, u.Tenant)
		rwhere, tenant = " AND r.tenant_id = $5", "$5"
	}
	return `
WITH hours AS (
  SELECT h, h >= $1 AND h + interval '1 hour' <= $2
    AND NOT EXISTS (SELECT 1 FROM loom.usage_dirty d WHERE d.hour = h) AS rolled
  FROM generate_series(date_trunc('hour', $1::timestamptz, 'UTC'), $2::timestamptz - interval '1 microsecond',
    interval '1 hour') AS h
), per_hour AS (
  SELECT r.hour, r.tenant_id, r.dim_value, r.currency, r.calls, r.unpriced,
    r.input_tokens, r.output_tokens, r.cache_read_tokens, r.reasoning_tokens, r.cost
  FROM loom.usage_hourly r
  WHERE r.dim = $4 AND r.hour >= date_trunc('hour', $1::timestamptz, 'UTC') AND r.hour < $2` + rwhere + `
    AND r.hour IN (SELECT h FROM hours WHERE rolled)
  UNION ALL
  SELECT hours.h, a.tenant_id, a.` + g.live + `, a.currency, a.calls, a.unpriced,
    a.input_tokens, a.output_tokens, a.cache_read_tokens, a.reasoning_tokens, a.cost
  FROM hours CROSS JOIN LATERAL (` + rollup.Aggregate("greatest(hours.h, $1)", "least(hours.h + interval '1 hour', $2)", tenant) + `) a
  WHERE NOT hours.rolled
)
SELECT date_trunc($3, hour, 'UTC') AS bucket,
  ` + g.expr + ` AS grp,
  currency,
  sum(calls)::bigint AS calls, sum(unpriced)::bigint AS unpriced,
  sum(input_tokens) AS input, sum(output_tokens) AS output,
  sum(cache_read_tokens) AS cached, sum(reasoning_tokens) AS reasoning,
  sum(cost) AS cost
FROM per_hour
GROUP BY 1, 2, 3`, args
}

// usageSettings gives the read's transaction (JIT is already off: see
// read) work memory enough to hash a range's calls and groups instead of
// sorting them on disk. It ends with the transaction.
func usageSettings(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '64MB'"); err != nil {
		return fmt.Errorf("usage settings: %w", err)
	}
	return nil
}

// pageSQL sums the aggregate per group, per bucket and in all, each per
// currency: numeric sums of numeric sums, still exact. level is
// GROUPING(bucket, grp): 2 a group's total, 1 a bucket's, 3 the range's.
func (u usageQuery) pageSQL() (string, []any) {
	inner, args := u.sql()
	return `
SELECT GROUPING(bucket, grp) AS level, bucket, grp, currency,
  sum(calls)::bigint, sum(unpriced)::bigint,
  sum(input)::bigint, sum(output)::bigint, sum(cached)::bigint, sum(reasoning)::bigint,
  sum(cost)::text
FROM (` + inner + `
) u
GROUP BY GROUPING SETS ((grp, currency), (bucket, currency), (currency))`, args
}

// csvSQL is the aggregate row by row, in order, with the number of rows
// on each (to refuse an export too large before writing any of it).
func (u usageQuery) csvSQL() (string, []any) {
	inner, args := u.sql()
	return `
SELECT count(*) OVER (), bucket, grp, currency, calls, unpriced, input::bigint, output::bigint, cached::bigint,
  reasoning::bigint, cost::text
FROM (` + inner + `
) u
ORDER BY bucket, grp, currency NULLS FIRST`, args
}

// usageSums are the counts of some calls. Token sums are nil when no call
// among them reported that kind.
type usageSums struct {
	Calls, Unpriced                  int64
	Input, Output, Cached, Reasoning *int64
	// Cost is each currency's exact sum, as Postgres wrote it.
	Cost map[string]string
}

func usageAddOpt(dst **int64, v *int64) {
	if v == nil {
		return
	}
	if *dst == nil {
		n := *v
		*dst = &n
		return
	}
	**dst += *v
}

// add merges one currency's row into s (each currency comes once).
func (s *usageSums) add(o usageSums) {
	s.Calls += o.Calls
	s.Unpriced += o.Unpriced
	usageAddOpt(&s.Input, o.Input)
	usageAddOpt(&s.Output, o.Output)
	usageAddOpt(&s.Cached, o.Cached)
	usageAddOpt(&s.Reasoning, o.Reasoning)
	for c, v := range o.Cost {
		if s.Cost == nil {
			s.Cost = map[string]string{}
		}
		s.Cost[c] = v
	}
}

// usageRow is a line of the page's table, formatted for people.
type usageRow struct {
	Name                                              string
	Calls, Unpriced, Input, Output, Cached, Reasoning string
	Cost                                              []string // "1,234.50 USD", one per currency
}

func (s usageSums) row(name string) usageRow {
	r := usageRow{Name: name, Calls: groupDigits(strconv.FormatInt(s.Calls, 10)),
		Unpriced: groupDigits(strconv.FormatInt(s.Unpriced, 10)),
		Input:    usageOptInt(s.Input), Output: usageOptInt(s.Output), Cached: usageOptInt(s.Cached), Reasoning: usageOptInt(s.Reasoning)}
	for _, c := range usageSortedKeys(s.Cost) {
		r.Cost = append(r.Cost, usageMoney(s.Cost[c], c))
	}
	return r
}

func usageOptInt(v *int64) string {
	if v == nil {
		return "–"
	}
	return groupDigits(strconv.FormatInt(*v, 10))
}

func usageSortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// usageMoney writes an exact amount for people: thousands separators, at
// least two decimal places and no trailing zeros beyond them (every digit
// that carries value stays), then the currency code: "12,345.6" is
// "12,345.60 USD", "0.000171" stays "0.000171 USD".
func usageMoney(dec, currency string) string {
	intPart, frac, _ := strings.Cut(dec, ".")
	frac = strings.TrimRight(frac, "0")
	for len(frac) < 2 {
		frac += "0"
	}
	return groupDigits(intPart+"."+frac) + " " + currency
}

// usageData is what usage.html gets.
type usageData struct {
	Q          usageQuery
	GroupLabel string
	Groups     []string // the groupings the session may choose
	Tenants    []string // the admin's tenant suggestions
	FromLabel  string
	ToLabel    string
	Rows       []usageRow
	More       int // groups not listed (the CSV has them)
	Total      usageRow
	Unpriced   bool         // some call had no price
	Charts     []usageChart // spend, then tokens
	CSVURL     string
	Error      string
}

func (h *handler) usage(w http.ResponseWriter, r *http.Request, s session) {
	d := usageData{Groups: []string{"key", "model"}}
	if s.admin {
		d.Groups = []string{"tenant", "key", "model"}
	}
	u, err := parseUsageQuery(r.URL.Query(), s, time.Now())
	if err != nil {
		// The form again, with what to fix: a person mistyped a date.
		d.Error = strings.TrimPrefix(err.Error(), errUsageQuery.Error()+": ")
		q := r.URL.Query()
		d.Q = usageQuery{Group: usageClip(q.Get("group")), Gran: usageClip(q.Get("granularity")),
			Range: usageClip(q.Get("range")), FromIn: usageClip(q.Get("from")), ToIn: usageClip(q.Get("to"))}
		if s.admin {
			d.Q.Tenant = usageClip(q.Get("tenant"))
		}
		h.render(w, http.StatusBadRequest, "usage", page{Title: "Usage", Session: &s, Data: d})
		return
	}
	d.Q, d.GroupLabel = u, usageGroups[u.Group].label
	d.FromLabel, d.ToLabel = u.From.Format("2006-01-02 15:04"), u.To.Format("2006-01-02 15:04")
	d.CSVURL = "/console/usage.csv?" + u.values().Encode()

	groups := map[string]*usageSums{}
	buckets := map[time.Time]*usageSums{}
	var total usageSums
	ctx := r.Context()
	err = h.read(ctx, s, func(tx pgx.Tx) error {
		if s.admin {
			// Suggestions only: a tenant still typed in is used as is.
			rows, err := tx.Query(ctx, `SELECT id FROM loom.tenants ORDER BY id LIMIT 500`)
			if err != nil {
				return fmt.Errorf("tenants: %w", err)
			}
			if d.Tenants, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return fmt.Errorf("tenants: %w", err)
			}
		}
		if err := usageSettings(ctx, tx); err != nil {
			return err
		}
		sql, args := u.pageSQL()
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				level              int
				bucket             *time.Time
				grp, currency, cst *string
				v                  usageSums
			)
			if err := rows.Scan(&level, &bucket, &grp, &currency, &v.Calls, &v.Unpriced,
				&v.Input, &v.Output, &v.Cached, &v.Reasoning, &cst); err != nil {
				return err
			}
			if currency != nil && cst != nil {
				v.Cost = map[string]string{*currency: *cst}
			}
			switch {
			case level == 2 && grp != nil:
				if groups[*grp] == nil {
					groups[*grp] = &usageSums{}
				}
				groups[*grp].add(v)
			case level == 1 && bucket != nil:
				b := bucket.UTC()
				if buckets[b] == nil {
					buckets[b] = &usageSums{}
				}
				buckets[b].add(v)
			case level == 3:
				total.add(v)
			}
		}
		return rows.Err()
	})
	if err != nil {
		h.log.Error("console: usage", "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The usage could not be read.")
		return
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	// The busiest first; ties by name, so the page is stable.
	sort.Slice(names, func(i, j int) bool {
		a, b := groups[names[i]], groups[names[j]]
		if a.Calls != b.Calls {
			return a.Calls > b.Calls
		}
		return names[i] < names[j]
	})
	if len(names) > maxUsageRowsShown {
		d.More = len(names) - maxUsageRowsShown
		names = names[:maxUsageRowsShown]
	}
	for _, n := range names {
		label := n
		if label == "" {
			label = "(none)"
		}
		d.Rows = append(d.Rows, groups[n].row(label))
	}
	d.Total = total.row("Total")
	d.Unpriced = total.Unpriced > 0
	spend, tokens := usageCharts(u, buckets)
	d.Charts = []usageChart{spend, tokens}
	h.render(w, http.StatusOK, "usage", page{Title: "Usage", Session: &s, Data: d})
}

func usageOptCSV(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}

// usageCSV exports the page's numbers row by row: one line per bucket,
// group and currency; tokens and cost exact and unformatted, an empty
// cell where no call reported the kind (or no price covered the calls).
func (h *handler) usageCSV(w http.ResponseWriter, r *http.Request, s session) {
	u, err := parseUsageQuery(r.URL.Query(), s, time.Now())
	if err != nil {
		http.Error(w, strings.TrimPrefix(err.Error(), errUsageQuery.Error()+": "), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	wrote := false
	err = h.read(ctx, s, func(tx pgx.Tx) error {
		if err := usageSettings(ctx, tx); err != nil {
			return err
		}
		sql, args := u.csvSQL()
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var cw *csv.Writer
		flusher, _ := w.(http.Flusher)
		n := 0
		for rows.Next() {
			var (
				total, calls, unpriced           int64
				bucket                           time.Time
				grp                              string
				currency, cost                   *string
				input, output, cached, reasoning *int64
			)
			if err := rows.Scan(&total, &bucket, &grp, &currency, &calls, &unpriced,
				&input, &output, &cached, &reasoning, &cost); err != nil {
				return err
			}
			if cw == nil {
				if total > maxUsageCSVRows {
					return usageErr("the export would have %d rows (at most %d): narrow the range, choose day buckets or one tenant", total, maxUsageCSVRows)
				}
				cw = h.startUsageCSV(w, u)
				wrote = true
			}
			cur, cst := "", ""
			if currency != nil {
				cur = *currency
			}
			if cost != nil {
				cst = *cost
			}
			if err := cw.Write([]string{bucket.UTC().Format(time.RFC3339), csvText(grp), strconv.FormatInt(calls, 10),
				strconv.FormatInt(unpriced, 10), usageOptCSV(input), usageOptCSV(output), usageOptCSV(cached), usageOptCSV(reasoning),
				cst, csvText(cur)}); err != nil {
				return err
			}
			if n++; n%1000 == 0 {
				cw.Flush()
				if flusher != nil {
					flusher.Flush()
				}
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if cw == nil { // no calls: the header alone
			cw = h.startUsageCSV(w, u)
			wrote = true
		}
		cw.Flush()
		return cw.Error()
	})
	switch {
	case err == nil:
	case errors.Is(err, errUsageQuery) && !wrote:
		http.Error(w, strings.TrimPrefix(err.Error(), errUsageQuery.Error()+": "), http.StatusBadRequest)
	case !wrote:
		h.log.Error("console: usage csv", "error", err)
		http.Error(w, "The usage could not be read.", http.StatusInternalServerError)
	default:
		// Half an export is out: the connection is cut by panicking out
		// of the handler, so the client sees a failed download rather
		// than a short file that looks complete.
		h.log.Error("console: usage csv cut short", "error", err)
		panic(http.ErrAbortHandler)
	}
}

// startUsageCSV writes the export's headers and its header row.
func (h *handler) startUsageCSV(w http.ResponseWriter, u usageQuery) *csv.Writer {
	name := fmt.Sprintf("loom-usage-by-%s-%s-%s-%s.csv", u.Group, u.Gran,
		u.From.Format("20060102T1504Z"), u.To.Format("20060102T1504Z"))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	// Errors are sticky: the caller's Flush and Error report them.
	_ = cw.Write([]string{"bucket_start_utc", u.Group, "calls", "unpriced_calls", "input_tokens", "output_tokens",
		"cached_input_tokens", "reasoning_tokens", "cost", "currency"})
	return cw
}

// usageTemplate is usage.html over the layout, kept apart from
// parsePages' list so that this page's registration is one line of New.
func usageTemplate() *template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	return template.Must(base.ParseFS(templateFS, "templates/usage.html"))
}
