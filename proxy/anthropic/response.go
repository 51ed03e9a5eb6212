package anthropic

import (
	"fmt"
	"strconv"
	"time"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// Caps on what an upstream's strings may put in a Record.
const (
	maxIDBytes    = 256
	maxModelBytes = 256
)

// messageFields are the members of a Messages answer (or of the message in
// message_start) that Loom reads; they alias the body.
type messageFields struct {
	typ, id, model, content, stopReason, usage []byte
}

func (f *messageFields) read(body []byte) bool {
	var m json.Members
	if !m.Reset(body) {
		return false
	}
	for m.Next() {
		v, kind := m.Value(), m.Kind()
		switch string(m.Key()) {
		case "type":
			if kind == json.String {
				f.typ = v
			}
		case "id":
			if kind == json.String {
				f.id = v
			}
		case "model":
			if kind == json.String {
				f.model = v
			}
		case "content":
			if kind == json.Array {
				f.content = v
			}
		case "stop_reason":
			if kind == json.String {
				f.stopReason = v
			}
		case "usage":
			if kind == json.Object {
				f.usage = v
			}
		}
	}
	return m.Err() == nil
}

// record fills rec's ids from f.
func (f *messageFields) record(rec *call.Record) {
	if f.id != nil && len(rec.ResponseID) == 0 {
		setString(&rec.ResponseID, f.id, maxIDBytes)
	}
	if f.model != nil && len(rec.ResponseModel) == 0 {
		setString(&rec.ResponseModel, f.model, maxModelBytes)
	}
}

// AppendChatCompletion appends to dst the chat.completion that says what
// the Messages answer messagesBody (a 200's body) says, and fills rec with
// its id, model, finish reason and usage. Text blocks join into the
// message's content, tool_use blocks become tool_calls (their input as the
// arguments string), thinking becomes reasoning_content. An error wraps
// ErrMalformed: the body was not a Messages answer.
func AppendChatCompletion(dst, messagesBody []byte, rec *call.Record) ([]byte, error) {
	if !json.Valid(messagesBody) {
		return dst, fmt.Errorf("%w: not JSON", ErrMalformed)
	}
	var f messageFields
	if !f.read(messagesBody) {
		return dst, fmt.Errorf("%w: not an object", ErrMalformed)
	}
	// An Anthropic-compatible server may leave type out; one that names
	// another type (an error with a 200) did not answer.
	if f.typ != nil && string(f.typ) != `"message"` || f.typ == nil && f.content == nil {
		return dst, fmt.Errorf("%w: type is %.40s, not message", ErrMalformed, f.typ)
	}
	f.record(rec)
	u := usage{final: true}
	if f.usage != nil {
		u.read(f.usage)
		u.fill(rec)
	}
	reason := finishReason(f.stopReason)
	if f.stopReason == nil {
		reason = "stop"
	}
	rec.SetFinishReason(0, reason)

	dst = append(dst, `{"id":`...)
	dst = appendString(dst, orEmpty(f.id))
	dst = append(dst, `,"object":"chat.completion","created":`...)
	dst = strconv.AppendInt(dst, time.Now().Unix(), 10)
	dst = append(dst, `,"model":`...)
	dst = appendString(dst, orEmpty(f.model))
	dst = append(dst, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	text := false
	for b := range blocksOf(f.content, `"text"`) {
		if !text {
			dst, text = append(dst, '"'), true
		}
		dst = appendInner(dst, b.text)
	}
	if text {
		dst = append(dst, '"')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"refusal":null`...)
	thinking := false
	for b := range blocksOf(f.content, `"thinking"`) {
		if !thinking {
			dst, thinking = append(dst, `,"reasoning_content":"`...), true
		}
		dst = appendInner(dst, b.thinking)
	}
	if thinking {
		dst = append(dst, '"')
	}
	calls := 0
	for b := range blocksOf(f.content, `"tool_use"`) {
		if calls == 0 {
			dst = append(dst, `,"tool_calls":[`...)
		} else {
			dst = append(dst, ',')
		}
		calls++
		dst = append(dst, `{"id":`...)
		dst = appendString(dst, orEmpty(b.id))
		dst = append(dst, `,"type":"function","function":{"name":`...)
		dst = appendString(dst, orEmpty(b.name))
		dst = append(dst, `,"arguments":`...)
		input := b.input
		if input == nil {
			input = []byte("{}")
		}
		dst = appendArguments(dst, input)
		dst = append(dst, "}}"...)
	}
	if calls > 0 {
		dst = append(dst, ']')
	}
	dst = append(dst, `},"logprobs":null,"finish_reason":"`...)
	dst = append(dst, reason...)
	dst = append(dst, `"}]`...)
	if u.seen {
		dst = append(dst, `,"usage":`...)
		dst = u.appendOpenAI(dst)
	}
	return append(dst, '}'), nil
}

func orEmpty(quoted []byte) []byte {
	if quoted == nil {
		return []byte(`""`)
	}
	return quoted
}

// block is one content block of a Messages answer; its fields alias the
// body (strings quoted, input raw).
type block struct {
	typ, text, thinking, id, name, input []byte
}

// readBlock reads one content block.
func readBlock(v []byte) block {
	var b block
	var m json.Members
	m.Reset(v)
	for m.Next() {
		v, kind := m.Value(), m.Kind()
		switch string(m.Key()) {
		case "type":
			if kind == json.String {
				b.typ = v
			}
		case "text":
			if kind == json.String {
				b.text = v
			}
		case "thinking":
			if kind == json.String {
				b.thinking = v
			}
		case "id":
			if kind == json.String {
				b.id = v
			}
		case "name":
			if kind == json.String {
				b.name = v
			}
		case "input":
			if kind == json.Object {
				b.input = v
			}
		}
	}
	return b
}

// blocksOf yields the blocks of content whose type is one of types
// (quoted).
func blocksOf(content []byte, types ...string) func(yield func(block) bool) {
	return func(yield func(block) bool) {
		var e json.Elements
		if !e.Reset(content) {
			return
		}
		for e.Next() {
			if e.Kind() != json.Object {
				continue
			}
			b := readBlock(e.Value())
			for _, t := range types {
				if string(b.typ) == t {
					if !yield(b) {
						return
					}
					break
				}
			}
		}
	}
}

// maxErrorMessage caps the upstream's error message that a client sees.
const maxErrorMessage = 4 << 10

// errorKind is how one Anthropic error type reads to an OpenAI client.
type errorKind struct {
	status     int
	typ, code  string
	keepStatus bool // the upstream's own 4xx/5xx status says more than the type
}

var errorKinds = map[string]errorKind{
	"invalid_request_error": {400, apierror.TypeInvalidRequest, "", true},
	"authentication_error":  {401, apierror.TypeInvalidRequest, "invalid_api_key", true},
	"permission_error":      {403, apierror.TypeInvalidRequest, "permission_denied", true},
	"not_found_error":       {404, apierror.TypeInvalidRequest, "not_found", true},
	"request_too_large":     {413, apierror.TypeInvalidRequest, "request_too_large", true},
	"rate_limit_error":      {429, "requests", "rate_limit_exceeded", false},
	// Anthropic's billing_error is OpenAI's insufficient_quota: a 429 that
	// retrying the same account will not cure.
	"billing_error":    {429, "insufficient_quota", "insufficient_quota", false},
	"api_error":        {500, apierror.TypeServer, "api_error", true},
	"timeout_error":    {504, apierror.TypeServer, "timeout", false},
	"overloaded_error": {503, apierror.TypeServer, "overloaded", false},
}

// ErrorToOpenAI appends to dst the OpenAI-shaped error
// ({"error":{"message","type","param","code"}}) for an Anthropic error
// answer (status and body) and returns the status to answer with. The
// status stays the upstream's, except 529 (overloaded), which no OpenAI
// SDK knows, becomes 503. 401 and 403 stay as they are: the server turns a
// deployment's credential problem into its own 502. A body that is not
// Anthropic's error shape still gets an error named after the status.
// ObserveMessage records the error's type and message in a call.Record;
// Retry-After and the rate-limit headers are the caller's to pass on.
func ErrorToOpenAI(dst []byte, status int, anthropicBody []byte) (int, []byte) {
	typ, msg := readError(anthropicBody)
	k, known := errorKinds[string(typ)]
	if !known {
		k = kindForStatus(status)
	}
	out := status
	switch {
	case status == 529:
		out = 503
	case status < 400 || status > 599:
		out = k.status
	case known && !k.keepStatus:
		out = k.status
	}
	e := apierror.Error{Status: out, Type: k.typ, Code: k.code}
	if len(msg) > 0 {
		if len(msg) > maxErrorMessage {
			msg = msg[:call.RuneBoundary(msg, maxErrorMessage)]
		}
		e.Message = call.CleanBytes(msg, maxErrorMessage)
	} else {
		e.Message = fmt.Sprintf("The Anthropic upstream answered with status %d.", status)
	}
	return out, e.AppendJSON(dst)
}

// readError reads {"type":"error","error":{"type","message"}}; typ is
// decoded into a short buffer, msg decoded.
func readError(body []byte) (typ, msg []byte) {
	var m json.Members
	if !m.Reset(body) {
		return nil, nil
	}
	for m.Next() {
		if string(m.Key()) != "error" || m.Kind() != json.Object {
			continue
		}
		var e json.Members
		e.Reset(m.Value())
		for e.Next() {
			if e.Kind() != json.String {
				continue
			}
			switch string(e.Key()) {
			case "type":
				typ, _ = json.AppendString(nil, e.Value())
			case "message":
				msg, _ = json.AppendString(nil, e.Value())
			}
		}
	}
	return typ, msg
}

func kindForStatus(status int) errorKind {
	switch {
	case status == 429:
		return errorKinds["rate_limit_error"]
	case status == 529:
		return errorKinds["overloaded_error"]
	case status >= 400 && status < 500:
		return errorKind{status: status, typ: apierror.TypeInvalidRequest}
	}
	return errorKind{status: 502, typ: apierror.TypeServer, code: "upstream_error"}
}
