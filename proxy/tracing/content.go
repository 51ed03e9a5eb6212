package tracing

import (
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

type part struct {
	Type      string `json:"type"`
	Content   string `json:"content,omitempty"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments,omitempty"`
	Response  string `json:"response,omitempty"`
}

// appendContent adds the captured prompt and completion, converted to the
// conventions' JSON and cut to the policy's cap. It runs only for tenants
// that opted in, so it may allocate freely.
func appendContent(a []attribute.KeyValue, r *call.Record) []attribute.KeyValue {
	c := &r.Content
	truncated := c.Truncated
	var req map[string]any
	if json.Unmarshal(c.Request, &req) == nil {
		in := inputMessages(req)
		truncated = capText(in, c.Max) || truncated
		if b, err := json.Marshal(in); err == nil && len(in) > 0 {
			a = append(a, attribute.String(sa.GenAIInputMessages, string(b)))
		}
	}
	out := outputMessages(r)
	truncated = capText(out, c.Max) || truncated
	if b, err := json.Marshal(out); err == nil && len(out) > 0 {
		a = append(a, attribute.String(sa.GenAIOutputMessages, string(b)))
	}
	if truncated {
		a = append(a, attribute.Bool(sa.ContentTruncated, true))
	}
	return a
}

// inputMessages reads chat messages, a completion prompt or embeddings input.
func inputMessages(req map[string]any) []message {
	var out []message
	if msgs, ok := req["messages"].([]any); ok {
		for _, m := range msgs {
			mm, _ := m.(map[string]any)
			msg := message{Role: str(mm["role"]), Name: str(mm["name"])}
			msg.Parts = textParts(mm["content"])
			if id := str(mm["tool_call_id"]); id != "" {
				msg.Parts = []part{{Type: "tool_call_response", ID: id, Response: joinText(msg.Parts)}}
			}
			msg.Parts = append(msg.Parts, toolCalls(mm["tool_calls"])...)
			out = append(out, msg)
		}
		return out
	}
	for _, field := range []string{"prompt", "input"} {
		if parts := textParts(req[field]); len(parts) > 0 {
			return []message{{Role: "user", Parts: parts}}
		}
	}
	return nil
}

// textParts reads a content that is a string, a list of strings or a list
// of typed parts; non-text parts keep only their type.
func textParts(v any) []part {
	switch v := v.(type) {
	case string:
		return []part{{Type: "text", Content: v}}
	case []any:
		var parts []part
		for _, e := range v {
			switch e := e.(type) {
			case string:
				parts = append(parts, part{Type: "text", Content: e})
			case map[string]any:
				if t := str(e["type"]); t == "text" {
					parts = append(parts, part{Type: "text", Content: str(e["text"])})
				} else if t != "" {
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
		parts = append(parts, part{Type: "tool_call", ID: str(cm["id"]), Name: str(fn["name"]), Arguments: str(fn["arguments"])})
	}
	return parts
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
		if json.Unmarshal(c.Response, &resp) != nil {
			return nil
		}
		choices, _ := resp["choices"].([]any)
		for i, ch := range choices {
			cm, _ := ch.(map[string]any)
			msg := message{Role: "assistant", FinishReason: str(cm["finish_reason"])}
			if m, ok := cm["message"].(map[string]any); ok {
				msg.Parts = append(textParts(m["content"]), toolCalls(m["tool_calls"])...)
			} else if text, ok := cm["text"].(string); ok {
				msg.Parts = []part{{Type: "text", Content: text}}
			}
			if msg.FinishReason == "" {
				msg.FinishReason = reason(i)
			}
			out = append(out, msg)
		}
		return out
	}
	for i, text := range c.Choices {
		out = append(out, message{Role: "assistant", Parts: []part{{Type: "text", Content: string(text)}}, FinishReason: reason(i)})
	}
	return out
}

// capText keeps at most max bytes of text in msgs, the latest first: the
// end of a conversation says most about the call. It reports whether it cut.
func capText(msgs []message, max int) bool {
	var texts []*string
	for i := range msgs {
		for j := range msgs[i].Parts {
			p := &msgs[i].Parts[j]
			texts = append(texts, &p.Content, &p.Arguments, &p.Response)
		}
	}
	left, cut := max, false
	for i := len(texts) - 1; i >= 0; i-- {
		s := texts[i]
		if len(*s) <= left {
			left -= len(*s)
			continue
		}
		*s = (*s)[:call.RuneBoundary([]byte(*s), left)]
		left, cut = 0, true
	}
	return cut
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func joinText(parts []part) string {
	var s string
	for _, p := range parts {
		s += p.Content
	}
	return s
}
