// Package tap reads what a span needs from OpenAI-shaped response bodies and
// stream chunks: id, model, finish reasons, usage, upstream errors. It reads
// in place and never allocates per chunk in steady state (a Record's buffers
// fill once per call); it never changes the bytes it reads.
package tap

import (
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// Chunk is what the tap learned about one JSON document that the relay may
// need to act on.
type Chunk struct {
	// UsageStart and UsageEnd cut the top-level "usage" member (with one comma)
	// out of the document; both are 0 when there is none.
	UsageStart, UsageEnd int
	// UsageOnly is true for the usage chunk that include_usage adds: usage set
	// and no choices. Loom drops it when it asked for usage on the client's
	// behalf.
	UsageOnly bool
	// Error is true for an error object ({"error": ...}) in place of a chunk.
	Error bool
	// Valid is false when the data was not a JSON object (e.g. [DONE]).
	Valid bool
}

// Observe reads one chunk or unary body into r and reports what it found.
func Observe(r *call.Record, data []byte) Chunk {
	var c Chunk
	var m json.Members
	if !m.Reset(data) {
		return c
	}
	c.Valid = true
	hasUsage, choicesEmpty := false, false
	for m.Next() {
		switch string(m.Key()) {
		case "id":
			if len(r.ResponseID) == 0 && m.Kind() == json.String {
				r.ResponseID, _ = json.AppendString(r.ResponseID[:0], m.Value())
			}
		case "model":
			if len(r.ResponseModel) == 0 && m.Kind() == json.String {
				r.ResponseModel, _ = json.AppendString(r.ResponseModel[:0], m.Value())
			}
		case "choices":
			if m.Kind() == json.Array {
				choicesEmpty = json.IsEmptyArray(m.Value())
				observeChoices(r, m.Value())
			}
		case "usage":
			c.UsageStart, c.UsageEnd = m.MemberSpan()
			if m.Kind() == json.Object {
				hasUsage = true
				observeUsage(r, m.Value())
			}
		case "error":
			if m.Kind() == json.Object {
				c.Error = true
				observeError(r, m.Value())
			}
		}
	}
	if m.Err() != nil {
		c.Valid = false
	}
	c.UsageOnly = hasUsage && choicesEmpty
	return c
}

func observeChoices(r *call.Record, v []byte) {
	var e json.Elements
	e.Reset(v)
	for e.Next() {
		if e.Kind() != json.Object {
			continue
		}
		var m json.Members
		m.Reset(e.Value())
		index, reason := int64(0), []byte(nil)
		for m.Next() {
			switch string(m.Key()) {
			case "index":
				index, _ = json.Int(m.Value())
			case "finish_reason":
				if m.Kind() == json.String {
					reason = m.Value()
				}
			case "text": // legacy completions
				if m.Kind() == json.String && len(m.Value()) > 2 {
					r.OutputPieces++
				}
			case "delta":
				if m.Kind() == json.Object && deltaCarriesOutput(m.Value()) {
					r.OutputPieces++
				}
			}
		}
		if reason != nil {
			r.SetFinishReason(int(index), internReason(reason))
		}
	}
}

// deltaCarriesOutput says whether a streamed delta holds generated text or
// a tool call fragment: what an output estimate counts.
func deltaCarriesOutput(v []byte) bool {
	var m json.Members
	m.Reset(v)
	for m.Next() {
		switch string(m.Key()) {
		case "content", "refusal":
			if m.Kind() == json.String && len(m.Value()) > 2 {
				return true
			}
		case "tool_calls":
			if m.Kind() == json.Array && !json.IsEmptyArray(m.Value()) {
				return true
			}
		}
	}
	return false
}

// internReason maps the finish reasons providers send to constants, so that
// recording one costs no allocation; an unknown one is copied.
func internReason(quoted []byte) string {
	if len(quoted) >= 2 {
		switch string(quoted[1 : len(quoted)-1]) {
		case "stop":
			return "stop"
		case "length":
			return "length"
		case "tool_calls":
			return "tool_calls"
		case "content_filter":
			return "content_filter"
		case "function_call":
			return "function_call"
		case "end_turn":
			return "end_turn"
		case "max_tokens":
			return "max_tokens"
		case "tool_use":
			return "tool_use"
		}
	}
	s, _ := json.AppendString(nil, quoted)
	return string(s)
}

func observeUsage(r *call.Record, v []byte) {
	var m json.Members
	m.Reset(v)
	u := &r.Usage
	for m.Next() {
		switch string(m.Key()) {
		case "prompt_tokens", "input_tokens":
			u.InputTokens, _ = json.Int(m.Value())
		case "completion_tokens", "output_tokens":
			u.OutputTokens, _ = json.Int(m.Value())
		case "total_tokens":
			u.TotalTokens, _ = json.Int(m.Value())
		case "prompt_tokens_details", "input_tokens_details":
			if n, ok := detail(m.Value(), "cached_tokens"); ok {
				u.CachedInputTokens, u.HasCached = n, true
			}
			// The Responses API's newer count of prompt tokens written to
			// the cache (input_tokens includes them, as GenAI counts).
			if n, ok := detail(m.Value(), "cache_write_tokens"); ok {
				u.CacheCreationInputTokens, u.HasCacheCreation = n, true
			}
		case "completion_tokens_details", "output_tokens_details":
			if n, ok := detail(m.Value(), "reasoning_tokens"); ok {
				u.ReasoningTokens, u.HasReasoning = n, true
			}
		}
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.InputTokens + u.OutputTokens
	}
	r.UsageSource = call.UsageProvider
}

func detail(v []byte, key string) (int64, bool) {
	var m json.Members
	if !m.Reset(v) {
		return 0, false
	}
	for m.Next() {
		if string(m.Key()) == key && m.Kind() == json.Number {
			return json.Int(m.Value())
		}
	}
	return 0, false
}

func observeError(r *call.Record, v []byte) {
	var m json.Members
	m.Reset(v)
	var typ, code []byte
	for m.Next() {
		switch string(m.Key()) {
		case "type":
			if m.Kind() == json.String {
				typ = m.Value()
			}
		case "code":
			if m.Kind() == json.String {
				code = m.Value()
			}
		}
	}
	switch {
	case code != nil:
		typ = code
	case typ == nil:
		r.ErrorType = "upstream_error"
		return
	}
	s, _ := json.AppendString(nil, typ)
	r.ErrorType = string(s)
}
