package console

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/internal/json"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// The call page tells one call's story in the order a person asks about it:
// what was asked and what answered, did it work, what it cost, how long it
// took and where the time went; then the timeline, the conversation (when
// the tenant captures content), and only then every stored column, folded.
// It reads the same rows as the calls list (the SERVER span and its CLIENT
// spans, one per upstream attempt) through h.read, so row-level security
// decides what a tenant sees: another tenant's call is a 404, and the
// previous/next links only ever name calls the session can read.

var traceIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// spanRow is one stored span: every non-null column by name, the jsonb
// attributes decoded, and the few fields the page reads typed.
type spanRow struct {
	SpanID, Parent, Name, Kind, Status string
	Start, End                         time.Time
	cols                               map[string]any
	attrs                              map[string]any
	order                              []string // column names in the table's order
}

func (r *spanRow) str(col string) string {
	s, _ := r.cols[col].(string)
	return s
}

func (r *spanRow) num(col string) (float64, bool) { return number(r.cols[col]) }

func (r *spanRow) boolean(col string) (v, ok bool) {
	v, ok = r.cols[col].(bool)
	return v, ok
}

func (r *spanRow) attr(name string) any { return r.attrs[name] }

// attempt is a CLIENT span's number: loom.upstream.attempt, 1 when unset.
func (r *spanRow) attempt() int {
	if n, ok := r.num("upstream_attempt"); ok {
		return int(n)
	}
	return 1
}

func (r *spanRow) durationMs() float64 {
	if d, ok := r.num("duration_ms"); ok {
		return d
	}
	return float64(r.End.Sub(r.Start)) / float64(time.Millisecond)
}

// fact is one labelled value of the header; Key names it for tests and
// styles (data-field), Hint says more on hover.
type fact struct {
	Key, Label, Value, Hint string
	Bad                     bool
}

type factGroup struct {
	Title string
	Facts []fact
}

// attemptView is one upstream attempt, in order.
type attemptView struct {
	N                                   int
	Deployment, Provider, Server, Model string
	Offset, Duration, Status, Result    string
	Served, Failed                      bool
}

// rawSpan is one span's stored columns, for the folded raw section.
type rawSpan struct {
	SpanID, Name, Kind, Duration string
	Fields                       []field
}

type field struct{ Name, Value string }

type callData struct {
	TraceID string
	// Title is the one-line summary under the heading.
	Title      string
	OK         bool
	StatusLine string
	ErrorLine  string
	Groups     []factGroup
	Attempts   []attemptView
	Timeline   timelineView
	Chats      []chatView
	Curl       curlView
	Spans      []rawSpan
	// Back is the calls list with the filter this page was opened from;
	// Newer and Older the adjacent calls in that filter ("" at an end).
	Back, Newer, Older string
	// FilterNote says why the links ignore the filter the URL carried.
	FilterNote string
	Filtered   bool
}

func (h *handler) call(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("trace")
	if !traceIDRe.MatchString(id) {
		h.fail(w, &s, http.StatusNotFound, "No such call.")
		return
	}
	f, ferr := parseCallFilter(r.URL.Query(), s)
	var spans []*spanRow
	var contents []contentRow
	err := h.read(r.Context(), s, func(tx pgx.Tx) error {
		var err error
		if spans, err = readSpans(r, tx, id); err != nil {
			return err
		}
		if len(spans) == 0 {
			return errNotFound
		}
		contents, err = readContent(r, tx, id)
		return err
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
	// The neighbours in a read of their own: a filter too wide for the
	// statement timeout costs the links, not the page.
	var newer, older string
	if srv := serverSpan(spans); srv != nil && ferr == nil {
		err = h.bindSince(r.Context(), s, &f)
		if err == nil {
			err = h.read(r.Context(), s, func(tx pgx.Tx) error {
				var err error
				newer, older, err = neighbours(r, tx, f, srv.Start, id)
				return err
			})
		}
	}
	d := buildCall(id, spans, contents)
	d.Back = "/console/calls"
	switch {
	case ferr != nil:
		d.FilterNote = "The list's filter in this link is not valid (" + ferr.Error() + "): the links below ignore it."
	case err != nil:
		h.log.Error("console: call: previous and next", "error", err)
		d.FilterNote = "The previous and next calls could not be read."
		fallthrough
	default:
		q := f.values()
		if enc := q.Encode(); enc != "" {
			d.Back += "?" + enc
			d.Filtered = true
		}
		if newer != "" {
			d.Newer = callURL(newer, q)
		}
		if older != "" {
			d.Older = callURL(older, q)
		}
	}
	h.render(w, http.StatusOK, "call", page{Title: "Call " + id, Session: &s, Data: d})
}

// callURL links a call keeping the list's filter, as the calls list does.
func callURL(trace string, q url.Values) string {
	u := "/console/calls/" + trace
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	return u
}

// callSpansSQL is every span of a trace, every column; cost also as exact text.
const callSpansSQL = `SELECT *, cost::text AS cost_exact FROM loom.spans WHERE trace_id = $1 ORDER BY start_time, span_id`

func readSpans(r *http.Request, tx pgx.Tx, id string) ([]*spanRow, error) {
	rows, err := tx.Query(r.Context(), callSpansSQL, id)
	if err != nil {
		return nil, fmt.Errorf("read spans: %w", err)
	}
	defer rows.Close()
	cols := rows.FieldDescriptions()
	var out []*spanRow
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("read spans: %w", err)
		}
		sr := &spanRow{cols: map[string]any{}}
		for i, c := range cols {
			v := vals[i]
			if v == nil {
				continue
			}
			switch c.Name {
			case "attributes":
				sr.attrs, _ = v.(map[string]any)
			case "ingested_at":
				continue
			}
			sr.cols[c.Name] = v
			sr.order = append(sr.order, c.Name)
		}
		sr.SpanID, sr.Parent, sr.Name = sr.str("span_id"), sr.str("parent_span_id"), sr.str("name")
		sr.Kind, sr.Status = sr.str("kind"), sr.str("status_code")
		sr.Start, _ = sr.cols["start_time"].(time.Time)
		sr.End, _ = sr.cols["end_time"].(time.Time)
		if sr.End.IsZero() {
			sr.End = sr.Start
		}
		out = append(out, sr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read spans: %w", err)
	}
	return out, nil
}

// serverSpan is the call's SERVER span: what the client saw.
func serverSpan(spans []*spanRow) *spanRow {
	for _, sp := range spans {
		if sp.Kind == "server" {
			return sp
		}
	}
	return nil
}

// clientSpans are the call's upstream attempts, in attempt order.
func clientSpans(spans []*spanRow) []*spanRow {
	var out []*spanRow
	for _, sp := range spans {
		if sp.Kind == "client" {
			out = append(out, sp)
		}
	}
	slices.SortStableFunc(out, func(a, b *spanRow) int {
		if a.attempt() != b.attempt() {
			return a.attempt() - b.attempt()
		}
		return a.Start.Compare(b.Start)
	})
	return out
}

// neighbours are the calls just newer and just older than (start, id) in
// the list's filter, ordered as the list is, by (start_time, trace_id).
func neighbours(r *http.Request, tx pgx.Tx, f callFilter, start time.Time, id string) (newer, older string, err error) {
	now := time.Now()
	for _, side := range []struct {
		newer bool
		dst   *string
	}{{true, &newer}, {false, &older}} {
		sql, args := neighbourSQL(f, now, start, id, side.newer)
		err := tx.QueryRow(r.Context(), sql, args...).Scan(side.dst)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("read the adjacent call (newer: %v): %w", side.newer, err)
		}
	}
	return newer, older, nil
}

// neighbourSQL is the query of the call next to (start, id) in f: the
// newer one, or the older. The plain start_time bound repeats the row
// comparison so that the planner can walk an index on start_time (a
// tenant's (tenant_id, start_time) under row-level security) and stop at
// the first row that passes the filter.
func neighbourSQL(f callFilter, now, start time.Time, id string, newer bool) (string, []any) {
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	cmp, dir := "<", "DESC"
	if newer {
		cmp, dir = ">", "ASC"
	}
	where := f.where(now, arg)
	t, tr := arg(start), arg(id)
	return "SELECT s.trace_id" + callsFrom + where +
		" AND s.start_time " + cmp + "= " + t +
		" AND (s.start_time, s.trace_id) " + cmp + " (" + t + "::timestamptz, " + tr + "::text)" +
		" ORDER BY s.start_time " + dir + ", s.trace_id " + dir + " LIMIT 1", args
}

// buildCall turns the stored spans into the page.
func buildCall(id string, spans []*spanRow, contents []contentRow) callData {
	d := callData{TraceID: id}
	srv := serverSpan(spans)
	clients := clientSpans(spans)
	if srv == nil {
		// Not a call through the gateway (a run marker, a foreign span):
		// the page still shows what is stored.
		srv = spans[0]
	}
	var served *spanRow // the attempt that served, or failed last
	if len(clients) > 0 {
		served = clients[len(clients)-1]
	}
	cget := func(col string) any {
		if served == nil {
			return nil
		}
		return served.cols[col]
	}
	cstr := func(col string) string { s, _ := cget(col).(string); return s }
	cnum := func(col string) (float64, bool) { return number(cget(col)) }
	cattr := func(name string) any {
		if served == nil {
			return nil
		}
		return served.attr(name)
	}

	// Status, as the client saw it.
	httpStatus := 0
	if n, ok := srv.num("http_status"); ok {
		httpStatus = int(n)
	}
	d.OK = srv.Status != "error" && httpStatus < 400
	d.StatusLine = statusText(httpStatus)
	outcome, _ := srv.attr(sa.Outcome).(string)
	errType := srv.str("error_type")
	msg := srv.str("status_message")
	if msg == "" && served != nil && served.Status == "error" {
		msg = served.str("status_message")
	}
	if !d.OK || errType != "" {
		var parts []string
		if errType != "" {
			parts = append(parts, errorWords(errType))
		}
		if msg != "" {
			parts = append(parts, msg)
		}
		d.ErrorLine = strings.Join(parts, ": ")
	}

	model := srv.str("request_model")
	if model == "" {
		model = cstr("request_model")
	}
	servedModel := cstr("response_model")

	// Stream is what the client asked: the SERVER span's loom.request.stream
	// (set even for a call refused before any upstream); a CLIENT span says
	// what went upstream, which is the same for any call that got there.
	stream, streamKnown := srv.boolean("stream")
	if !streamKnown && served != nil {
		stream, streamKnown = served.boolean("stream")
	}
	streamText := "–"
	if streamKnown {
		streamText = yesNo(stream)
	}

	var g []factGroup
	g = append(g, factGroup{Title: "Model", Facts: compact(
		fact{Key: "model", Label: "Model asked", Value: dash(model)},
		fact{Key: "response_model", Label: "Model served", Value: dash(servedModel), Hint: "gen_ai.response.model: the model the provider says answered"},
		fact{Key: "upstream_model", Label: "Upstream model", Value: cstr("request_model"), Hint: "the model name sent to the deployment"},
		fact{Key: "fallback", Label: "Fallback of", Value: strAttr(cattr(sa.UpstreamFallbackModel)), Hint: "the tenant model whose deployment served, a fallback of the model asked"},
		fact{Key: "deployment", Label: "Deployment", Value: dash(cstr("deployment"))},
		fact{Key: "provider", Label: "Provider", Value: dash(cstr("provider"))},
		fact{Key: "server", Label: "Upstream server", Value: hostPort(cstr("server_address"), cattr(sa.ServerPort))},
		fact{Key: "operation", Label: "Operation", Value: dash(srv.Name)},
	)})

	result := []fact{
		{Key: "status", Label: "Status", Value: d.StatusLine + " · " + okWord(d.OK), Bad: !d.OK},
		{Key: "outcome", Label: "Outcome", Value: outcomeWords(outcome), Hint: "loom.outcome " + outcome},
	}
	if errType != "" {
		result = append(result, fact{Key: "error_type", Label: "Error type", Value: errType, Bad: true})
	}
	if d.ErrorLine != "" {
		result = append(result, fact{Key: "error", Label: "Error", Value: d.ErrorLine, Bad: true})
	}
	if fr := strs(cget("finish_reasons")); len(fr) > 0 {
		result = append(result, fact{Key: "finish_reasons", Label: "Finish reason", Value: strings.Join(fr, ", ")})
	}
	if v, _ := srv.boolean("client_disconnected"); v {
		result = append(result, fact{Key: "client_disconnected", Label: "Client", Value: "disconnected before the end", Bad: true})
	}
	if v, _ := cattr(sa.Drained).(bool); v {
		complete, _ := cattr(sa.DrainComplete).(bool)
		result = append(result, fact{Key: "drained", Label: "Drained", Value: "Loom read the upstream on after the client left; reached the end: " + yesNo(complete)})
	}
	g = append(g, factGroup{Title: "Result", Facts: result})

	usage := []fact{}
	tok := func(key, label, col, attr, hint string) {
		v, ok := cnum(col)
		if !ok && attr != "" {
			v, ok = number(cattr(attr))
		}
		if ok {
			usage = append(usage, fact{Key: key, Label: label, Value: tokens(v), Hint: hint})
		}
	}
	tok("input_tokens", "Input tokens", "input_tokens", "", "prompt tokens, cached ones included")
	tok("cached_tokens", "Cached input", "cache_read_tokens", "", "input tokens read from the provider's prompt cache (part of the input)")
	tok("cache_write_tokens", "Cache writes", "", sa.GenAIUsageCacheCreationInputTokens, "input tokens written to the prompt cache (part of the input)")
	tok("output_tokens", "Output tokens", "output_tokens", "", "completion tokens, reasoning included")
	tok("reasoning_tokens", "Reasoning", "reasoning_tokens", "", "output tokens spent reasoning (part of the output)")
	tok("total_tokens", "Total tokens", "total_tokens", "", "")
	if len(usage) == 0 {
		usage = append(usage, fact{Key: "tokens", Label: "Tokens", Value: "none recorded"})
	}
	usage = append(usage, fact{Key: "usage_source", Label: "Usage", Value: usageWords(cstr("usage_source"), cattr(sa.UsageInjected))})
	cost := "not known"
	if c := cstr("cost_exact"); c != "" {
		cost = c
		if cur := cstr("cost_currency"); cur != "" {
			cost += " " + cur
		}
	}
	usage = append(usage, fact{Key: "cost", Label: "Cost", Value: cost, Hint: "as stored, exact; only the attempt that served is priced"})
	if p := cstr("price_id"); p != "" {
		usage = append(usage, fact{Key: "price_id", Label: "Price entry", Value: p})
	}
	g = append(g, factGroup{Title: "Tokens and cost", Facts: usage})

	timing := []fact{
		{Key: "latency", Label: "Latency", Value: millis(srv.durationMs()), Hint: "from the request read to the last byte sent"},
	}
	if v, ok := cnum("time_to_first_chunk_ms"); ok {
		timing = append(timing, fact{Key: "ttfc", Label: "Time to first chunk", Value: millis(v), Hint: "from the request sent upstream to the first event back"})
	} else {
		timing = append(timing, fact{Key: "ttfc", Label: "Time to first chunk", Value: "–"})
	}
	if v, ok := srv.num("overhead_ms"); ok {
		timing = append(timing, fact{Key: "overhead", Label: "Loom overhead", Value: millis(v), Hint: "time Loom itself spent on the call"})
	}
	if served != nil {
		timing = append(timing, fact{Key: "upstream_time", Label: "Upstream time", Value: millis(served.durationMs()), Hint: "the serving attempt, request sent to response read"})
	}
	timing = append(timing, fact{Key: "stream", Label: "Stream", Value: streamText, Hint: "whether the client asked for a stream"})
	if v, ok := cnum("chunks"); ok {
		timing = append(timing, fact{Key: "chunks", Label: "Chunks received", Value: tokens(v)})
	}
	if v, ok := number(srv.attr(sa.ChunksSent)); ok {
		timing = append(timing, fact{Key: "chunks_sent", Label: "Chunks sent", Value: tokens(v)})
	}
	g = append(g, factGroup{Title: "Timing", Facts: timing})

	attemptsText := "none (refused before any upstream)"
	if n := len(clients); n > 0 {
		failed := 0
		for _, c := range clients[:n-1] {
			if c.Status == "error" || c.str("error_type") != "" {
				failed++
			}
		}
		attemptsText = strconv.Itoa(n)
		if failed > 0 {
			attemptsText += fmt.Sprintf(" (%d failed before one %s)", failed, map[bool]string{true: "served", false: "was the last"}[d.OK])
		}
	}
	g = append(g, factGroup{Title: "Call", Facts: compact(
		fact{Key: "time", Label: "Time", Value: srv.Start.UTC().Format("2006-01-02 15:04:05.000") + " UTC"},
		fact{Key: "tenant", Label: "Tenant", Value: dash(srv.str("tenant_id"))},
		fact{Key: "key_id", Label: "Key id", Value: dash(srv.str("api_key_id")), Hint: "the key's id, never the key"},
		fact{Key: "request_id", Label: "Request id", Value: id, Hint: "the call's trace id"},
		fact{Key: "response_id", Label: "Response id", Value: cstr("response_id"), Hint: "the provider's id for its answer"},
		fact{Key: "attempts", Label: "Attempts", Value: attemptsText},
	)})
	d.Groups = g

	// The one-line summary.
	summary := []string{dash(model)}
	if servedModel != "" && servedModel != model {
		summary[0] += " → " + servedModel
	}
	summary = append(summary, millis(srv.durationMs()))
	if v, ok := cnum("total_tokens"); ok {
		summary = append(summary, tokens(v)+" tokens")
	}
	if c := cstr("cost_exact"); c != "" {
		summary = append(summary, cost)
	}
	if stream {
		summary = append(summary, "streamed")
	}
	d.Title = strings.Join(summary, " · ")

	for _, c := range clients {
		a := attemptView{N: c.attempt(), Deployment: dash(c.str("deployment")), Provider: dash(c.str("provider")),
			Server: hostPort(c.str("server_address"), c.attr(sa.ServerPort)), Model: dash(c.str("request_model")),
			Offset: "+" + millis(float64(c.Start.Sub(srv.Start))/float64(time.Millisecond)), Duration: millis(c.durationMs())}
		if n, ok := c.num("http_status"); ok {
			a.Status = statusText(int(n))
		} else {
			a.Status = "no answer"
		}
		et := c.str("error_type")
		failed := c.Status == "error" || et != ""
		switch {
		case failed:
			a.Failed = true
			words := []string{"failed"}
			if et != "" {
				words = append(words, errorWords(et))
			}
			reason := strAttr(c.attr(sa.UpstreamFailureReason))
			if reason == "" {
				reason = c.str("status_message")
			}
			// A reason that only repeats the status says nothing more.
			if reason != "" && !strings.Contains(strings.Join(words, ": "), reason) {
				words = append(words, reason)
			}
			a.Result = strings.Join(words, ": ")
		case c == served:
			a.Served = true
			a.Result = "served"
		default:
			a.Result = "moved on"
		}
		d.Attempts = append(d.Attempts, a)
	}

	d.Timeline = buildTimeline(srv, clients, spans)
	d.Chats = buildChats(contents, spans)
	d.Curl = buildCurl(srv, served, contents, model, stream)
	for _, sp := range spans {
		d.Spans = append(d.Spans, rawSpan{SpanID: sp.SpanID, Name: sp.Name, Kind: strings.ToUpper(sp.Kind),
			Duration: millis(sp.durationMs()), Fields: rawFields(sp)})
	}
	return d
}

// compact drops facts with nothing to say.
func compact(fs ...fact) []fact {
	out := fs[:0]
	for _, f := range fs {
		if f.Value != "" {
			out = append(out, f)
		}
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "error"
}

func strAttr(v any) string {
	s, _ := v.(string)
	return s
}

func strs(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func hostPort(host string, port any) string {
	if host == "" {
		return ""
	}
	if p, ok := number(port); ok && p > 0 {
		return host + ":" + strconv.Itoa(int(p))
	}
	return host
}

// statusText is an HTTP status for people: "404 Not Found".
func statusText(code int) string {
	if code == 0 {
		return "no status"
	}
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// errorWords says an error.type in words; unknown ones are shown as they
// are stored, underscores read as spaces.
func errorWords(t string) string {
	known := map[string]string{
		"model_not_found":           "model not found",
		"invalid_api_key":           "invalid API key",
		"timeout":                   "the upstream timed out",
		"connect":                   "could not connect to the upstream",
		"upstream_reset":            "the upstream reset the connection",
		"upstream_failed":           "no usable answer from the upstream",
		"client_disconnected":       "the client disconnected",
		"rate_limit_exceeded":       "rate limit exceeded",
		"deployment_share_exceeded": "the tenant's share of the deployment is in use",
		"recording_unavailable":     "Loom could not record the call",
		"request_too_large":         "the request body was too large",
	}
	if w, ok := known[t]; ok {
		return w
	}
	code := strings.TrimPrefix(t, "http_")
	if n, err := strconv.Atoi(code); err == nil && n >= 100 && n < 600 {
		return "the upstream answered " + statusText(n)
	}
	return strings.ReplaceAll(t, "_", " ")
}

func outcomeWords(o string) string {
	switch o {
	case "ok":
		return "completed"
	case "rejected":
		return "refused by Loom"
	case "rate_limited":
		return "refused by a rate limit"
	case "upstream_error":
		return "the upstream answered with an error"
	case "upstream_failed":
		return "no usable answer from the upstream"
	case "client_disconnected":
		return "the client disconnected"
	case "":
		return "–"
	}
	return o
}

func usageWords(source string, injected any) string {
	var s string
	switch source {
	case "provider":
		s = "reported by the provider"
	case "estimated":
		s = "estimated by Loom (the provider reported none)"
	case "":
		return "none recorded"
	default:
		s = source
	}
	if v, _ := injected.(bool); v {
		s += "; Loom asked for it on the client's behalf"
	}
	return s
}

// millis writes a duration in milliseconds at a precision people read:
// 0.16 ms, 1.2 ms, 840 ms, 2.10 s, 1 min 3.2 s.
func millis(ms float64) string {
	switch a := math.Abs(ms); {
	case a < 1:
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	case a < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	case a < 1000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	case a < 60_000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
	default:
		m := math.Floor(ms / 60_000)
		return strconv.FormatFloat(m, 'f', 0, 64) + " min " + strconv.FormatFloat((ms-m*60_000)/1000, 'f', 1, 64) + " s"
	}
}

// rawFields is every stored column of a span, the jsonb attributes and
// resource flattened to attributes.<key> and resource.<key>.
func rawFields(sp *spanRow) []field {
	var out []field
	for _, name := range sp.order {
		v := sp.cols[name]
		switch name {
		case "cost_exact":
			continue
		case "cost":
			v = sp.cols["cost_exact"]
		case "attributes", "resource":
			out = append(out, flatten(name, v)...)
			continue
		}
		out = append(out, field{Name: name, Value: format(v)})
	}
	return out
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

// tokens writes a count with thousands separators: 1,234.
func tokens(v float64) string { return groupDigits(strconv.FormatFloat(math.Round(v), 'f', 0, 64)) }
