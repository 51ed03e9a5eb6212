package messages

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/tap"
)

// ErrUpstreamBody means the upstream's answer was not a chat completion Loom
// can translate: the caller answers 502 (api_error).
var ErrUpstreamBody = errors.New("messages: upstream answer is not a chat completion")

// usage is a chat completion's token accounting as Anthropic splits it:
// input excludes what was read from (or written to) the cache.
type usage struct {
	prompt, completion, cached, cacheWrite int64
	known                                  bool
}

func readUsage(u *usage, v []byte) {
	var m json.Members
	if !m.Reset(v) {
		return
	}
	*u = usage{known: true}
	for m.Next() {
		switch string(m.Key()) {
		case "prompt_tokens":
			u.prompt, _ = json.Int(m.Value())
		case "completion_tokens":
			u.completion, _ = json.Int(m.Value())
		case "prompt_tokens_details":
			if m.Kind() != json.Object {
				continue
			}
			var d json.Members
			d.Reset(m.Value())
			for d.Next() {
				switch string(d.Key()) {
				case "cached_tokens":
					u.cached, _ = json.Int(d.Value())
				case "cache_write_tokens", "cache_creation_tokens":
					u.cacheWrite, _ = json.Int(d.Value())
				}
			}
		}
	}
}

// appendUsage appends Anthropic's usage object. GenAI-wise the chat
// prompt_tokens include cached tokens; Anthropic's input_tokens do not, so
// cache reads and writes are taken out (never below zero on odd input).
func appendUsage(dst []byte, u *usage) []byte {
	input := max(u.prompt-u.cached-u.cacheWrite, 0)
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, input, 10)
	dst = append(dst, `,"cache_creation_input_tokens":`...)
	dst = strconv.AppendInt(dst, max(u.cacheWrite, 0), 10)
	dst = append(dst, `,"cache_read_input_tokens":`...)
	dst = strconv.AppendInt(dst, max(u.cached, 0), 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, max(u.completion, 0), 10)
	return append(dst, '}')
}

// stopReason maps a chat finish reason (quoted) to Anthropic's stop_reason.
// A "stop" after tool calls is tool_use: some compatible servers say stop
// there, and an Anthropic client only runs tools on tool_use.
func stopReason(finish []byte, toolCalls bool) string {
	switch string(finish) {
	case `"length"`:
		return "max_tokens"
	case `"tool_calls"`, `"function_call"`:
		return "tool_use"
	case `"content_filter"`:
		return "refusal"
	}
	if toolCalls {
		return "tool_use"
	}
	return "end_turn"
}

// maxPlainID bounds an upstream id copied into the message id; a longer or
// escaped one is hashed instead.
const maxPlainID = 128

// appendMessageID appends "msg_..." (quoted) derived from the upstream's
// id (decoded, or the raw inside of its quotes): the same upstream answer
// always gets the same id. An id that is long or holds anything but
// letters, digits, '-' and '_' is hashed (FNV-1a) instead of copied.
func appendMessageID(dst, id []byte) []byte {
	dst = append(dst, `"msg_`...)
	plain := len(id) > 0 && len(id) <= maxPlainID
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			plain = false
			break
		}
	}
	if plain {
		dst = append(dst, id...)
	} else {
		h := uint64(14695981039346656037)
		for _, c := range id {
			h ^= uint64(c)
			h *= 1099511628211
		}
		dst = append(dst, "loom"...)
		dst = strconv.AppendUint(dst, h, 16)
	}
	return append(dst, '"')
}

// AppendMessage appends to dst the Anthropic Message for one OpenAI
// chat.completion body. model is what the client asked for (the message
// says it back). rec, if not nil, gets what the tap reads from a chat
// completion (response id and model, finish reasons, usage, errors): the
// span describes the upstream call as it was. Only the first choice is
// translated (Messages has no n).
//
// Content: reasoning_content (as vLLM and DeepSeek send it) becomes a
// thinking block, content a text block, a refusal a text block with
// stop_reason refusal, each tool call a tool_use block whose input is the
// arguments parsed (an empty or unparseable arguments string gives {}).
// Usage: input_tokens = prompt - cached - cache writes,
// cache_read_input_tokens = cached, output_tokens = completion.
func AppendMessage(dst, chatCompletionBody []byte, model []byte, rec *call.Record) ([]byte, error) {
	body := chatCompletionBody
	if rec != nil {
		tap.Observe(rec, body)
	}
	var m json.Members
	if !m.Reset(body) {
		return dst, ErrUpstreamBody
	}
	var id, choice []byte
	var u usage
	for m.Next() {
		switch string(m.Key()) {
		case "id":
			if m.Kind() == json.String {
				id = m.Value()
			}
		case "choices":
			if m.Kind() != json.Array {
				continue
			}
			var e json.Elements
			e.Reset(m.Value())
			for e.Next() {
				if e.Kind() != json.Object {
					continue
				}
				if idx, kind := field(e.Value(), "index"); choice == nil || kind == json.Number && string(idx) == "0" {
					choice = e.Value()
				}
			}
		case "usage":
			readUsage(&u, m.Value())
		case "error":
			return dst, fmt.Errorf("%w: it holds an error", ErrUpstreamBody)
		}
	}
	if m.Err() != nil || choice == nil {
		return dst, ErrUpstreamBody
	}
	msg, _ := field(choice, "message")
	finish, _ := field(choice, "finish_reason")
	var reasoning, content, refusal, calls []byte
	var cm json.Members
	if cm.Reset(msg) {
		for cm.Next() {
			switch string(cm.Key()) {
			case "reasoning_content", "reasoning":
				if cm.Kind() == json.String && len(cm.Value()) > 2 {
					reasoning = cm.Value()
				}
			case "content":
				if cm.Kind() == json.String && len(cm.Value()) > 2 {
					content = cm.Value()
				}
			case "refusal":
				if cm.Kind() == json.String && len(cm.Value()) > 2 {
					refusal = cm.Value()
				}
			case "tool_calls":
				if cm.Kind() == json.Array {
					calls = cm.Value()
				}
			}
		}
	}
	dst = append(dst, `{"id":`...)
	dst = appendMessageID(dst, inner(id))
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = json.AppendQuote(dst, model)
	dst = append(dst, `,"content":[`...)
	n := 0
	sep := func() {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
	}
	if reasoning != nil {
		sep()
		dst = append(dst, `{"type":"thinking","thinking":`...)
		dst = appendCleanJSONString(dst, reasoning)
		dst = append(dst, `,"signature":""}`...)
	}
	for _, text := range [...][]byte{content, refusal} {
		if text != nil {
			sep()
			dst = append(dst, `{"type":"text","text":`...)
			dst = appendCleanJSONString(dst, text)
			dst = append(dst, '}')
		}
	}
	nCalls := 0
	if calls != nil {
		var e json.Elements
		e.Reset(calls)
		for e.Next() {
			if e.Kind() != json.Object {
				continue
			}
			callID, _ := field(e.Value(), "id")
			fn, _ := field(e.Value(), "function")
			name, nameKind := field(fn, "name")
			args, argsKind := field(fn, "arguments")
			if nameKind != json.String {
				continue
			}
			sep()
			nCalls++
			dst = append(dst, `{"type":"tool_use","id":`...)
			dst = appendToolID(dst, callID, nCalls)
			dst = append(dst, `,"name":`...)
			dst = appendCleanJSONString(dst, name)
			dst = append(dst, `,"input":`...)
			if argsKind == json.String {
				dst = appendArguments(dst, args)
			} else {
				dst = append(dst, "{}"...)
			}
			dst = append(dst, '}')
		}
	}
	reason := stopReason(finish, nCalls > 0)
	if refusal != nil {
		reason = "refusal"
	}
	dst = append(dst, `],"stop_reason":"`...)
	dst = append(dst, reason...)
	dst = append(dst, `","stop_sequence":null,"usage":`...)
	dst = appendUsage(dst, &u)
	return append(dst, '}'), nil
}

// appendToolID appends a tool call's id as the client will send it back in
// tool_result.tool_use_id: the upstream's, or one made up from the call's
// position when the upstream sent none.
func appendToolID(dst, quoted []byte, n int) []byte {
	if len(quoted) > 2 && quoted[0] == '"' {
		return appendCleanJSONString(dst, quoted)
	}
	dst = append(dst, `"toolu_loom_`...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, '"')
}

// appendArguments appends a tool call's arguments (a quoted JSON string
// that should hold a JSON object) as the object itself, or {} when it does
// not hold one: Anthropic's input is always an object. Decoded in place
// into dst; checked as strictly as encoding/json reads it (no raw control
// characters in strings), which json.Valid alone does not.
func appendArguments(dst, quoted []byte) []byte {
	at := len(dst)
	dst, ok := json.AppendString(dst, quoted)
	obj := dst[at:]
	if !ok || !strictObject(obj) {
		return append(dst[:at], "{}"...)
	}
	return dst
}

// strictObject reports whether b is one JSON object that every decoder
// reads, encoding/json included.
func strictObject(b []byte) bool {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	if i == len(b) || b[i] != '{' {
		return false
	}
	inString := false
	for j := i; j < len(b); j++ {
		c := b[j]
		switch {
		case inString && c == '\\':
			j++
		case c == '"':
			inString = !inString
		case inString && c < 0x20:
			return false
		}
	}
	return json.Valid(b)
}

// appendCleanJSONString appends the upstream's quoted JSON string re-quoted
// when it may hold what a strict decoder refuses (raw control characters,
// invalid UTF-8 or escapes); a plain one is copied as it is.
func appendCleanJSONString(dst, quoted []byte) []byte {
	if plainString(quoted) {
		return append(dst, quoted...)
	}
	at := len(dst)
	dst, ok := json.AppendString(dst, quoted)
	if !ok {
		return append(dst[:at], `""`...)
	}
	// Re-quote the decoded bytes, written after them, then move them down.
	end := len(dst)
	dst = json.AppendQuote(dst, dst[at:end])
	n := copy(dst[at:], dst[end:])
	return dst[:at+n]
}

// plainString reports whether quoted is a JSON string that every decoder
// reads the same: no raw control characters, valid UTF-8, no escaped
// surrogates (which a lone one makes invalid). Such a string is copied as
// it is; anything else is decoded and re-quoted.
func plainString(quoted []byte) bool {
	if len(quoted) < 2 || quoted[0] != '"' || quoted[len(quoted)-1] != '"' {
		return false
	}
	s := quoted[1 : len(quoted)-1]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20:
			return false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			i += size - 1
		case c == '\\':
			i++
			if i >= len(s) {
				return false
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s) || s[i+1] == 'd' || s[i+1] == 'D' {
					return false
				}
				for _, h := range s[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				i += 4
			default:
				return false
			}
		}
	}
	return true
}
