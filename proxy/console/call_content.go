package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/internal/json"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// The call page's conversation and its "copy as curl": both read the
// captured content (loom.span_content, the GenAI conventions' messages),
// which exists only for tenants whose policy captures it.

// contentRow is one span's captured messages, as stored (JSON text).
type contentRow struct {
	SpanID        string
	Input, Output []byte
}

// callContentSQL is a trace's captured prompts and completions.
const callContentSQL = `
SELECT span_id, input_messages::text, output_messages::text
FROM loom.span_content WHERE trace_id = $1 ORDER BY start_time, span_id`

func readContent(r *http.Request, tx pgx.Tx, id string) ([]contentRow, error) {
	rows, err := tx.Query(r.Context(), callContentSQL, id)
	if err != nil {
		return nil, fmt.Errorf("read content: %w", err)
	}
	defer rows.Close()
	var out []contentRow
	for rows.Next() {
		var c contentRow
		var in, outp *string
		if err := rows.Scan(&c.SpanID, &in, &outp); err != nil {
			return nil, fmt.Errorf("read content: %w", err)
		}
		if in != nil {
			c.Input = []byte(*in)
		}
		if outp != nil {
			c.Output = []byte(*outp)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read content: %w", err)
	}
	return out, nil
}

// message and part are the GenAI conventions' gen_ai.input.messages and
// gen_ai.output.messages, as proxy/tracing writes them.
type message struct {
	Role         string `json:"role"`
	Parts        []part `json:"parts"`
	Name         string `json:"name"`
	FinishReason string `json:"finish_reason"`
}

type part struct {
	Type      string  `json:"type"`
	Content   *string `json:"content"`
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Arguments string  `json:"arguments"`
	Response  string  `json:"response"`
}

func parseMessages(b []byte) ([]message, bool) {
	if len(b) == 0 {
		return nil, false
	}
	var msgs []message
	if err := json.Unmarshal(b, &msgs); err != nil {
		return nil, false
	}
	return msgs, true
}

// Bounds of the rendered conversation: a message part longer than
// collapseBytes (or collapseLines lines) is folded under a preview, and no
// more than maxChatBytes of text is rendered per page.
const (
	collapseBytes = 2 << 10
	collapseLines = 24
	previewBytes  = 240
	maxChatBytes  = 256 << 10
)

type chatView struct {
	SpanID string
	// Truncated: Loom cut the content at the tenant's cap when it
	// recorded it. Cut: this page rendered only the first maxChatBytes.
	Truncated bool
	Cut       string
	// Raw is the stored JSON when it is not the conventions' shape.
	Raw      string
	Messages []chatMessage
}

type chatMessage struct {
	Role, Name, FinishReason string
	// Output marks the completion (gen_ai.output.messages).
	Output bool
	Parts  []chatPart
}

type chatPart struct {
	// Kind is text, tool_call, tool_result or other.
	Kind, Text, Name, ID string
	// Long folds Text under Preview and Size.
	Long          bool
	Preview, Size string
}

// chatBudget counts the bytes rendered so far.
type chatBudget struct {
	left int
	cut  int
}

// take is s within what is left of the budget; it counts what it drops.
func (b *chatBudget) take(s string) string {
	if len(s) <= b.left {
		b.left -= len(s)
		return s
	}
	kept := shorten(s, b.left)
	b.cut += len(s) - len(kept)
	b.left = 0
	return kept
}

func buildChats(contents []contentRow, spans []*spanRow) []chatView {
	truncated := map[string]bool{}
	for _, sp := range spans {
		if v, _ := sp.attr(sa.ContentTruncated).(bool); v {
			truncated[sp.SpanID] = true
		}
	}
	budget := &chatBudget{left: maxChatBytes}
	var out []chatView
	for _, c := range contents {
		v := chatView{SpanID: c.SpanID, Truncated: truncated[c.SpanID]}
		for _, side := range []struct {
			b      []byte
			output bool
		}{{c.Input, false}, {c.Output, true}} {
			if len(side.b) == 0 {
				continue
			}
			msgs, ok := parseMessages(side.b)
			if !ok {
				v.Raw += budget.take(indentJSON(side.b)) + "\n"
				continue
			}
			for _, m := range msgs {
				v.Messages = append(v.Messages, chatMsg(m, side.output, budget))
			}
		}
		if budget.cut > 0 {
			v.Cut = "Only the first " + bytesText(maxChatBytes) + " of the conversation are shown here; " +
				bytesText(budget.cut) + " more are in the raw content."
		}
		out = append(out, v)
	}
	return out
}

func chatMsg(m message, output bool, budget *chatBudget) chatMessage {
	cm := chatMessage{Role: m.Role, Name: m.Name, FinishReason: m.FinishReason, Output: output}
	for _, p := range m.Parts {
		var cp chatPart
		switch p.Type {
		case "text":
			cp.Kind = "text"
			if p.Content != nil {
				cp.Text = *p.Content
			}
		case "tool_call":
			cp.Kind, cp.Name, cp.ID = "tool_call", p.Name, p.ID
			cp.Text = indentJSON([]byte(p.Arguments))
		case "tool_call_response":
			cp.Kind, cp.ID = "tool_result", p.ID
			cp.Text = indentJSON([]byte(p.Response))
		default:
			cp.Kind, cp.Name = "other", p.Type
			if p.Content != nil {
				cp.Text = *p.Content
			}
		}
		cp.Text = budget.take(cp.Text)
		if len(cp.Text) > collapseBytes || strings.Count(cp.Text, "\n") >= collapseLines {
			cp.Long = true
			cp.Preview = shorten(firstLines(cp.Text, 3), previewBytes)
			if len(cp.Preview) < len(cp.Text) {
				cp.Preview += " …"
			}
			lines := strings.Count(cp.Text, "\n") + 1
			cp.Size = bytesText(len(cp.Text)) + ", " + strconv.Itoa(lines) + map[bool]string{true: " line", false: " lines"}[lines == 1]
		}
		cm.Parts = append(cm.Parts, cp)
	}
	return cm
}

func firstLines(s string, n int) string {
	i := 0
	for range n {
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 {
			return s
		}
		i += j + 1
	}
	return strings.TrimRight(s[:i], "\n")
}

// shorten is s cut to at most n bytes, never inside a UTF-8 sequence.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func bytesText(n int) string {
	switch {
	case n < 1<<10:
		return strconv.Itoa(n) + " bytes"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	default:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	}
}

// indentJSON lays b out over lines, two spaces an indent, keeping the
// members' order and every scalar's bytes as they are; text that is not
// JSON comes back unchanged.
func indentJSON(b []byte) string {
	if len(b) == 0 || !json.Valid(b) {
		return string(b)
	}
	out, ok := appendIndented(nil, b, 0)
	if !ok {
		return string(b)
	}
	return string(out)
}

// appendIndented writes the JSON value at the start of v (surrounding space
// allowed); false on a syntax error.
func appendIndented(dst, v []byte, depth int) ([]byte, bool) {
	v = []byte(strings.TrimSpace(string(v)))
	if len(v) == 0 {
		return dst, false
	}
	nl := func(d int) {
		dst = append(dst, '\n')
		for range d {
			dst = append(dst, ' ', ' ')
		}
	}
	switch v[0] {
	case '{':
		var m json.Members
		if !m.Reset(v) {
			return dst, false
		}
		n := 0
		dst = append(dst, '{')
		for m.Next() {
			if n > 0 {
				dst = append(dst, ',')
			}
			nl(depth + 1)
			dst = append(dst, m.QuotedKey()...)
			dst = append(dst, ':', ' ')
			var ok bool
			if dst, ok = appendIndented(dst, m.Value(), depth+1); !ok {
				return dst, false
			}
			n++
		}
		if m.Err() != nil {
			return dst, false
		}
		if n > 0 {
			nl(depth)
		}
		return append(dst, '}'), true
	case '[':
		var e json.Elements
		if !e.Reset(v) {
			return dst, false
		}
		n := 0
		dst = append(dst, '[')
		for e.Next() {
			if n > 0 {
				dst = append(dst, ',')
			}
			nl(depth + 1)
			var ok bool
			if dst, ok = appendIndented(dst, e.Value(), depth+1); !ok {
				return dst, false
			}
			n++
		}
		if e.Err() != nil {
			return dst, false
		}
		if n > 0 {
			nl(depth)
		}
		return append(dst, ']'), true
	}
	return append(dst, v...), true
}

// curlView is a curl command that replays the call against the gateway:
// the key is a shell variable, never a key, and no upstream credential is
// ever part of it (the console has none).
type curlView struct {
	Command string
	// FromContent: the body was rebuilt from the captured prompt; else it
	// is a minimal body with the model.
	FromContent bool
	Note        string
}

// ordered JSON for the rebuilt request bodies: members stay in the order
// an API's documentation shows them.
type jsonObject []jsonMember

type jsonMember struct {
	Key   string
	Value any
}

func (o *jsonObject) set(k string, v any) { *o = append(*o, jsonMember{k, v}) }

func appendJSONValue(dst []byte, v any, depth int) []byte {
	nl := func(d int) {
		dst = append(dst, '\n')
		for range d {
			dst = append(dst, ' ', ' ')
		}
	}
	switch x := v.(type) {
	case jsonObject:
		dst = append(dst, '{')
		for i, m := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			nl(depth + 1)
			dst = json.AppendQuote(dst, m.Key)
			dst = append(dst, ':', ' ')
			dst = appendJSONValue(dst, m.Value, depth+1)
		}
		if len(x) > 0 {
			nl(depth)
		}
		return append(dst, '}')
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			nl(depth + 1)
			dst = appendJSONValue(dst, e, depth+1)
		}
		if len(x) > 0 {
			nl(depth)
		}
		return append(dst, ']')
	case string:
		return json.AppendQuote(dst, x)
	case rawObject:
		if out, ok := appendIndented(dst, []byte(x), depth); ok {
			return out
		}
		return json.AppendQuote(dst, string(x))
	case bool:
		return strconv.AppendBool(dst, x)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case float64:
		return strconv.AppendFloat(dst, x, 'g', -1, 64)
	}
	return append(dst, "null"...)
}

// maxCurlBody bounds the body written into the command: past it the page
// offers a minimal body instead of a command nobody can paste.
const maxCurlBody = 64 << 10

func buildCurl(srv, served *spanRow, contents []contentRow, model string, stream bool) curlView {
	// The SERVER span is named "METHOD route".
	method, route, _ := strings.Cut(srv.Name, " ")
	if r, _ := srv.attr(sa.HTTPRoute).(string); r != "" {
		route = r
	}
	if method != "POST" || !strings.HasPrefix(route, "/v1/") || strings.Contains(route, "{") {
		return curlView{Note: "Only a POST of a completion, embedding or response can be replayed; this call was " + dash(srv.Name) + "."}
	}
	var input []message
	var inputSpan string
	for _, c := range contents {
		if msgs, ok := parseMessages(c.Input); ok && len(msgs) > 0 {
			input, inputSpan = msgs, c.SpanID
		}
	}
	body := requestBody(route, model, stream, input, served)
	cv := curlView{FromContent: input != nil}
	b := appendJSONValue(nil, body, 0)
	if len(b) > maxCurlBody {
		b = appendJSONValue(nil, requestBody(route, model, stream, nil, served), 0)
		cv.FromContent = false
		cv.Note = "The captured prompt is larger than " + bytesText(maxCurlBody) + ": the body below is a minimal one with the model."
	} else if cv.FromContent {
		cv.Note = "The body is rebuilt from the captured prompt (span " + inputSpan + "), not the exact bytes sent."
	} else {
		cv.Note = "No prompt was captured for this call: the body is a minimal one with the model."
	}
	if served != nil && cv.FromContent {
		if cut, _ := served.attr(sa.ContentTruncated).(bool); cut {
			cv.Note += " The captured prompt was cut at the tenant's size cap."
		}
	}
	path := strings.TrimPrefix(route, "/v1")
	var cmd strings.Builder
	cmd.WriteString(`curl "$OPENAI_BASE_URL` + path + `"`)
	cmd.WriteString(" \\\n  -H \"Authorization: Bearer $OPENAI_API_KEY\"")
	cmd.WriteString(" \\\n  -H \"Content-Type: application/json\"")
	if stream {
		cmd.WriteString(" \\\n  -N")
	}
	cmd.WriteString(" \\\n  -d " + shellQuote(string(b)))
	cv.Command = cmd.String()
	return cv
}

// shellQuote quotes s for a POSIX shell: in single quotes, each single
// quote inside closed, escaped with a backslash and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// requestBody rebuilds a request for route from the captured messages (nil:
// a minimal body), with the request parameters the CLIENT span recorded.
func requestBody(route, model string, stream bool, msgs []message, params *spanRow) jsonObject {
	var body jsonObject
	body.set("model", model)
	num := func(attr string) (float64, bool) {
		if params == nil {
			return 0, false
		}
		return number(params.attr(attr))
	}
	text := func(m message) string {
		var b strings.Builder
		for _, p := range m.Parts {
			if p.Type == "text" && p.Content != nil {
				b.WriteString(*p.Content)
			}
		}
		return b.String()
	}
	switch route {
	case "/v1/embeddings":
		in := "Hello"
		if len(msgs) > 0 {
			in = text(msgs[0])
		}
		body.set("input", in)
		return body
	case "/v1/completions":
		in := "Hello"
		if len(msgs) > 0 {
			in = text(msgs[len(msgs)-1])
		}
		body.set("prompt", in)
	case "/v1/responses":
		var items []any
		for _, m := range msgs {
			for _, p := range m.Parts {
				switch p.Type {
				case "tool_call":
					items = append(items, jsonObject{{"type", "function_call"}, {"call_id", p.ID}, {"name", p.Name}, {"arguments", p.Arguments}})
				case "tool_call_response":
					items = append(items, jsonObject{{"type", "function_call_output"}, {"call_id", p.ID}, {"output", p.Response}})
				}
			}
			if t := text(m); t != "" {
				items = append(items, jsonObject{{"role", m.Role}, {"content", t}})
			}
		}
		if items == nil {
			items = []any{jsonObject{{"role", "user"}, {"content", "Hello"}}}
		}
		body.set("input", items)
		if v, ok := num(sa.GenAIRequestMaxTokens); ok {
			body.set("max_output_tokens", int64(v))
		}
	case "/v1/messages", "/v1/messages/count_tokens":
		var system []string
		var items []any
		for _, m := range msgs {
			if m.Role == "system" {
				system = append(system, text(m))
				continue
			}
			var blocks []any
			if t := text(m); t != "" {
				blocks = append(blocks, jsonObject{{"type", "text"}, {"text", t}})
			}
			for _, p := range m.Parts {
				switch p.Type {
				case "tool_call":
					blocks = append(blocks, jsonObject{{"type", "tool_use"}, {"id", p.ID}, {"name", p.Name}, {"input", toolInput(p.Arguments)}})
				case "tool_call_response":
					blocks = append(blocks, jsonObject{{"type", "tool_result"}, {"tool_use_id", p.ID}, {"content", p.Response}})
				}
			}
			role := m.Role
			if role == "tool" {
				role = "user"
			}
			if blocks != nil {
				items = append(items, jsonObject{{"role", role}, {"content", blocks}})
			}
		}
		if items == nil {
			items = []any{jsonObject{{"role", "user"}, {"content", "Hello"}}}
		}
		if route == "/v1/messages" {
			mt := int64(1024)
			if v, ok := num(sa.GenAIRequestMaxTokens); ok {
				mt = int64(v)
			}
			body.set("max_tokens", mt)
		}
		if len(system) > 0 {
			body.set("system", strings.Join(system, "\n"))
		}
		body.set("messages", items)
	default: // /v1/chat/completions and anything chat-shaped
		var items []any
		for _, m := range msgs {
			item := jsonObject{{"role", m.Role}}
			var calls []any
			var result *part
			for i, p := range m.Parts {
				switch p.Type {
				case "tool_call":
					calls = append(calls, jsonObject{{"id", p.ID}, {"type", "function"},
						{"function", jsonObject{{"name", p.Name}, {"arguments", p.Arguments}}}})
				case "tool_call_response":
					result = &m.Parts[i]
				}
			}
			switch {
			case result != nil:
				item = jsonObject{{"role", "tool"}, {"tool_call_id", result.ID}, {"content", result.Response}}
			default:
				if m.Name != "" {
					item.set("name", m.Name)
				}
				t := text(m)
				if calls != nil && t == "" {
					item.set("content", nil)
				} else {
					item.set("content", t)
				}
				if calls != nil {
					item.set("tool_calls", calls)
				}
			}
			items = append(items, item)
		}
		if items == nil {
			items = []any{jsonObject{{"role", "user"}, {"content", "Hello"}}}
		}
		body.set("messages", items)
		if v, ok := num(sa.GenAIRequestMaxTokens); ok {
			body.set("max_tokens", int64(v))
		}
		if v, ok := num(sa.GenAIRequestChoiceCount); ok {
			body.set("n", int64(v))
		}
		if v, ok := num(sa.GenAIRequestSeed); ok {
			body.set("seed", int64(v))
		}
	}
	if v, ok := num(sa.GenAIRequestTemperature); ok {
		body.set("temperature", v)
	}
	if v, ok := num(sa.GenAIRequestTopP); ok {
		body.set("top_p", v)
	}
	if stream {
		body.set("stream", true)
	}
	return body
}

// toolInput is a tool call's arguments as an object for Anthropic's
// tool_use.input; arguments that are not an object stay a string.
func toolInput(args string) any {
	var m map[string]any
	if json.Unmarshal([]byte(args), &m) == nil {
		return rawObject(args)
	}
	return args
}

// rawObject is a JSON object written as it is.
type rawObject string
