package tracing

import (
	"bytes"
	"cmp"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// message and part are the GenAI conventions' shape of
// gen_ai.input.messages and gen_ai.output.messages.
type message struct {
	Role         string `json:"role"`
	Parts        []part `json:"parts"`
	Name         string `json:"name,omitempty"`
	FinishReason string `json:"finish_reason,omitempty"`
}

// part is one message part. Content is a pointer so that a text part always
// carries "content" (the conventions require it, "" included) while other
// parts never do.
type part struct {
	Type      string  `json:"type"`
	Content   *string `json:"content,omitempty"`
	ID        string  `json:"id,omitempty"`
	Name      string  `json:"name,omitempty"`
	Arguments string  `json:"arguments,omitempty"`
	Response  string  `json:"response,omitempty"`
}

func textPart(s string) part { return part{Type: "text", Content: &s} }

const (
	// maxField caps each of a captured message's small fields (role, name,
	// part type, tool call id and name, finish reason).
	maxField = 256
	// maxMeta caps those small fields together, with overhead bytes per
	// message and part (JSON keys and punctuation), beside the policy's cap
	// on the text itself: a request of many empty messages must not make a
	// huge attribute either.
	maxMeta  = 32 << 10
	overhead = 16
)

// appendContent adds the captured prompt and completion, converted to the
// conventions' JSON and cut: their text to the policy's cap, every other
// field to maxField and all of those together to maxMeta. It runs only for
// tenants that opted in, so it may allocate freely.
func appendContent(a []attribute.KeyValue, r *call.Record) []attribute.KeyValue {
	c := &r.Content
	truncated := c.Truncated
	var req map[string]any
	if unmarshalLenient(c.Request, &req) == nil {
		if in := inputMessages(req); len(in) > 0 {
			s, cut := marshalCapped(in, c.Max)
			truncated = cut || truncated
			if s != "" {
				a = append(a, attribute.String(sa.GenAIInputMessages, s))
			}
		}
	}
	if out := outputMessages(r); len(out) > 0 {
		s, cut := marshalCapped(out, c.Max)
		truncated = cut || truncated
		if s != "" {
			a = append(a, attribute.String(sa.GenAIOutputMessages, s))
		}
	}
	if truncated {
		a = append(a, attribute.Bool(sa.ContentTruncated, true))
	}
	return a
}

// maxContentJSON bounds each content attribute as encoded, whatever the
// policy's cap: JSON escapes a control character in six bytes, and a span
// over the collector's receive limit (4 MiB for OTLP/gRPC by default) would
// be refused whole.
const maxContentJSON = 1 << 20

// marshalCapped is msgs cut to max bytes of text (capMessages) as the
// conventions' JSON, within maxContentJSON; "" when nothing is left. It
// reports whether it cut.
func marshalCapped(msgs []message, max int) (string, bool) {
	msgs, cut := capMessages(msgs, max)
	for {
		if len(msgs) == 0 {
			return "", cut
		}
		b, err := json.Marshal(msgs)
		if err != nil {
			return "", cut
		}
		if len(b) <= maxContentJSON || max <= 0 {
			return validJSON(b), cut
		}
		// Escapes made it larger than its text: halve the text until it fits
		// (the small fields alone stay far below the bound).
		max /= 2
		msgs, _ = capMessages(msgs, max)
		cut = true
	}
}

// unmarshalLenient decodes b, reading bytes that are not UTF-8 as U+FFFD
// (the decoder refuses them, and a prompt with one stray byte is still
// worth recording).
func unmarshalLenient(b []byte, v any) error {
	err := json.Unmarshal(b, v)
	if err != nil && !utf8.Valid(b) {
		err = json.Unmarshal(bytes.ToValidUTF8(b, []byte("\uFFFD")), v)
	}
	return err
}

// validJSON is b as a string. Every string in it was cleaned before
// marshalling, so it is valid UTF-8; the check keeps that true whatever the
// encoder does.
func validJSON(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// inputMessages reads the prompt of any dialect Loom relays: chat
// messages (OpenAI, and Anthropic's with its top-level system and content
// blocks), a Responses API input (a string or a list of items, after its
// instructions), a completion prompt or embeddings input.
func inputMessages(req map[string]any) []message {
	var out []message
	// Anthropic's system prompt and the Responses API's instructions sit
	// beside the turns, not among them.
	for _, field := range []string{"system", "instructions"} {
		if parts := textParts(req[field]); len(parts) > 0 {
			out = append(out, message{Role: "system", Parts: parts})
		}
	}
	if msgs, ok := req["messages"].([]any); ok {
		for _, m := range msgs {
			mm, _ := m.(map[string]any)
			msg := message{Role: asString(mm["role"]), Name: asString(mm["name"])}
			msg.Parts = textParts(mm["content"])
			if id := asString(mm["tool_call_id"]); id != "" {
				msg.Parts = []part{{Type: "tool_call_response", ID: id, Response: joinText(msg.Parts)}}
			}
			msg.Parts = append(msg.Parts, toolCalls(mm["tool_calls"])...)
			out = append(out, msg)
		}
		return out
	}
	if items, ok := req["input"].([]any); ok && len(out) > 0 || ok && responsesItems(items) {
		return append(out, itemMessages(items)...)
	}
	for _, field := range []string{"prompt", "input"} {
		if parts := textParts(req[field]); len(parts) > 0 {
			return append(out, message{Role: "user", Parts: parts})
		}
	}
	return out
}

// responsesItems tells a Responses API input list (objects with a role or a
// type) from embeddings' list of strings or token arrays.
func responsesItems(items []any) bool {
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok || (m["role"] == nil && m["type"] == nil) {
			return false
		}
	}
	return len(items) > 0
}

// itemMessages reads Responses API items: messages, function calls and
// their outputs. Reasoning items carry no text worth keeping.
func itemMessages(items []any) []message {
	var out []message
	for _, it := range items {
		m, _ := it.(map[string]any)
		switch asString(m["type"]) {
		case "function_call":
			out = append(out, message{Role: "assistant", Parts: []part{{Type: "tool_call", ID: asString(m["call_id"]),
				Name: asString(m["name"]), Arguments: asString(m["arguments"])}}})
		case "function_call_output":
			out = append(out, message{Role: "tool", Parts: []part{{Type: "tool_call_response", ID: asString(m["call_id"]),
				Response: asString(m["output"])}}})
		case "", "message":
			if role := asString(m["role"]); role != "" {
				out = append(out, message{Role: role, Parts: textParts(m["content"])})
			}
		}
	}
	return out
}

// textParts reads a content that is a string, a list of strings or a list
// of typed parts or blocks (OpenAI's text parts, the Responses API's
// input_text and output_text, Anthropic's text, tool_use and tool_result
// blocks); other parts keep only their type.
func textParts(v any) []part {
	switch v := v.(type) {
	case string:
		return []part{textPart(v)}
	case []any:
		var parts []part
		for _, e := range v {
			switch e := e.(type) {
			case string:
				parts = append(parts, textPart(e))
			case map[string]any:
				switch t := asString(e["type"]); t {
				case "text", "input_text", "output_text":
					parts = append(parts, textPart(asString(e["text"])))
				case "tool_use":
					parts = append(parts, part{Type: "tool_call", ID: asString(e["id"]), Name: asString(e["name"]),
						Arguments: compactJSON(e["input"])})
				case "tool_result":
					parts = append(parts, part{Type: "tool_call_response", ID: asString(e["tool_use_id"]),
						Response: joinText(textParts(e["content"]))})
				case "":
				default:
					parts = append(parts, part{Type: t})
				}
			}
		}
		return parts
	}
	return nil
}

func toolCalls(v any) []part {
	calls, _ := v.([]any)
	var parts []part
	for _, c := range calls {
		cm, _ := c.(map[string]any)
		fn, _ := cm["function"].(map[string]any)
		parts = append(parts, part{Type: "tool_call", ID: asString(cm["id"]), Name: asString(fn["name"]), Arguments: asString(fn["arguments"])})
	}
	return parts
}

// compactJSON is v (a tool call's input object) as JSON, "" if it has none.
func compactJSON(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// outputMessages reads a unary body's choices, or the streamed text.
func outputMessages(r *call.Record) []message {
	c := &r.Content
	reason := func(i int) string {
		if i < len(r.FinishReasons) {
			return r.FinishReasons[i]
		}
		return ""
	}
	var out []message
	if !r.Stream {
		var resp map[string]any
		if unmarshalLenient(c.Response, &resp) != nil {
			return nil
		}
		if blocks, ok := resp["content"].([]any); ok {
			// An Anthropic message: one assistant turn of content blocks.
			return []message{{Role: "assistant", Parts: textParts(blocks), FinishReason: cmp.Or(asString(resp["stop_reason"]), reason(0))}}
		}
		if items, ok := resp["output"].([]any); ok {
			// A Responses API answer: its items, the status as the reason.
			out = itemMessages(items)
			for i := range out {
				out[i].FinishReason = cmp.Or(reason(0), asString(resp["status"]))
			}
			return out
		}
		choices, _ := resp["choices"].([]any)
		for i, ch := range choices {
			cm, _ := ch.(map[string]any)
			msg := message{Role: "assistant", FinishReason: asString(cm["finish_reason"])}
			if m, ok := cm["message"].(map[string]any); ok {
				msg.Parts = append(textParts(m["content"]), toolCalls(m["tool_calls"])...)
			} else if text, ok := cm["text"].(string); ok {
				msg.Parts = []part{textPart(text)}
			}
			if msg.FinishReason == "" {
				msg.FinishReason = reason(i)
			}
			out = append(out, msg)
		}
		return out
	}
	for i, text := range c.Choices {
		out = append(out, message{Role: "assistant", Parts: []part{textPart(string(text))}, FinishReason: reason(i)})
	}
	return out
}

// capMessages keeps at most max bytes of text (contents, tool call
// arguments and responses) of msgs, and at most maxMeta of everything else,
// the latest first: the end of a conversation says most about the call.
// Earlier parts and messages that do not fit are left out whole, never kept
// as a text part without its text; every string comes out valid UTF-8. It
// reports whether it cut.
func capMessages(msgs []message, max int) ([]message, bool) {
	b := budget{text: max, metaLeft: maxMeta}
	for i := len(msgs) - 1; i >= 0; i-- {
		m := &msgs[i]
		if !b.meta(overhead) || !b.small(&m.Role) || !b.small(&m.Name) || !b.small(&m.FinishReason) {
			return msgs[i+1:], true
		}
		for j := len(m.Parts) - 1; j >= 0; j-- {
			if !b.part(&m.Parts[j]) {
				if m.Parts = m.Parts[j+1:]; len(m.Parts) == 0 {
					return msgs[i+1:], true
				}
				return msgs[i:], true
			}
			if b.cut {
				m.Parts = m.Parts[j:]
				return msgs[i:], true
			}
		}
		if m.Parts == nil {
			m.Parts = []part{} // the conventions want an array, not null
		}
	}
	return msgs, false
}

// budget is what capMessages has left.
type budget struct {
	text, metaLeft int
	cut            bool // a text was cut: nothing earlier fits
}

func (b *budget) meta(n int) bool {
	b.metaLeft -= n
	return b.metaLeft >= 0
}

// small cleans a small field in place; false if it does not fit.
func (b *budget) small(s *string) bool {
	if *s == "" {
		return true
	}
	v := call.Clean(*s, maxField)
	*s = v
	return b.meta(len(v))
}

// part cuts p to what is left; false means p does not fit and is dropped.
// Its text may be cut, but only if some of it is kept.
func (b *budget) part(p *part) bool {
	if !b.meta(overhead) || !b.small(&p.Type) || !b.small(&p.ID) || !b.small(&p.Name) {
		return false
	}
	texts := [3]*string{&p.Arguments, &p.Response, p.Content}
	for _, f := range texts {
		if f == nil || *f == "" {
			continue
		}
		v := call.Clean(*f, max(b.text, 0))
		if len(v) < len(*f) {
			if v == "" {
				return false
			}
			b.cut = true
		}
		*f = v
		b.text -= len(v)
	}
	return true
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

func joinText(parts []part) string {
	var b strings.Builder
	for _, p := range parts {
		if p.Content != nil {
			b.WriteString(*p.Content)
		}
	}
	return b.String()
}
