package messages

import (
	"errors"
	"strconv"

	"github.com/loom-gateway/loom/proxy/internal/json"
)

// ErrNotParsed means AppendChatRequest got a body that the Request was not
// parsed from (or a Request whose Parse failed).
var ErrNotParsed = errors.New("messages: request not parsed from this body")

// ChatOptions tune the chat request for an upstream.
type ChatOptions struct {
	// LegacyMaxTokens sends max_tokens instead of max_completion_tokens,
	// for OpenAI-compatible servers that predate the newer name. OpenAI
	// itself refuses max_tokens for its reasoning models, so the newer
	// name is the default.
	LegacyMaxTokens bool
	// MaxTokensCap, when positive, caps the max_tokens sent upstream.
	// Anthropic clients ask for what Claude models allow (Claude Code asks
	// for 32000), more than many chat models accept (gpt-4o: 16384), and
	// the upstream would refuse the call for it; a deployment's known
	// output limit goes here.
	MaxTokensCap int64
}

// AppendChatRequest appends to dst the OpenAI chat request that carries the
// Messages request r, parsed from body, to upstreamModel ("" keeps the
// client's model). See AppendChatRequestWith.
func AppendChatRequest(dst []byte, r *Request, body []byte, upstreamModel string) ([]byte, error) {
	return AppendChatRequestWith(dst, r, body, upstreamModel, ChatOptions{})
}

// AppendChatRequestWith is AppendChatRequest with options. The mapping:
//
//   - system (a string or text blocks) -> a first system message;
//   - user text, image (base64 -> data: URL, url) and document (text, PDF
//     -> a file part) blocks -> a user message's content parts; a string
//     content stays a string;
//   - tool_result blocks -> tool messages (before the rest of the user
//     turn, as OpenAI wants them right after the tool calls), their text
//     joined; images and documents in them follow in a user message;
//   - assistant text -> content, tool_use -> tool_calls with the input
//     object as the arguments string; thinking blocks are dropped;
//   - tools -> function tools (input_schema -> parameters); tool_choice
//     auto/any/tool/none -> auto/required/function/none, and
//     disable_parallel_tool_use -> parallel_tool_calls: false;
//   - max_tokens -> max_completion_tokens (or max_tokens), stop_sequences
//     -> stop, temperature and top_p as sent, metadata.user_id -> user;
//     top_k has no counterpart and is dropped;
//   - output_config.format (a JSON schema) -> response_format json_schema;
//     a tool's strict -> the function's strict; output_config.effort has
//     no counterpart a non-reasoning model accepts and is dropped;
//   - stream -> stream with stream_options.include_usage, so that usage is
//     exact.
//
// Everything else the client sent is left out: the chat request is written
// whole, never a splice of the client's body.
func AppendChatRequestWith(dst []byte, r *Request, body []byte, upstreamModel string, opt ChatOptions) ([]byte, error) {
	if r.seen&(seenModel|seenMaxTokens|seenMessages) != seenModel|seenMaxTokens|seenMessages ||
		r.messages.end > len(body) || r.Params.RequestBodyBytes != len(body) {
		return dst, ErrNotParsed
	}
	dst = append(dst, `{"model":`...)
	if upstreamModel != "" {
		dst = json.AppendQuote(dst, upstreamModel)
	} else {
		dst = json.AppendQuote(dst, r.Model)
	}
	dst = append(dst, `,"messages":[`...)
	w := msgWriter{dst: dst}
	if r.system.ok() {
		w.system(r.system.of(body))
	}
	var e json.Elements
	e.Reset(r.messages.of(body))
	for e.Next() {
		w.message(e.Value())
	}
	dst = append(w.dst, ']')
	if opt.LegacyMaxTokens {
		dst = append(dst, `,"max_tokens":`...)
	} else {
		dst = append(dst, `,"max_completion_tokens":`...)
	}
	maxTokens := r.MaxTokens
	if opt.MaxTokensCap > 0 {
		maxTokens = min(maxTokens, opt.MaxTokensCap)
	}
	dst = strconv.AppendInt(dst, maxTokens, 10)
	if r.Stream {
		dst = append(dst, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	if r.temperature.ok() {
		dst = append(append(dst, `,"temperature":`...), r.temperature.of(body)...)
	}
	if r.topP.ok() {
		dst = append(append(dst, `,"top_p":`...), r.topP.of(body)...)
	}
	if r.stop.ok() {
		dst = append(append(dst, `,"stop":`...), r.stop.of(body)...)
	}
	if r.nTools > 0 {
		dst = appendTools(dst, r.tools.of(body))
		if r.toolChoice.ok() {
			dst = appendToolChoice(dst, r.toolChoice.of(body))
		}
		if r.noParallel {
			dst = append(dst, `,"parallel_tool_calls":false`...)
		}
	}
	if r.schema.ok() {
		dst = append(dst, `,"response_format":{"type":"json_schema","json_schema":{"name":"output","schema":`...)
		dst = append(append(dst, r.schema.of(body)...), "}}"...)
	}
	if r.userID.ok() {
		dst = append(append(dst, `,"user":`...), r.userID.of(body)...)
	}
	return append(dst, '}'), nil
}

// msgWriter appends chat messages, one comma between each.
type msgWriter struct {
	dst []byte
	n   int
}

func (w *msgWriter) open(role string) {
	if w.n > 0 {
		w.dst = append(w.dst, ',')
	}
	w.n++
	w.dst = append(w.dst, `{"role":"`...)
	w.dst = append(w.dst, role...)
	w.dst = append(w.dst, `","content":`...)
}

func (w *msgWriter) system(v []byte) {
	w.open("system")
	if v[0] == '"' {
		w.dst = append(w.dst, v...)
	} else {
		w.dst = appendJoinedText(w.dst, v)
	}
	w.dst = append(w.dst, '}')
}

// appendJoinedText appends the text of the text blocks in the array v as
// one JSON string, blocks separated by a newline. The raw string contents
// are valid JSON string contents, so they concatenate as they are.
func appendJoinedText(dst, v []byte) []byte {
	dst = append(dst, '"')
	var e json.Elements
	e.Reset(v)
	first := true
	for e.Next() {
		b := readObj(e.Value())
		if !b.is(`"text"`) || b.textK != json.String {
			continue
		}
		if !first {
			dst = append(dst, `\n`...)
		}
		first = false
		dst = append(dst, inner(b.text)...)
	}
	return append(dst, '"')
}

func (w *msgWriter) message(v []byte) {
	msg := readObj(v)
	if string(msg.role) == `"assistant"` {
		w.assistant(msg.content, msg.contentK)
		return
	}
	if msg.contentK == json.String {
		w.open("user")
		w.dst = append(append(w.dst, msg.content...), '}')
		return
	}
	// Tool results first: OpenAI wants the tool messages right after the
	// assistant's tool calls, and Anthropic puts them first in the turn.
	before := w.n
	var e json.Elements
	e.Reset(msg.content)
	for e.Next() {
		if b := readObj(e.Value()); b.is(`"tool_result"`) {
			w.toolResult(&b)
		}
	}
	parts := 0
	e.Reset(msg.content)
	for e.Next() {
		b := readObj(e.Value())
		switch string(b.typ) {
		case `"text"`, `"image"`, `"document"`:
			w.part(&parts, &b)
		case `"tool_result"`:
			// A chat tool message holds text only: the images and
			// documents a tool returned go to the model in the user turn
			// that follows.
			if b.contentK == json.Array {
				var ce json.Elements
				ce.Reset(b.content)
				for ce.Next() {
					c := readObj(ce.Value())
					switch string(c.typ) {
					case `"image"`, `"document"`:
						w.part(&parts, &c)
					}
				}
			}
		}
	}
	switch {
	case parts > 0:
		w.dst = append(w.dst, "]}"...)
	case w.n == before:
		// An empty turn stays a turn, as the client sent it.
		w.open("user")
		w.dst = append(w.dst, `""}`...)
	}
}

// part appends one user content part, opening the user message at the
// first.
func (w *msgWriter) part(parts *int, b *obj) {
	if *parts == 0 {
		w.open("user")
		w.dst = append(w.dst, '[')
	} else {
		w.dst = append(w.dst, ',')
	}
	*parts++
	switch string(b.typ) {
	case `"text"`:
		w.dst = append(append(append(w.dst, `{"type":"text","text":`...), b.text...), '}')
	case `"image"`:
		src := readObj(b.source)
		w.dst = append(w.dst, `{"type":"image_url","image_url":{"url":`...)
		if src.is(`"url"`) {
			w.dst = append(w.dst, src.url...)
		} else {
			w.dst = appendDataURL(w.dst, src.mediaType, src.data)
		}
		w.dst = append(w.dst, "}}"...)
	case `"document"`:
		src := readObj(b.source)
		if src.is(`"text"`) {
			w.dst = append(append(append(w.dst, `{"type":"text","text":`...), src.data...), '}')
			return
		}
		w.dst = append(w.dst, `{"type":"file","file":{"filename":`...)
		if b.titleK == json.String && len(b.title) > 2 {
			w.dst = append(w.dst, b.title...)
		} else {
			w.dst = append(w.dst, `"document.pdf"`...)
		}
		w.dst = append(w.dst, `,"file_data":`...)
		w.dst = appendDataURL(w.dst, src.mediaType, src.data)
		w.dst = append(w.dst, "}}"...)
	}
}

func appendDataURL(dst, mediaType, data []byte) []byte {
	dst = append(dst, `"data:`...)
	dst = append(dst, inner(mediaType)...)
	dst = append(dst, `;base64,`...)
	dst = append(dst, inner(data)...)
	return append(dst, '"')
}

func (w *msgWriter) toolResult(b *obj) {
	if w.n > 0 {
		w.dst = append(w.dst, ',')
	}
	w.n++
	w.dst = append(w.dst, `{"role":"tool","tool_call_id":`...)
	w.dst = append(w.dst, b.toolUseID...)
	w.dst = append(w.dst, `,"content":`...)
	switch b.contentK {
	case json.String:
		w.dst = append(w.dst, b.content...)
	case json.Array:
		w.dst = appendJoinedText(w.dst, b.content)
	default:
		w.dst = append(w.dst, `""`...)
	}
	w.dst = append(w.dst, '}')
}

func (w *msgWriter) assistant(content []byte, kind json.Kind) {
	if kind == json.String {
		w.open("assistant")
		w.dst = append(append(w.dst, content...), '}')
		return
	}
	hasText, calls := false, 0
	var e json.Elements
	e.Reset(content)
	for e.Next() {
		b := readObj(e.Value())
		switch string(b.typ) {
		case `"text"`:
			hasText = true
		case `"tool_use"`:
			calls++
		}
	}
	w.open("assistant")
	switch {
	case hasText:
		w.dst = appendJoinedText(w.dst, content)
	case calls > 0:
		w.dst = append(w.dst, "null"...)
	default:
		// Only thinking: the turn still happened.
		w.dst = append(w.dst, `""`...)
	}
	if calls > 0 {
		w.dst = append(w.dst, `,"tool_calls":[`...)
		e.Reset(content)
		first := true
		for e.Next() {
			b := readObj(e.Value())
			if !b.is(`"tool_use"`) {
				continue
			}
			if !first {
				w.dst = append(w.dst, ',')
			}
			first = false
			w.dst = append(w.dst, `{"id":`...)
			w.dst = append(w.dst, b.id...)
			w.dst = append(w.dst, `,"type":"function","function":{"name":`...)
			w.dst = append(w.dst, b.name...)
			w.dst = append(w.dst, `,"arguments":`...)
			w.dst = json.AppendQuote(w.dst, b.input)
			w.dst = append(w.dst, "}}"...)
		}
		w.dst = append(w.dst, ']')
	}
	w.dst = append(w.dst, '}')
}

func appendTools(dst, v []byte) []byte {
	dst = append(dst, `,"tools":[`...)
	var e json.Elements
	e.Reset(v)
	first := true
	for e.Next() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		t := readObj(e.Value())
		dst = append(dst, `{"type":"function","function":{"name":`...)
		dst = append(dst, t.name...)
		if t.descriptionK == json.String {
			dst = append(append(dst, `,"description":`...), t.description...)
		}
		dst = append(append(dst, `,"parameters":`...), t.inputSchema...)
		if t.strictK == json.True {
			dst = append(dst, `,"strict":true`...)
		}
		dst = append(dst, "}}"...)
	}
	return append(dst, ']')
}

func appendToolChoice(dst, v []byte) []byte {
	dst = append(dst, `,"tool_choice":`...)
	switch string(blockType(v)) {
	case `"any"`:
		return append(dst, `"required"`...)
	case `"none"`:
		return append(dst, `"none"`...)
	case `"tool"`:
		name, _ := field(v, "name")
		dst = append(dst, `{"type":"function","function":{"name":`...)
		return append(append(dst, name...), "}}"...)
	}
	return append(dst, `"auto"`...)
}
