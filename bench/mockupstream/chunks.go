package mockupstream

import (
	"encoding/json"
	"strconv"
)

// chunkFrame builds stream chunks by appending to a fixed prefix and suffix, so the key order of every
// chunk is the provider's (encoding/json of a struct would do too, but not cheaply per event).
type chunkFrame struct {
	prefix    string // `{"id":...,"choices":[`
	suffix    string // `]` plus any keys the provider puts after choices, without the closing brace
	usageNull bool   // add "usage":null to every chunk but the usage chunk
}

func (f chunkFrame) event(choice []byte) sseEvent {
	b := make([]byte, 0, len(f.prefix)+len(choice)+len(f.suffix)+32)
	b = append(b, "data: "...)
	b = append(b, f.prefix...)
	b = append(b, choice...)
	b = append(b, f.suffix...)
	if f.usageNull {
		b = append(b, `,"usage":null`...)
	}
	return sseEvent{data: append(b, "}\n\n"...)}
}

// usageEvent is the final chunk that include_usage asks for: no choices, the usage.
func (f chunkFrame) usageEvent(u Usage, usageJSON []byte) sseEvent {
	b := make([]byte, 0, len(f.prefix)+len(f.suffix)+len(usageJSON)+32)
	b = append(b, "data: "...)
	b = append(b, f.prefix...)
	b = append(b, f.suffix...)
	b = append(b, `,"usage":`...)
	b = append(b, usageJSON...)
	return sseEvent{data: append(b, "}\n\n"...), usage: &u}
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil { // a string always marshals
		panic(err)
	}
	return append(dst, b...)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // only the mock's own types reach here
		panic(err)
	}
	return b
}

// events is the chat stream, shaped like fixtures/wire/openai/chat-stream-text-include-usage.sse and
// chat-stream-tool-call.sse: per choice a role chunk, the token (or argument) deltas and a finish chunk,
// choices interleaved, then the usage chunk only if asked for, then [DONE].
func (g *chatGen) events(includeUsage, usageNull bool) []sseEvent {
	var p []byte
	p = append(p, `{"id":`...)
	p = appendJSONString(p, g.c.id("chatcmpl-"))
	p = append(p, `,"object":"chat.completion.chunk","created":`...)
	p = strconv.AppendInt(p, g.c.created, 10)
	p = append(p, `,"model":`...)
	p = appendJSONString(p, g.model)
	p = append(p, `,"system_fingerprint":"`+systemFingerprint+`","choices":[`...)
	f := chunkFrame{prefix: string(p), suffix: "]", usageNull: includeUsage && usageNull}

	perChoice := make([][]sseEvent, g.n)
	for i := range g.n {
		idx := `{"index":` + strconv.Itoa(i) + `,"delta":`
		const tail = `,"logprobs":null,"finish_reason":null}`
		var evs []sseEvent
		if g.tool != "" {
			var c []byte
			c = append(c, idx...)
			c = append(c, `{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":`...)
			c = appendJSONString(c, g.callID(i))
			c = append(c, `,"type":"function","function":{"name":`...)
			c = appendJSONString(c, g.tool)
			c = append(c, `,"arguments":""}}],"refusal":null}`+tail...)
			evs = append(evs, f.event(c))
			for _, frag := range argFragments(g.args, g.tokens) {
				c = append(c[:0], idx...)
				c = append(c, `{"tool_calls":[{"index":0,"function":{"arguments":`...)
				c = appendJSONString(c, frag)
				c = append(c, `}}]}`+tail...)
				evs = append(evs, f.event(c))
			}
			evs = append(evs, f.event([]byte(idx+`{},"logprobs":null,"finish_reason":"tool_calls"}`)))
		} else {
			evs = append(evs, f.event([]byte(idx+`{"role":"assistant","content":"","refusal":null}`+tail)))
			for k := range g.tokens {
				evs = append(evs, f.event([]byte(idx+`{"content":"`+tokenText(k)+`"}`+tail)))
			}
			evs = append(evs, f.event([]byte(idx+`{},"logprobs":null,"finish_reason":"`+g.finish+`"}`)))
		}
		perChoice[i] = evs
	}
	out := interleave(perChoice)
	if includeUsage {
		u := g.usage()
		ev := f.usageEvent(u, mustJSON(g.chatUsage()))
		if p := &g.c.plan; p.cacheRead > 0 || p.reasoning > 0 {
			ev.wire = eventUsage(ev.data) // the log records the cache and reasoning counts too
		}
		out = append(out, ev)
	}
	return append(out, doneEvent())
}
