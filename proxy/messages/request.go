// Package messages lets Anthropic API clients (Claude Code, the Anthropic
// SDKs pointed at Loom as ANTHROPIC_BASE_URL) use a model served by an
// OpenAI-compatible deployment. It reads and checks a Messages request the
// way Anthropic does, translates it into an OpenAI chat request, and
// translates the answer back: a chat.completion into a Message, a chat
// completion stream, chunk by chunk, into Anthropic's SSE events. Errors
// come out in Anthropic's shape ({"type":"error","error":{...}}).
//
// It is a pure library: no I/O, no fasthttp. Everything on the per-event
// path appends into the caller's buffers and does not allocate in steady
// state. Every byte it reads comes from an untrusted client or upstream: a
// body it cannot translate faithfully is refused with a 400, never guessed
// at, and nothing it writes is invalid JSON. It never sees credentials.
package messages

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// span is where a value sits in the body; end 0 means absent.
type span struct{ start, end int }

func (s span) of(body []byte) []byte { return body[s.start:s.end] }
func (s span) ok() bool              { return s.end > 0 }

// Request is what Loom read from one Messages request body. Reuse it with
// Parse; AppendChatRequest must get the same body.
type Request struct {
	Model     []byte // decoded
	Stream    bool
	MaxTokens int64
	// Params are the recorded parameters (temperature, top_p, max_tokens,
	// body size), as request.Request fills them for OpenAI routes. Its
	// pointers point into r (a fresh one per call would allocate): they
	// are valid until r's next Parse, so a Record given r.Params must be
	// handed to its Sink before r is reused.
	Params call.Params

	system, messages, tools, toolChoice, stop span
	temperature, topP, userID                 span
	// schema is output_config.format.schema: structured output.
	schema                      span
	temperatureValue, topPValue float64
	noParallel                  bool
	seen                        uint8
	// nTools counts the translated tools: tool_choice is only sent with
	// some, as OpenAI refuses it without.
	nTools int
}

const (
	seenModel uint8 = 1 << iota
	seenMaxTokens
	seenMessages
)

// invalid is a 400 invalid_request_error whose message names the field the
// way Anthropic does ("messages.0.role: ...").
func invalid(format string, args ...any) *apierror.Error {
	return apierror.New(400, TypeInvalidRequest, "", "", fmt.Sprintf(format, args...))
}

func kindName(k json.Kind) string {
	switch k {
	case json.String:
		return "a valid string"
	case json.Number:
		return "a valid number"
	case json.Array:
		return "a valid list"
	case json.Object:
		return "a valid dictionary"
	case json.True, json.False:
		return "a valid boolean"
	}
	return "a value"
}

func wrongType(path string, want json.Kind) *apierror.Error {
	return invalid("%s: Input should be %s", path, kindName(want))
}

// Parse reads body as a Messages request and checks it the way Anthropic
// does: model, max_tokens and messages required, roles user and assistant,
// content a string or a list of typed blocks. It also refuses what a chat
// completion cannot carry (server tools, content blocks with no chat
// counterpart), so that nothing is silently dropped. A returned error is
// the client's fault: it carries an *apierror.Error (errors.As) to answer
// with, in Anthropic's shape (ErrorFromAPIError).
func (r *Request) Parse(body []byte) error {
	model := r.Model[:0]
	*r = Request{Model: model}
	r.Params.RequestBodyBytes = len(body)
	if !json.Valid(body) || !strictStrings(body) {
		return invalid("There was an issue with your request body: the body is not valid JSON.")
	}
	var m json.Members
	if !m.Reset(body) {
		return invalid("There was an issue with your request body: expected a JSON object.")
	}
	var keyBuf [32]byte
	for m.Next() {
		if err := r.member(body, decodedKey(&m, keyBuf[:0]), &m); err != nil {
			return err
		}
	}
	if m.Err() != nil {
		return invalid("There was an issue with your request body: the body is not valid JSON.")
	}
	switch {
	case r.seen&seenModel == 0:
		return invalid("model: Field required")
	case r.seen&seenMaxTokens == 0:
		return invalid("max_tokens: Field required")
	case r.seen&seenMessages == 0:
		return invalid("messages: Field required")
	}
	return nil
}

// strictStrings reports whether no string in body, a document json.Valid
// accepted, holds a raw control character. json.Valid lets them through;
// Anthropic's parser (and encoding/json, and most upstreams) refuse them,
// and the translation copies strings as sent, so the body is refused here
// as Anthropic would refuse it. Bodies without any control byte (compact
// JSON, nearly all) cost one pass of a byte loop.
func strictStrings(body []byte) bool {
	i := 0
	for i < len(body) && body[i] >= 0x20 {
		i++
	}
	if i == len(body) {
		return true
	}
	inString := false
	for j := 0; j < len(body); j++ {
		switch c := body[j]; {
		case inString && c == '\\':
			j++
		case c == '"':
			inString = !inString
		case inString && c < 0x20:
			return false
		}
	}
	return true
}

// decodedKey is the member's key as a JSON decoder reads it, so that an
// escaped "mod\u0065l" is the model as it would be to Anthropic.
func decodedKey(m *json.Members, buf []byte) []byte {
	key := m.Key()
	if bytes.IndexByte(key, '\\') >= 0 {
		key, _ = json.AppendString(buf, m.QuotedKey())
	}
	return key
}

func (r *Request) member(body, key []byte, m *json.Members) *apierror.Error {
	v, kind := m.Value(), m.Kind()
	start, end := m.ValueSpan()
	at := span{start, end}
	switch string(key) {
	case "model":
		if kind != json.String {
			return wrongType("model", json.String)
		}
		r.Model, _ = json.AppendString(r.Model[:0], v)
		if len(r.Model) == 0 {
			return invalid("model: String should have at least 1 character")
		}
		r.seen |= seenModel
	case "max_tokens":
		n, ok := json.Int(v)
		if kind != json.Number || !ok {
			return invalid("max_tokens: Input should be a valid integer")
		}
		if n < 1 {
			return invalid("max_tokens: Input should be greater than or equal to 1")
		}
		r.MaxTokens = n
		r.Params.MaxTokens = &r.MaxTokens
		r.seen |= seenMaxTokens
	case "stream":
		switch kind {
		case json.True:
			r.Stream = true
		case json.False, json.Null:
			r.Stream = false
		default:
			return wrongType("stream", json.True)
		}
	case "messages":
		if kind != json.Array {
			return wrongType("messages", json.Array)
		}
		if err := checkMessages(v); err != nil {
			return err
		}
		r.messages = at
		r.seen |= seenMessages
	case "system":
		switch kind {
		case json.Null:
			r.system = span{}
		case json.String:
			r.system = at
		case json.Array:
			if err := checkTextBlocks("system", v); err != nil {
				return err
			}
			r.system = at
		default:
			return invalid("system: Input should be a valid string or a list of text blocks")
		}
	case "temperature":
		return number(&r.Params.Temperature, &r.temperatureValue, &r.temperature, at, "temperature", kind, v)
	case "top_p":
		return number(&r.Params.TopP, &r.topPValue, &r.topP, at, "top_p", kind, v)
	case "top_k":
		// OpenAI has no top_k: checked, then left out.
		if kind != json.Null {
			if n, ok := json.Int(v); kind != json.Number || !ok || n < 0 {
				return invalid("top_k: Input should be a valid integer greater than or equal to 0")
			}
		}
	case "stop_sequences":
		switch kind {
		case json.Null:
			r.stop = span{}
		case json.Array:
			if err := checkStrings("stop_sequences", v); err != nil {
				return err
			}
			r.stop = span{}
			if !json.IsEmptyArray(v) {
				r.stop = at
			}
		default:
			return wrongType("stop_sequences", json.Array)
		}
	case "tools":
		switch kind {
		case json.Null:
			r.tools, r.nTools = span{}, 0
		case json.Array:
			n, err := checkTools(v)
			if err != nil {
				return err
			}
			r.tools, r.nTools = at, n
		default:
			return wrongType("tools", json.Array)
		}
	case "tool_choice":
		switch kind {
		case json.Null:
			r.toolChoice = span{}
		case json.Object:
			noParallel, err := checkToolChoice(v)
			if err != nil {
				return err
			}
			r.toolChoice, r.noParallel = at, noParallel
		default:
			return wrongType("tool_choice", json.Object)
		}
	case "output_config":
		switch kind {
		case json.Null:
			r.schema = span{}
		case json.Object:
			s, err := checkOutputConfig(v)
			if err != nil {
				return err
			}
			r.schema = span{}
			if s.ok() {
				r.schema = span{start + s.start, start + s.end}
			}
		default:
			return wrongType("output_config", json.Object)
		}
	case "mcp_servers":
		// Anthropic connects to these and runs their tools itself; a chat
		// model behind Loom cannot, and dropping them would leave the
		// model without tools the client counts on.
		if kind == json.Array && !json.IsEmptyArray(v) {
			return invalid("mcp_servers: MCP servers run at Anthropic and cannot be used with this model")
		}
	case "metadata":
		switch kind {
		case json.Null:
			r.userID = span{}
		case json.Object:
			var mm json.Members
			mm.Reset(v)
			r.userID = span{}
			for mm.Next() {
				if string(mm.Key()) != "user_id" {
					continue
				}
				switch mm.Kind() {
				case json.String:
					s, e := mm.ValueSpan()
					r.userID = span{start + s, start + e}
				case json.Null:
					r.userID = span{}
				default:
					return wrongType("metadata.user_id", json.String)
				}
			}
		default:
			return wrongType("metadata", json.Object)
		}
	}
	return nil
}

// number reads a sampling parameter into *f, pointed to from *dst (the
// Request owns the value: a fresh pointer per call would allocate).
func number(dst **float64, f *float64, at *span, value span, param string, kind json.Kind, v []byte) *apierror.Error {
	if kind == json.Null {
		*dst, *at = nil, span{}
		return nil
	}
	n, ok := json.Float(v)
	if kind != json.Number || !ok {
		return wrongType(param, json.Number)
	}
	if n < 0 || n > 1 {
		return invalid("%s: Input should be between 0 and 1", param)
	}
	*f = n
	*dst, *at = f, value
	return nil
}

func checkStrings(path string, v []byte) *apierror.Error {
	var e json.Elements
	e.Reset(v)
	for i := 0; e.Next(); i++ {
		if e.Kind() != json.String {
			return wrongType(path+"."+strconv.Itoa(i), json.String)
		}
	}
	return nil
}

// field returns the value and kind of key in object v (Invalid if absent).
// The last occurrence wins, as in most decoders.
func field(v []byte, key string) ([]byte, json.Kind) {
	var m json.Members
	m.Reset(v)
	var val []byte
	kind := json.Invalid
	for m.Next() {
		if string(m.Key()) == key {
			val, kind = m.Value(), m.Kind()
		}
	}
	return val, kind
}

// blockType is the type of one content block: its "type" string, quoted.
func blockType(v []byte) []byte {
	t, kind := field(v, "type")
	if kind != json.String {
		return nil
	}
	return t
}

func checkTextBlocks(path string, v []byte) *apierror.Error {
	var e json.Elements
	e.Reset(v)
	for i := 0; e.Next(); i++ {
		if e.Kind() != json.Object {
			return invalid("%s.%d: Input should be a valid dictionary", path, i)
		}
		b := readObj(e.Value())
		if !b.is(`"text"`) {
			return invalid("%s.%d.type: Input should be 'text'", path, i)
		}
		if b.textK != json.String {
			return invalid("%s.%d.text: Input should be a valid string", path, i)
		}
	}
	return nil
}

func checkMessages(v []byte) *apierror.Error {
	var e json.Elements
	e.Reset(v)
	n := 0
	for ; e.Next(); n++ {
		if err := checkMessage(n, e.Kind(), e.Value()); err != nil {
			return err
		}
	}
	if n == 0 {
		return invalid("messages: at least one message is required")
	}
	return nil
}

func checkMessage(i int, kind json.Kind, v []byte) *apierror.Error {
	if kind != json.Object {
		return invalid("messages.%d: Input should be a valid dictionary", i)
	}
	var content []byte
	contentKind := json.Invalid
	role := ""
	var m json.Members
	m.Reset(v)
	for m.Next() {
		switch string(m.Key()) {
		case "role":
			switch string(m.Value()) {
			case `"user"`:
				role = "user"
			case `"assistant"`:
				role = "assistant"
			default:
				return invalid("messages.%d.role: Input should be 'user' or 'assistant'", i)
			}
		case "content":
			content, contentKind = m.Value(), m.Kind()
		}
	}
	if role == "" {
		return invalid("messages.%d.role: Field required", i)
	}
	switch contentKind {
	case json.Invalid:
		return invalid("messages.%d.content: Field required", i)
	case json.String:
		return nil
	case json.Array:
	default:
		return invalid("messages.%d.content: Input should be a valid string or a list of content blocks", i)
	}
	var e json.Elements
	e.Reset(content)
	for j := 0; e.Next(); j++ {
		if e.Kind() != json.Object {
			return invalid("messages.%d.content.%d: Input should be a valid dictionary", i, j)
		}
		if err := checkBlock(i, j, role, e.Value()); err != nil {
			return err
		}
	}
	return nil
}

// checkBlock checks one content block of message i. The blocks a chat
// message can carry are accepted; thinking is accepted and later dropped
// (a chat model cannot take it back); anything else is refused by name.
func checkBlock(i, j int, role string, v []byte) *apierror.Error {
	b := readObj(v)
	if b.typ == nil {
		return invalid("messages.%d.content.%d.type: Field required", i, j)
	}
	path := func(f string) string { return fmt.Sprintf("messages.%d.content.%d.%s", i, j, f) }
	switch t := string(inner(b.typ)); {
	case t == "text":
		if b.textK != json.String {
			return wrongType(path("text"), json.String)
		}
		return nil
	case t == "thinking" || t == "redacted_thinking":
		if role != "assistant" {
			break
		}
		return nil
	case t == "tool_use" && role == "assistant":
		switch {
		case b.idK != json.String:
			return wrongType(path("id"), json.String)
		case b.nameK != json.String:
			return wrongType(path("name"), json.String)
		case b.inputK != json.Object:
			return wrongType(path("input"), json.Object)
		}
		return nil
	case t == "image" && role == "user":
		return checkImage(path, &b)
	case t == "document" && role == "user":
		return checkDocument(path, &b)
	case t == "tool_result" && role == "user":
		if b.toolUseIDK != json.String {
			return wrongType(path("tool_use_id"), json.String)
		}
		switch b.contentK {
		case json.Invalid, json.Null, json.String:
			return nil
		case json.Array:
		default:
			return invalid("%s: Input should be a valid string or a list of content blocks", path("content"))
		}
		var e json.Elements
		e.Reset(b.content)
		for k := 0; e.Next(); k++ {
			p := func(f string) string { return fmt.Sprintf("messages.%d.content.%d.content.%d.%s", i, j, k, f) }
			if e.Kind() != json.Object {
				return invalid("messages.%d.content.%d.content.%d: Input should be a valid dictionary", i, j, k)
			}
			c := readObj(e.Value())
			switch string(c.typ) {
			case `"text"`:
				if c.textK != json.String {
					return wrongType(p("text"), json.String)
				}
			case `"image"`:
				if err := checkImage(p, &c); err != nil {
					return err
				}
			case `"document"`:
				if err := checkDocument(p, &c); err != nil {
					return err
				}
			default:
				return invalid("%s: only text, image and document blocks can be translated for this model", p("type"))
			}
		}
		return nil
	}
	return invalid("%s: content blocks of type %s in a %s message cannot be translated for this model",
		path("type"), call.Clean(string(b.typ), 64), role)
}

func checkImage(path func(string) string, b *obj) *apierror.Error {
	if b.sourceK != json.Object {
		return wrongType(path("source"), json.Object)
	}
	src := readObj(b.source)
	switch string(src.typ) {
	case `"base64"`:
		if src.mediaTypeK != json.String {
			return wrongType(path("source.media_type"), json.String)
		}
		switch string(src.mediaType) {
		case `"image/jpeg"`, `"image/png"`, `"image/gif"`, `"image/webp"`:
		default:
			return invalid("%s: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", path("source.media_type"))
		}
		if src.dataK != json.String {
			return wrongType(path("source.data"), json.String)
		}
	case `"url"`:
		if src.urlK != json.String {
			return wrongType(path("source.url"), json.String)
		}
	default:
		return invalid("%s: image sources of type base64 and url can be translated for this model", path("source.type"))
	}
	return nil
}

func checkDocument(path func(string) string, b *obj) *apierror.Error {
	if b.sourceK != json.Object {
		return wrongType(path("source"), json.Object)
	}
	src := readObj(b.source)
	switch string(src.typ) {
	case `"text"`:
		if src.dataK != json.String {
			return wrongType(path("source.data"), json.String)
		}
	case `"base64"`:
		if string(src.mediaType) != `"application/pdf"` {
			return invalid("%s: Input should be 'application/pdf'", path("source.media_type"))
		}
		if src.dataK != json.String {
			return wrongType(path("source.data"), json.String)
		}
	default:
		return invalid("%s: document sources of type text and base64 can be translated for this model", path("source.type"))
	}
	return nil
}

// checkTools checks the tool definitions and counts them. Only custom
// tools (a name and an input_schema) have a chat counterpart; Anthropic's
// server tools (web search, code execution...) run at Anthropic.
func checkTools(v []byte) (int, *apierror.Error) {
	var e json.Elements
	e.Reset(v)
	n := 0
	for ; e.Next(); n++ {
		if e.Kind() != json.Object {
			return 0, invalid("tools.%d: Input should be a valid dictionary", n)
		}
		t := readObj(e.Value())
		switch {
		case t.typK == json.String && !t.is(`"custom"`):
			return 0, invalid("tools.%d.type: tools of type %s run at Anthropic and cannot be used with this model",
				n, call.Clean(string(t.typ), 64))
		case t.nameK != json.String || len(t.name) == 2:
			return 0, invalid("tools.%d.name: Input should be a non-empty string", n)
		case t.inputSchemaK != json.Object:
			return 0, invalid("tools.%d.input_schema: Input should be a valid dictionary", n)
		case t.descriptionK != json.String && t.descriptionK != json.Invalid && t.descriptionK != json.Null:
			return 0, invalid("tools.%d.description: Input should be a valid string", n)
		}
	}
	return n, nil
}

func checkToolChoice(v []byte) (noParallel bool, err *apierror.Error) {
	switch string(blockType(v)) {
	case `"auto"`, `"any"`, `"none"`:
	case `"tool"`:
		if name, kind := field(v, "name"); kind != json.String || len(name) == 2 {
			return false, invalid("tool_choice.name: Field required")
		}
	default:
		return false, invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
	}
	dp, kind := field(v, "disable_parallel_tool_use")
	switch kind {
	case json.True:
		return true, nil
	case json.False, json.Null, json.Invalid:
		return false, nil
	}
	_ = dp
	return false, wrongType("tool_choice.disable_parallel_tool_use", json.True)
}

// checkOutputConfig checks output_config and finds format.schema (a span
// within v). The effort setting has no counterpart a non-reasoning chat
// model accepts, so it is left out; a format is structured output, which
// chat requests carry as response_format.
func checkOutputConfig(v []byte) (span, *apierror.Error) {
	var m json.Members
	m.Reset(v)
	var at span
	for m.Next() {
		if string(m.Key()) != "format" {
			continue
		}
		switch m.Kind() {
		case json.Null:
			at = span{}
			continue
		case json.Object:
		default:
			return span{}, wrongType("output_config.format", json.Object)
		}
		f := m.Value()
		if string(blockType(f)) != `"json_schema"` {
			return span{}, invalid("output_config.format.type: Input should be 'json_schema'")
		}
		var fm json.Members
		fm.Reset(f)
		at = span{}
		for fm.Next() {
			if string(fm.Key()) == "schema" {
				if fm.Kind() != json.Object {
					return span{}, wrongType("output_config.format.schema", json.Object)
				}
				vs, _ := m.ValueSpan()
				s, e := fm.ValueSpan()
				at = span{vs + s, vs + e}
			}
		}
		if !at.ok() {
			return span{}, invalid("output_config.format.schema: Field required")
		}
	}
	return at, nil
}
