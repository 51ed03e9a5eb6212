package tap

import (
	"bytes"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// The Responses API (POST /v1/responses) answers with a response object,
// and streams typed events ("event: response.output_text.delta" and a
// "data:" whose "type" says the same) that end with response.completed,
// response.incomplete or response.failed, each carrying the whole response
// object with its usage; there is no [DONE]. What the span needs sits in
// that object: id, model, status, usage (input_tokens with
// input_tokens_details.cached_tokens, output_tokens with
// output_tokens_details.reasoning_tokens), error.

// ObserveResponse reads a Responses API response object (a unary answer,
// or the "response" of a stream's lifecycle event) into r, and an error
// body ({"error": ...}) as Observe does. A terminal status becomes the
// finish reason of choice 0: completed is "stop" ("tool_calls" when the
// output calls a function), incomplete is "length" for max_output_tokens
// and the reason given otherwise.
func ObserveResponse(r *call.Record, data []byte) Chunk {
	var c Chunk
	var m json.Members
	if !m.Reset(data) {
		return c
	}
	c.Valid = true
	var status, reason []byte
	calls := false
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
		case "status":
			if m.Kind() == json.String {
				status = m.Value()
			}
		case "incomplete_details":
			if m.Kind() == json.Object {
				reason = stringMember(m.Value(), "reason")
			}
		case "output":
			if m.Kind() == json.Array {
				calls = callsFunction(m.Value())
			}
		case "usage":
			if m.Kind() == json.Object {
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
	switch string(status) {
	case `"completed"`:
		if calls {
			r.SetFinishReason(0, "tool_calls")
		} else {
			r.SetFinishReason(0, "stop")
		}
	case `"incomplete"`:
		switch string(reason) {
		case `"max_output_tokens"`:
			r.SetFinishReason(0, "length")
		case "":
			r.SetFinishReason(0, "incomplete")
		default:
			r.SetFinishReason(0, internReason(reason))
		}
	case `"failed"`:
		c.Error = true
		if r.ErrorType == "" {
			r.ErrorType = "response_failed"
		}
	}
	return c
}

// ObserveResponseEvent reads one Responses API stream event (its data)
// into r: the response object of a lifecycle event (response.created
// names the id and model, the terminal event brings usage and status), an
// error event, and output deltas, which an estimate counts when no usage
// ever comes.
func ObserveResponseEvent(r *call.Record, data []byte) Chunk {
	var c Chunk
	var m json.Members
	if !m.Reset(data) {
		return c
	}
	c.Valid = true
	var typ, resp, errObj []byte
	output := false
	for m.Next() {
		switch string(m.Key()) {
		case "type":
			if m.Kind() == json.String {
				typ = m.Value()
			}
		case "response":
			if m.Kind() == json.Object {
				resp = m.Value()
			}
		case "error":
			if m.Kind() == json.Object {
				errObj = m.Value()
			}
		case "delta":
			output = m.Kind() == json.String && len(m.Value()) > 2
		}
	}
	if m.Err() != nil {
		c.Valid = false
		return c
	}
	switch {
	case resp != nil:
		if ObserveResponse(r, resp).Error {
			c.Error = true
		}
	case string(typ) == `"error"`:
		// {"type":"error","error":{...}} now; the code and message sat at
		// the top level before.
		c.Error = true
		if errObj == nil {
			errObj = data
		}
		observeError(r, errObj)
		if r.ErrorType == "error" {
			r.ErrorType = "upstream_error"
		}
	case output && bytes.HasSuffix(typ, []byte(`.delta"`)):
		r.OutputPieces++
	}
	return c
}

// ObserveResponseContent adds the text a Responses stream event carries
// (response.output_text.delta) to c, as choice 0. Only tenants that
// capture content pay for it, so it may allocate.
func ObserveResponseContent(c *call.Content, data []byte) {
	var m json.Members
	if !m.Reset(data) {
		return
	}
	var typ, delta []byte
	for m.Next() {
		switch string(m.Key()) {
		case "type":
			typ = m.Value()
		case "delta":
			if m.Kind() == json.String {
				delta = m.Value()
			}
		}
	}
	if string(typ) == `"response.output_text.delta"` && delta != nil {
		s, _ := json.AppendString(nil, delta)
		c.AppendChoice(0, s)
	}
}

// stringMember is the quoted string value of key in object v, or nil.
func stringMember(v []byte, key string) []byte {
	var m json.Members
	m.Reset(v)
	for m.Next() {
		if string(m.Key()) == key && m.Kind() == json.String {
			return m.Value()
		}
	}
	return nil
}

// callsFunction says whether a response's output holds a function call.
func callsFunction(v []byte) bool {
	var e json.Elements
	e.Reset(v)
	for e.Next() {
		if e.Kind() == json.Object && string(stringMember(e.Value(), "type")) == `"function_call"` {
			return true
		}
	}
	return false
}
