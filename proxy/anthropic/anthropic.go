// Package anthropic lets Loom serve OpenAI chat clients from an Anthropic
// deployment and read what a span needs from Anthropic's own traffic. It
// translates an OpenAI chat request into a Messages request
// (AppendMessagesRequest), a Messages answer into a chat completion
// (AppendChatCompletion), a Messages stream into chat completion chunks
// (ChatStream) and an Anthropic error into an OpenAI-shaped one
// (ErrorToOpenAI); ObserveMessage and Observer read usage, ids and stop
// reasons from native Messages bodies and events that the relay passes on
// byte for byte.
//
// It is a library: it never does I/O, never sees a credential, and appends
// into the caller's buffers. Upstream bytes are untrusted: whatever they
// hold, what it writes is valid JSON of valid UTF-8, and a stream event
// costs no allocation in steady state.
package anthropic

import (
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// APIVersion is the anthropic-version header Loom sends with a request it
// translated: the Messages API version whose shapes this package writes
// and reads. (A relayed /v1/messages request keeps the client's own.)
const APIVersion = "2023-06-01"

// ErrMalformed means an upstream answer or event could not be read as the
// Messages API defines it. It is the upstream's fault, never the client's:
// the server answers it with a 502 (or ends a stream with an error event).
var ErrMalformed = errors.New("anthropic: malformed upstream answer")

// finishReason maps an Anthropic stop_reason (quoted, as sent) to the
// OpenAI finish_reason a chat client understands. The result is a
// constant, so recording it costs no allocation.
func finishReason(quoted []byte) string {
	if len(quoted) < 2 {
		return "stop"
	}
	switch string(quoted[1 : len(quoted)-1]) {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	// end_turn, stop_sequence, pause_turn and any reason added later: the
	// model stopped of its own accord as far as a chat client can tell.
	return "stop"
}

// nativeReason is an Anthropic stop_reason as the client of a byte-for-byte
// relay saw it, interned so that recording the usual ones costs nothing.
func nativeReason(quoted []byte) string {
	if len(quoted) >= 2 {
		switch string(quoted[1 : len(quoted)-1]) {
		case "end_turn":
			return "end_turn"
		case "max_tokens":
			return "max_tokens"
		case "stop_sequence":
			return "stop_sequence"
		case "tool_use":
			return "tool_use"
		case "pause_turn":
			return "pause_turn"
		case "refusal":
			return "refusal"
		case "model_context_window_exceeded":
			return "model_context_window_exceeded"
		}
	}
	s, _ := json.AppendString(nil, quoted)
	return call.CleanBytes(s, 64)
}

// usage is Anthropic's token accounting as it arrives: input_tokens counts
// only the uncached part of the prompt, and the cache reads and writes come
// apart. A stream reports the input in message_start and the output in
// message_delta, where newer API versions repeat every field as a running
// total; so each report overwrites the fields it carries.
type usage struct {
	in, cacheRead, cacheCreation, out int64
	thinking                          int64 // output_tokens_details.thinking_tokens, part of out
	hasCacheRead, hasCacheCreation    bool
	hasThinking                       bool
	seen                              bool
	// final is set once the count is the provider's last word: a unary
	// answer's, or a stream's message_delta. Before it, a stream's output
	// count is message_start's placeholder.
	final bool
}

// read takes the fields present in the usage object v.
func (u *usage) read(v []byte) {
	var m json.Members
	if !m.Reset(v) {
		return
	}
	for m.Next() {
		if string(m.Key()) == "output_tokens_details" && m.Kind() == json.Object {
			// Newer API versions break the output down; thinking_tokens
			// is the reasoning part of output_tokens.
			var d json.Members
			d.Reset(m.Value())
			for d.Next() {
				if string(d.Key()) == "thinking_tokens" && d.Kind() == json.Number {
					if n, ok := json.Int(d.Value()); ok && n >= 0 {
						u.thinking, u.hasThinking = n, true
					}
				}
			}
			continue
		}
		if m.Kind() != json.Number {
			continue
		}
		n, ok := json.Int(m.Value())
		if !ok || n < 0 {
			continue
		}
		switch string(m.Key()) {
		case "input_tokens":
			u.in, u.seen = n, true
		case "output_tokens":
			u.out, u.seen = n, true
		case "cache_read_input_tokens":
			u.cacheRead, u.hasCacheRead, u.seen = n, true, true
		case "cache_creation_input_tokens":
			u.cacheCreation, u.hasCacheCreation, u.seen = n, true, true
		}
	}
}

// prompt is the whole prompt in tokens, as OpenAI's prompt_tokens and the
// GenAI gen_ai.usage.input_tokens count it: cache reads and writes included.
func (u *usage) prompt() int64 { return u.in + u.cacheRead + u.cacheCreation }

// fill writes u into rec, if the upstream reported any usage. Until the
// count is final, the output is estimated from the deltas seen (at least
// message_start's placeholder) and the record says so: a stream cut before
// message_delta keeps its exact input count, with an output Loom can still
// bill, instead of the placeholder's 1 passed off as the provider's.
func (u *usage) fill(rec *call.Record) {
	if !u.seen {
		return
	}
	p, out := u.prompt(), u.out
	rec.UsageSource = call.UsageProvider
	if !u.final {
		out = max(out, int64(rec.OutputPieces))
		rec.UsageSource = call.UsageEstimated
	}
	rec.Usage.InputTokens = p
	rec.Usage.OutputTokens = out
	rec.Usage.TotalTokens = p + out
	rec.Usage.CachedInputTokens, rec.Usage.HasCached = u.cacheRead, u.hasCacheRead
	rec.Usage.CacheCreationInputTokens, rec.Usage.HasCacheCreation = u.cacheCreation, u.hasCacheCreation
	rec.Usage.ReasoningTokens, rec.Usage.HasReasoning = u.thinking, u.hasThinking
}

// piece counts one delta that carried output and, while the count is not
// final, moves the record's estimate with it.
func (u *usage) piece(rec *call.Record) {
	rec.OutputPieces++
	if u.seen && !u.final {
		u.fill(rec)
	}
}

// appendOpenAI appends u as an OpenAI usage object.
func (u *usage) appendOpenAI(dst []byte) []byte {
	p := u.prompt()
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, p, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, u.out, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, p+u.out, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, u.cacheRead, 10)
	dst = append(dst, '}')
	if u.hasThinking {
		dst = append(dst, `,"completion_tokens_details":{"reasoning_tokens":`...)
		dst = strconv.AppendInt(dst, u.thinking, 10)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendInner appends the contents of the JSON string quoted (its quotes
// left out) so that they can sit inside another JSON string. An upstream's
// string is copied as sent when it is clean, which it nearly always is;
// one with invalid UTF-8, raw control characters or a bad escape is
// decoded and written again, so the output stays valid JSON whatever came
// in.
func appendInner(dst, quoted []byte) []byte {
	if len(quoted) < 2 || quoted[0] != '"' || quoted[len(quoted)-1] != '"' {
		return dst
	}
	s := quoted[1 : len(quoted)-1]
	if cleanInner(s) {
		return append(dst, s...)
	}
	decoded, _ := json.AppendString(nil, quoted)
	return json.AppendEscaped(dst, decoded)
}

// cleanInner reports whether s, the inside of a JSON string, is valid UTF-8
// with only well-formed escapes and no raw control characters.
func cleanInner(s []byte) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c == '"':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '\\':
			i++
			if i >= len(s) {
				return false
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s) {
					return false
				}
				for _, h := range s[i+1 : i+5] {
					if !isHex(h) {
						return false
					}
				}
				i += 4
			default:
				return false
			}
		}
	}
	return ascii || utf8.Valid(s)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// appendString appends the JSON string quoted (a raw value from an upstream
// or a client), made clean as appendInner does.
func appendString(dst, quoted []byte) []byte {
	dst = append(dst, '"')
	dst = appendInner(dst, quoted)
	return append(dst, '"')
}

// appendDecoded appends the contents of the JSON string quoted (nil for
// none), decoded and capped at max bytes.
func appendDecoded(dst, quoted []byte, max int) []byte {
	if quoted == nil {
		return dst
	}
	at := len(dst)
	dst, _ = json.AppendString(dst, quoted)
	if len(dst)-at > max {
		dst = dst[:at+call.RuneBoundary(dst[at:], max)]
	}
	return dst
}

// setString decodes the JSON string quoted into *dst (a Record's reused
// buffer), capped at max bytes.
func setString(dst *[]byte, quoted []byte, max int) {
	*dst = appendDecoded((*dst)[:0], quoted, max)
}

// appendArguments appends the JSON text raw (a tool's input object, as an
// upstream sent it) as a JSON string: OpenAI's tool call arguments. A raw
// control character inside one of raw's strings, which lenient parsers let
// through, is written as a \u escape, so the arguments a client decodes
// are JSON that strict parsers read too.
func appendArguments(dst, raw []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString && c < 0x20:
			dst = append(dst, '\\', '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case inString && c == '\\' && i+1 < len(raw):
			// An escape: the backslash and the byte after it, both escaped.
			dst = append(dst, '\\', '\\')
			i++
			dst = json.AppendEscaped(dst, raw[i:i+1])
		case c == '"':
			inString = !inString
			dst = append(dst, '\\', '"')
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size - 1
		default:
			dst = json.AppendEscaped(dst, raw[i:i+1])
		}
	}
	return append(dst, '"')
}
