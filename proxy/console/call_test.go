package console_test

import (
	"context"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// callPageCalls are the calls the call page's tests add to the fixture,
// all tenant A's, older than the fixture's own and interleaved with
// tenant B's (at -12 and -15 minutes) so that previous/next would cross
// into B's calls if row-level security did not confine them:
//   - FailedOver (-13.5 min): a streamed call whose first attempt (east)
//     failed with a 503 and whose second (west) served, with cache and
//     reasoning tokens, a cost, and captured content with a tool call;
//   - StreamedRefusal (-16 min): a streamed request refused 404 for its
//     model before any upstream, so it has no CLIENT span.
type callPageCalls struct {
	FailedOver, StreamedRefusal string
}

// span is one row of loom.spans as these tests write it.
type cpSpan struct {
	trace, id, parent, kind, name, status, statusMsg string
	start                                            time.Time
	durMs                                            float64
	model, respModel, deployment, provider, errType  string
	httpStatus, attempt, chunks                      int
	in, out, cached, reasoning, total                int64
	stream                                           bool
	ttfcMs, overMs                                   float64
	usageSource, cost, currency                      string
	attrs                                            string
}

func cpInsertSpan(ctx context.Context, t *testing.T, pool *pgxpool.Pool, tenant, key string, s cpSpan) {
	t.Helper()
	null := func(v any, set bool) any {
		if !set {
			return nil
		}
		return v
	}
	if s.attrs == "" {
		s.attrs = "{}"
	}
	_, err := pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind, status_code,
    status_message, service_name, tenant_id, api_key_id, provider, request_model, response_model, deployment,
    error_type, http_status, upstream_attempt, chunks, input_tokens, output_tokens, cache_read_tokens,
    reasoning_tokens, total_tokens, stream, time_to_first_chunk_ms, overhead_ms, usage_source, cost,
    cost_currency, server_address, attributes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'loom', $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
    $22, $23, $24, $25, $26, $27, $28, $29, $30::numeric, $31, $32, $33::jsonb)`,
		s.trace, s.id, null(s.parent, s.parent != ""), s.start, s.start.Add(time.Duration(s.durMs*float64(time.Millisecond))),
		s.durMs, s.name, s.kind, s.status, null(s.statusMsg, s.statusMsg != ""), tenant, key,
		null(s.provider, s.provider != ""), null(s.model, s.model != ""), null(s.respModel, s.respModel != ""),
		null(s.deployment, s.deployment != ""), null(s.errType, s.errType != ""), null(s.httpStatus, s.httpStatus != 0),
		null(s.attempt, s.attempt != 0), null(s.chunks, s.chunks != 0), null(s.in, s.in != 0), null(s.out, s.out != 0),
		null(s.cached, s.cached != 0), null(s.reasoning, s.reasoning != 0), null(s.total, s.total != 0), s.stream,
		null(s.ttfcMs, s.ttfcMs != 0), null(s.overMs, s.overMs != 0), null(s.usageSource, s.usageSource != ""),
		null(s.cost, s.cost != ""), null(s.currency, s.currency != ""), null("10.0.0.7", s.kind == "client"), s.attrs)
	if err != nil {
		t.Fatal(err)
	}
}

// toolArgs is the captured tool call's arguments, as the model sent them:
// compact, in its own member order.
const cpToolArgs = `{"city":"Paris","unit":"celsius","days":[1,2]}`

// longAnswer is a captured answer long enough to be folded.
var cpLongAnswer = strings.Repeat("The shuttle carries the weft across the warp. ", 100)

func addCallPageCalls(t *testing.T, f *fixture) callPageCalls {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC()
	var c callPageCalls

	// The failed-over call.
	c.FailedOver = hexID(16)
	start := now.Add(-13*time.Minute - 30*time.Second)
	server, east, west := hexID(8), hexID(8), hexID(8)
	cpInsertSpan(ctx, t, f.pool, "acme", "acme-key", cpSpan{trace: c.FailedOver, id: server, kind: "server",
		name: "POST /v1/chat/completions", status: "unset", start: start, durMs: 2100, model: modelA, httpStatus: 200,
		stream: true, overMs: 1.2, attrs: `{"http.route": "/v1/chat/completions", "loom.outcome": "ok", "loom.chunks.sent": 41, "loom.upstream.attempts": 2}`})
	cpInsertSpan(ctx, t, f.pool, "acme", "acme-key", cpSpan{trace: c.FailedOver, id: east, parent: server, kind: "client",
		name: "chat " + modelA, status: "error", statusMsg: "upstream answered 503", start: start.Add(time.Millisecond),
		durMs: 300, model: modelA, deployment: "east", provider: "openai", errType: "503", httpStatus: 503, attempt: 1,
		stream: true, attrs: `{"loom.upstream.failure_reason": "upstream answered 503 Service Unavailable", "server.port": 443}`})
	cpInsertSpan(ctx, t, f.pool, "acme", "acme-key", cpSpan{trace: c.FailedOver, id: west, parent: server, kind: "client",
		name: "chat " + modelA, status: "unset", start: start.Add(302 * time.Millisecond), durMs: 1796, model: modelA,
		respModel: modelA + "-2024-07-18", deployment: "west", provider: "openai", httpStatus: 200, attempt: 2,
		chunks: 42, in: 1234, out: 5678, cached: 1000, reasoning: 64, total: 6912, stream: true, ttfcMs: 180,
		overMs: 1.2, usageSource: "provider", cost: "0.004153500000", currency: "USD",
		attrs: `{"server.port": 443, "gen_ai.request.max_tokens": 800, "gen_ai.request.temperature": 0.2, "gen_ai.usage.cache_creation.input_tokens": 12}`})
	in := `[{"role":"system","parts":[{"type":"text","content":"You are a weaver's assistant."}]},
{"role":"user","parts":[{"type":"text","content":"What's the weather in Paris? It's <b>bold</b>"}]},
{"role":"assistant","parts":[{"type":"tool_call","id":"call_1","name":"get_weather","arguments":` + cpQuote(cpToolArgs) + `}]},
{"role":"tool","parts":[{"type":"tool_call_response","id":"call_1","response":"{\"temp\":21}"}]}]`
	out := `[{"role":"assistant","finish_reason":"stop","parts":[{"type":"text","content":` + cpQuote(cpLongAnswer) + `}]}]`
	if _, err := f.pool.Exec(ctx, `INSERT INTO loom.span_content (trace_id, span_id, start_time, tenant_id, input_messages, output_messages)
VALUES ($1, $2, $3, 'acme', $4::jsonb, $5::jsonb)`, c.FailedOver, west, start.Add(302*time.Millisecond), in, out); err != nil {
		t.Fatal(err)
	}

	// The streamed refusal: the SERVER span alone.
	c.StreamedRefusal = hexID(16)
	cpInsertSpan(ctx, t, f.pool, "acme", "acme-key", cpSpan{trace: c.StreamedRefusal, id: hexID(8), kind: "server",
		name: "POST /v1/chat/completions", status: "unset", start: now.Add(-16 * time.Minute), durMs: 0.161109,
		model: "no-such-model", httpStatus: 404, errType: "model_not_found", stream: true, overMs: 0.15,
		attrs: `{"http.route": "/v1/chat/completions", "loom.outcome": "rejected"}`})
	return c
}

// quote is s as a JSON string (s has no characters JSON must escape but
// quotes).
func cpQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

var cpFieldRe = regexp.MustCompile(`(?s)<div data-field="([a-z_]+)"[^>]*><dt>[^<]*</dt><dd[^>]*>([^<]*)</dd></div>`)

// facts are the header's values by data-field, as a person reads them.
func cpFacts(body string) map[string]string {
	m := map[string]string{}
	for _, f := range cpFieldRe.FindAllStringSubmatch(body, -1) {
		m[f[1]] = html.UnescapeString(f[2])
	}
	return m
}

func cpGet(t *testing.T, c *client, path string) string {
	t.Helper()
	code, body, _ := c.do("GET", path, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	return body
}

func TestCallPage_Header_AnswersTheUsersQuestionsInWordsAndUnits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	calls := addCallPageCalls(t, f)
	c := loggedIn(t, f, keyA)
	got := cpFacts(cpGet(t, c, "/console/calls/"+calls.FailedOver))
	want := map[string]string{
		"model":              modelA,
		"response_model":     modelA + "-2024-07-18",
		"deployment":         "west",
		"provider":           "openai",
		"server":             "10.0.0.7:443",
		"status":             "200 OK · ok",
		"outcome":            "completed",
		"input_tokens":       "1,234",
		"cached_tokens":      "1,000",
		"cache_write_tokens": "12",
		"output_tokens":      "5,678",
		"reasoning_tokens":   "64",
		"total_tokens":       "6,912",
		"usage_source":       "reported by the provider",
		"cost":               "0.004153500000 USD",
		"latency":            "2.10 s",
		"ttfc":               "180 ms",
		"overhead":           "1.2 ms",
		"stream":             "yes",
		"chunks":             "42",
		"chunks_sent":        "41",
		"attempts":           "2 (1 failed before one served)",
		"tenant":             "acme",
		"key_id":             "acme-key",
		"request_id":         calls.FailedOver,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.HasSuffix(got["time"], " UTC") {
		t.Errorf("time = %q, want a UTC time", got["time"])
	}
}

func TestCallPage_Attempts_EachListedWithWhyItFailed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	calls := addCallPageCalls(t, f)
	body := cpGet(t, loggedIn(t, f, keyA), "/console/calls/"+calls.FailedOver)
	rows := regexp.MustCompile(`(?s)<tr class="([a-z]*)" data-attempt="(\d)">(.*?)</tr>`).FindAllStringSubmatch(body, -1)
	if len(rows) != 2 {
		t.Fatalf("%d attempt rows, want 2", len(rows))
	}
	if rows[0][1] != "err" || !strings.Contains(rows[0][3], "east") || !strings.Contains(rows[0][3], "503 Service Unavailable") ||
		!strings.Contains(rows[0][3], "upstream answered 503 Service Unavailable") {
		t.Errorf("attempt 1 does not say it failed on east with a 503: %s", rows[0][0])
	}
	if rows[1][1] != "served" || !strings.Contains(rows[1][3], "west") || !strings.Contains(rows[1][3], "served") {
		t.Errorf("attempt 2 does not say it served from west: %s", rows[1][0])
	}
	// The timeline has the SERVER span, both attempts and the first chunk.
	tl := body[strings.Index(body, `id="timeline"`):]
	tl = tl[:strings.Index(tl, "</svg>")]
	if n := strings.Count(tl, "<rect "); n != 3 {
		t.Errorf("%d timeline bars, want 3", n)
	}
	for _, s := range []string{"Attempt 1 · east · 503", "Attempt 2 · west · 200", "first chunk 180 ms"} {
		if !strings.Contains(tl, html.EscapeString(s)) {
			t.Errorf("timeline lacks %q", s)
		}
	}
	if n := strings.Count(tl, `class="tick"`); n < 3 {
		t.Errorf("%d ticks on the time axis, want at least 3", n)
	}
}

// A streamed request refused before any upstream says it was streamed:
// the issue saw "a streamed 404 says Stream: no".
func TestCallPage_StreamedRefusal_SaysStreamYesAndTheErrorInWords(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	calls := addCallPageCalls(t, f)
	body := cpGet(t, loggedIn(t, f, keyA), "/console/calls/"+calls.StreamedRefusal)
	got := cpFacts(body)
	for k, v := range map[string]string{
		"stream": "yes", "status": "404 Not Found · error", "error_type": "model_not_found", "error": "model not found",
		"outcome": "refused by Loom", "attempts": "none (refused before any upstream)", "latency": "0.16 ms",
		"model": "no-such-model", "usage_source": "none recorded", "cost": "not known",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if strings.Contains(body, `id="attempts"`) {
		t.Error("a call that reached no upstream lists attempts")
	}
}

func TestCallPage_Conversation_ChatWithToolCallsAsJSONBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	calls := addCallPageCalls(t, f)
	body := cpGet(t, loggedIn(t, f, keyA), "/console/calls/"+calls.FailedOver)
	i := strings.Index(body, `id="conversation"`)
	if i < 0 {
		t.Fatal("no conversation")
	}
	conv := body[i:strings.Index(body, `id="curl"`)]
	for _, s := range []string{
		`data-role="system"`, `data-role="user"`, `data-role="assistant"`, `data-role="tool"`,
		"Tool call <code>get_weather</code>",
		// The arguments laid out, members in the order the model sent them.
		html.EscapeString("{\n  \"city\": \"Paris\",\n  \"unit\": \"celsius\",\n  \"days\": [\n    1,\n    2\n  ]\n}"),
		"Tool result", html.EscapeString("{\n  \"temp\": 21\n}"),
		// The user's markup is text, never markup.
		"It&#39;s &lt;b&gt;bold&lt;/b&gt;",
		"finished: stop",
	} {
		if !strings.Contains(conv, s) {
			t.Errorf("conversation lacks %q", s)
		}
	}
	// The long answer is folded under a preview.
	if !regexp.MustCompile(`(?s)<details><summary>The shuttle carries.*?KiB, 1 line\)</span></summary><div class="text">The shuttle`).MatchString(conv) {
		t.Errorf("the long answer is not folded:\n%.2000s", conv)
	}
}

func TestCallPage_Conversation_HugeContentCappedAndSaysSo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	huge := strings.Repeat("x", 400<<10)
	if _, err := f.pool.Exec(t.Context(), `UPDATE loom.span_content SET output_messages = jsonb_build_array(jsonb_build_object(
  'role', 'assistant', 'parts', jsonb_build_array(jsonb_build_object('type', 'text', 'content', $2::text))))
WHERE trace_id = $1`, f.ContentTraceID, huge); err != nil {
		t.Fatal(err)
	}
	body := cpGet(t, loggedIn(t, f, keyA), "/console/calls/"+f.ContentTraceID)
	if !strings.Contains(body, `id="conversation-cut"`) || !strings.Contains(body, "Only the first 256.0 KiB") {
		t.Error("the page does not say it cut the conversation")
	}
	if n := strings.Count(body, "x"); n > 300<<10 {
		t.Errorf("%d bytes of the answer rendered, want at most 256 KiB", n)
	}
}

var cpCurlRe = regexp.MustCompile(`(?s)<pre id="curl-command">(.*?)</pre>`)

func TestCallPage_CopyAsCurl_ReplaysTheRequestWithoutASecret(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	calls := addCallPageCalls(t, f)
	c := loggedIn(t, f, keyA)
	for _, tc := range []struct {
		name, trace string
		want        []string
	}{
		{"captured chat with a tool call", calls.FailedOver, []string{
			`curl "$OPENAI_BASE_URL/chat/completions"`, `-H "Authorization: Bearer $OPENAI_API_KEY"`,
			`"model": "gpt-4o-mini"`, `"content": "What'\''s the weather in Paris? It'\''s <b>bold</b>"`,
			`"tool_calls": [`, `"name": "get_weather"`, `"arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\",\"days\":[1,2]}"`,
			`"role": "tool"`, `"tool_call_id": "call_1"`, `"max_tokens": 800`, `"temperature": 0.2`, `"stream": true`}},
		{"no content: a minimal body", calls.StreamedRefusal, []string{
			`"model": "no-such-model"`, `"content": "Hello"`, `"stream": true`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := cpGet(t, c, "/console/calls/"+tc.trace)
			m := cpCurlRe.FindStringSubmatch(body)
			if m == nil {
				t.Fatal("no curl command")
			}
			cmd := html.UnescapeString(m[1])
			for _, s := range tc.want {
				if !strings.Contains(cmd, s) {
					t.Errorf("curl lacks %s:\n%s", s, cmd)
				}
			}
			for _, secret := range []string{keyA, keyB, adminToken, "sk-"} {
				if strings.Contains(cmd, secret) {
					t.Errorf("curl holds %q", secret)
				}
			}
			if !strings.Contains(body, `data-copy-target="#curl-command"`) || !strings.Contains(body, `src="/console/static/copy.js"`) {
				t.Error("no copy button")
			}
		})
	}
}

func cpLinkRe(id string) *regexp.Regexp {
	return regexp.MustCompile(`<a href="([^"]*)" id="` + id + `"`)
}

// link is the href of the page's link with id, "" when there is none.
func cpLink(body, id string) string {
	m := cpLinkRe(id).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func TestCallPage_PrevNext_StepThroughTheFilteredListAndBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	calls := addCallPageCalls(t, f)
	// Tenant A's calls, newest first: A0 A1 A2 (B0) FailedOver (B1) StreamedRefusal.
	a0, a1, a2 := f.TracesA[0], f.TracesA[1], f.TracesA[2]
	c := loggedIn(t, f, keyA)
	for _, tc := range []struct {
		name, from, query, newer, older, back string
	}{
		{"no filter, the newest", a0, "", "", a1, "/console/calls"},
		{"no filter, the middle", a1, "", a0, a2, "/console/calls"},
		{"no filter: B's call between is skipped", a2, "", a1, calls.FailedOver, "/console/calls"},
		{"no filter: and on the other side", calls.FailedOver, "", a2, calls.StreamedRefusal, "/console/calls"},
		{"no filter, the oldest", calls.StreamedRefusal, "", calls.FailedOver, "", "/console/calls"},
		{"failed calls only", a2, "status=error", "", calls.StreamedRefusal, "/console/calls?status=error"},
		{"streamed calls in the last hour", calls.FailedOver, "range=1h&stream=true", a1, calls.StreamedRefusal, "/console/calls?range=1h&stream=true"},
		{"a tenant cannot filter on another tenant", a2, "tenant=globex", a1, calls.FailedOver, "/console/calls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/console/calls/" + tc.from
			q := ""
			if tc.query != "" {
				path += "?" + tc.query
				if tc.query != "tenant=globex" {
					q = "?" + tc.query
				}
			}
			body := cpGet(t, c, path)
			want := func(id, trace string) {
				t.Helper()
				got, w := cpLink(body, id), ""
				if trace != "" {
					w = "/console/calls/" + trace + q
				}
				if got != w {
					t.Errorf("%s = %q, want %q", id, got, w)
				}
			}
			want("newer-call", tc.newer)
			want("older-call", tc.older)
			if got := cpLink(body, "back-to-list"); got != tc.back {
				t.Errorf("back = %q, want %q", got, tc.back)
			}
			for _, b := range f.TracesB {
				if strings.Contains(body, b) {
					t.Errorf("tenant A's page names B's call %s", b)
				}
			}
		})
	}

	t.Run("the admin steps through every tenant", func(t *testing.T) {
		body := cpGet(t, loggedIn(t, f, adminToken), "/console/calls/"+a2)
		if got := cpLink(body, "older-call"); got != "/console/calls/"+f.TracesB[0] {
			t.Errorf("admin's older = %q, want B's %s", got, f.TracesB[0])
		}
		body = cpGet(t, loggedIn(t, f, adminToken), "/console/calls/"+a2+"?tenant=acme")
		if got := cpLink(body, "older-call"); got != "/console/calls/"+calls.FailedOver+"?tenant=acme" {
			t.Errorf("admin's older in tenant acme = %q", got)
		}
	})

	t.Run("another tenant's call is a 404, filter or not", func(t *testing.T) {
		for _, p := range []string{f.TracesB[0], f.TracesB[0] + "?status=ok", f.TracesB[1] + "?tenant=globex"} {
			if code, body, _ := c.do("GET", "/console/calls/"+p, nil); code != http.StatusNotFound || strings.Contains(body, modelB) {
				t.Errorf("A on B's %s: %d", p, code)
			}
		}
	})

	t.Run("a filter that cannot be applied is said, and the links drop it", func(t *testing.T) {
		body := cpGet(t, c, "/console/calls/"+a1+"?status=bogus")
		if !strings.Contains(body, "not valid") || cpLink(body, "back-to-list") != "/console/calls" ||
			cpLink(body, "newer-call") != "" || cpLink(body, "older-call") != "" {
			t.Errorf("a bad filter: back %q newer %q older %q", cpLink(body, "back-to-list"), cpLink(body, "newer-call"), cpLink(body, "older-call"))
		}
	})
}

func TestCallPage_RawAttributes_FoldedPerSpan(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	calls := addCallPageCalls(t, f)
	body := cpGet(t, loggedIn(t, f, keyA), "/console/calls/"+calls.FailedOver)
	raw := body[strings.Index(body, `id="raw"`):]
	if n := strings.Count(raw, `<details class="span"`); n != 3 {
		t.Errorf("%d folded spans, want 3", n)
	}
	for _, s := range []string{"SERVER span POST /v1/chat/completions", "CLIENT span chat " + modelA,
		"attributes.loom.upstream.failure_reason", "<td>cost</td><td>0.004153500000</td>"} {
		if !strings.Contains(raw, html.EscapeString(s)) && !strings.Contains(raw, s) {
			t.Errorf("raw attributes lack %q", s)
		}
	}
	if strings.Index(body, `id="raw"`) < strings.Index(body, `id="facts"`) {
		t.Error("the raw attributes come before the header")
	}
}
