// Package request reads the few fields of an OpenAI request body that Loom
// needs (model, stream, stream_options, the recorded parameters), checks their
// types the way OpenAI does, and rewrites the body for the upstream with
// targeted splices. It never re-marshals a body: every byte Loom does not
// need to change reaches the upstream as the client sent it.
package request

import (
	"bytes"
	"cmp"
	"fmt"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// Request is what Loom read from one body. Reuse it with Parse.
type Request struct {
	Op     call.Operation
	Model  []byte // decoded
	Stream bool
	// IncludeUsage is the client's own stream_options.include_usage.
	IncludeUsage bool
	Params       call.Params
	// Responses says the body is a Responses API request (POST
	// /v1/responses): no messages, prompt or n; max_output_tokens bounds
	// the output; usage always comes with the answer, so Loom never asks
	// for it (AddsUsage is false).
	Responses bool
	// Messages says the body is an Anthropic Messages request (POST
	// /v1/messages, or its count_tokens): Loom reads model, stream,
	// messages, max_tokens and the sampling parameters, and leaves
	// Anthropic's own rules to the upstream or the translation
	// (proxy/messages); it never asks for usage (AddsUsage is false).
	Messages bool

	// modelFromPath says Model came from the URL (Azure's
	// /openai/deployments/{name}/...), not the body: the body's own model,
	// if any, is replaced upstream, and one is added where it has none.
	modelFromPath        bool
	objStart             int // the top-level opening brace
	modelStart, modelEnd int
	soKind               json.Kind // stream_options, Invalid when absent
	soStart, soEnd       int
	iuStart, iuEnd       int // include_usage value, 0 when absent
	objEnd               int // the top-level closing brace
	seen                 uint8
}

const (
	seenModel uint8 = 1 << iota
	seenStream
	seenStreamOptions
	seenRequired
)

// errNotJSON is what a body that is not JSON gets.
func errNotJSON() *apierror.Error {
	return apierror.BadRequest("", "", "We could not parse the JSON body of your request. "+
		"The API expects a JSON object (Content-Type: application/json); what was sent was not valid JSON.")
}

func errType(param string, want string, got json.Kind) *apierror.Error {
	return apierror.BadRequest("invalid_type", param,
		fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", param, want, article(got)))
}

func article(k json.Kind) string {
	switch k {
	case json.Array, json.Object, json.Invalid:
		return "an " + k.String()
	}
	return "a " + k.String()
}

func errMissing(param string) *apierror.Error {
	return apierror.BadRequest("missing_required_parameter", param,
		fmt.Sprintf("Missing required parameter: '%s'.", param))
}

// Parse reads body as a request for op. A returned error is the client's
// fault: it carries an *apierror.Error (errors.As) to answer with as is.
func (r *Request) Parse(op call.Operation, body []byte) error {
	model := r.Model[:0]
	*r = Request{Op: op, Model: model}
	return r.parse(body)
}

// ParseResponses reads body as a Responses API request (POST
// /v1/responses), whose operation is chat: model is required, input (a
// string or an array) is not (previous_response_id or a prompt template
// may stand in for it).
func (r *Request) ParseResponses(body []byte) error {
	model := r.Model[:0]
	*r = Request{Op: call.OpChat, Model: model, Responses: true}
	return r.parse(body)
}

// ParseMessages reads body as an Anthropic Messages request (see
// Messages): model and messages (an array of objects) are required.
func (r *Request) ParseMessages(body []byte) error {
	model := r.Model[:0]
	*r = Request{Op: call.OpChat, Model: model, Messages: true}
	return r.parse(body)
}

// ParseNamed reads body as a request for op on the model named in the URL
// (Azure's /openai/deployments/{model}/...): the body's own model may be
// absent, as Azure clients leave it out, and is ignored when present.
func (r *Request) ParseNamed(op call.Operation, model, body []byte) error {
	buf := r.Model[:0]
	*r = Request{Op: op, Model: buf, modelFromPath: true}
	if err := r.parse(body); err != nil {
		return err
	}
	r.Model = append(r.Model[:0], model...)
	if len(r.Model) == 0 {
		return apierror.BadRequest("", "model", "You must provide a model parameter.")
	}
	return nil
}

func (r *Request) parse(body []byte) error {
	op := r.Op
	r.Params.RequestBodyBytes = len(body)
	if !json.Valid(body) {
		return errNotJSON()
	}
	var m json.Members
	if !m.Reset(body) {
		var kind json.Kind
		if i := bytes.IndexFunc(body, func(c rune) bool { return c != ' ' && c != '\n' && c != '\r' && c != '\t' }); i >= 0 {
			kind = kindOf(body[i])
		}
		return apierror.BadRequest("invalid_type", "", fmt.Sprintf("Invalid request body: expected a JSON object, but got %s instead.", article(kind)))
	}
	var keyBuf [32]byte
	for m.Next() {
		if err := r.member(decodedKey(&m, keyBuf[:0]), &m); err != nil {
			return err
		}
	}
	if m.Err() != nil {
		return errNotJSON()
	}
	r.objStart, r.objEnd = bytes.IndexByte(body, '{'), bytes.LastIndexByte(body, '}')
	if r.seen&seenModel == 0 && !r.modelFromPath {
		return apierror.BadRequest("", "model", "You must provide a model parameter.")
	}
	if r.Responses {
		// Responses' stream_options (include_obfuscation) is the
		// upstream's to judge: Loom adds nothing to it.
		return nil
	}
	if r.seen&seenRequired == 0 {
		return errMissing(requiredParam(op))
	}
	if r.soKind == json.Object && !r.Stream && !r.Messages {
		return apierror.BadRequest("invalid_value", "stream_options",
			"The 'stream_options' parameter is only allowed when 'stream' is enabled.")
	}
	return nil
}

func kindOf(c byte) json.Kind {
	switch c {
	case '"':
		return json.String
	case '[':
		return json.Array
	case 'n':
		return json.Null
	case 't', 'f':
		return json.True
	}
	return json.Number
}

func requiredParam(op call.Operation) string {
	switch op {
	case call.OpTextCompletion:
		return "prompt"
	case call.OpEmbeddings:
		return "input"
	}
	return "messages"
}

// decodedKey is the current member's key as a JSON decoder upstream reads
// it. An escaped key is the same key to every decoder; compared raw,
// "mod\u0065l" or "include_\u0075sage" would slip past the checks while
// the upstream obeys them. Unescaped keys (nearly all) cost nothing; an
// escaped one is decoded into buf.
func decodedKey(m *json.Members, buf []byte) []byte {
	key := m.Key()
	if bytes.IndexByte(key, '\\') >= 0 {
		key, _ = json.AppendString(buf, m.QuotedKey())
	}
	return key
}

func errDuplicate(param string) *apierror.Error {
	return apierror.BadRequest("duplicate_parameter", param,
		fmt.Sprintf("Duplicate parameter: '%s' appears more than once.", param))
}

func (r *Request) once(bit uint8, param string) *apierror.Error {
	if r.seen&bit != 0 {
		return errDuplicate(param)
	}
	r.seen |= bit
	return nil
}

func (r *Request) member(key []byte, m *json.Members) *apierror.Error {
	v, kind := m.Value(), m.Kind()
	switch string(key) {
	case "model":
		if err := r.once(seenModel, "model"); err != nil {
			return err
		}
		if kind != json.String {
			return errType("model", "a string", kind)
		}
		r.Model, _ = json.AppendString(r.Model[:0], v)
		if len(r.Model) == 0 && !r.modelFromPath {
			return apierror.BadRequest("", "model", "You must provide a model parameter.")
		}
		r.modelStart, r.modelEnd = m.ValueSpan()
	case "stream":
		if err := r.once(seenStream, "stream"); err != nil {
			return err
		}
		switch kind {
		case json.True:
			r.Stream = true
		case json.False, json.Null:
		default:
			return errType("stream", "a boolean", kind)
		}
		if r.Stream && r.Op == call.OpEmbeddings {
			return apierror.BadRequest("invalid_value", "stream", "Embeddings cannot be streamed.")
		}
	case "stream_options":
		if err := r.once(seenStreamOptions, "stream_options"); err != nil {
			return err
		}
		if r.Responses || r.Messages {
			return nil
		}
		r.soKind = kind
		r.soStart, r.soEnd = m.ValueSpan()
		switch kind {
		case json.Null:
		case json.Object:
			return r.streamOptions(v)
		default:
			return errType("stream_options", "an object", kind)
		}
	case "messages":
		if r.Responses {
			return nil
		}
		return r.required(call.OpChat, "messages", m, json.Array)
	case "prompt":
		return r.required(call.OpTextCompletion, "prompt", m, json.String, json.Array)
	case "input":
		if r.Responses {
			return r.responsesInput(m)
		}
		return r.required(call.OpEmbeddings, "input", m, json.String, json.Array)
	case "max_output_tokens":
		if !r.Responses {
			return nil
		}
		return integer(&r.Params.MaxTokens, "max_output_tokens", kind, v, 0, 1<<40)
	case "temperature":
		return number(&r.Params.Temperature, "temperature", kind, v, 0, 2)
	case "top_p":
		return number(&r.Params.TopP, "top_p", kind, v, 0, 1)
	case "n":
		if r.Responses {
			return nil
		}
		return integer(&r.Params.N, "n", kind, v, 1, 128)
	case "max_tokens", "max_completion_tokens":
		if r.Responses {
			return nil
		}
		// With both (or either twice), the upstream may obey either: the
		// larger bounds what the call may generate, and is what the token
		// limiter must reserve.
		prev := r.Params.MaxTokens
		if err := integer(&r.Params.MaxTokens, string(key), kind, v, 0, 1<<40); err != nil {
			return err
		}
		if prev != nil && *prev > *r.Params.MaxTokens {
			r.Params.MaxTokens = prev
		}
	case "seed":
		return integer(&r.Params.Seed, "seed", kind, v, -1<<62, 1<<62)
	case "encoding_format":
		if r.Op != call.OpEmbeddings || kind == json.Null {
			return nil
		}
		if kind != json.String {
			return errType("encoding_format", "a string", kind)
		}
		switch string(v) {
		case `"float"`:
			r.Params.EncodingFormat = "float"
		case `"base64"`:
			r.Params.EncodingFormat = "base64"
		default:
			return apierror.BadRequest("invalid_value", "encoding_format",
				"Invalid value for 'encoding_format': expected 'float' or 'base64'.")
		}
	}
	return nil
}

func (r *Request) required(op call.Operation, param string, m *json.Members, kinds ...json.Kind) *apierror.Error {
	if r.Op != op {
		return nil
	}
	if err := r.once(seenRequired, param); err != nil {
		return err
	}
	kind := m.Kind()
	for _, k := range kinds {
		if kind == k {
			if kind == json.Array && json.IsEmptyArray(m.Value()) {
				return apierror.BadRequest("invalid_value", param,
					fmt.Sprintf("Invalid '%s': empty array. Expected an array with minimum length 1.", param))
			}
			if param == "messages" {
				return checkMessages(m.Value())
			}
			return nil
		}
	}
	want := "an array"
	if len(kinds) > 1 {
		want = "a string or an array"
	}
	return errType(param, want, kind)
}

// responsesInput checks a Responses request's input: a string or an array
// of items, at most once.
func (r *Request) responsesInput(m *json.Members) *apierror.Error {
	if err := r.once(seenRequired, "input"); err != nil {
		return err
	}
	switch m.Kind() {
	case json.String, json.Array, json.Null:
		return nil
	}
	return errType("input", "a string or an array", m.Kind())
}

func checkMessages(v []byte) *apierror.Error {
	var e json.Elements
	e.Reset(v)
	for i := 0; e.Next(); i++ {
		if e.Kind() != json.Object {
			return errType(fmt.Sprintf("messages[%d]", i), "an object", e.Kind())
		}
	}
	return nil
}

// streamOptions reads stream_options.include_usage. Its keys are compared
// decoded, and a second include_usage (raw or escaped) is refused, as at the
// top level: otherwise Loom would read one value while the upstream obeys
// another (most decoders keep the last), and a client could turn off the
// usage Loom asked for, leaving the call with an estimate.
func (r *Request) streamOptions(v []byte) *apierror.Error {
	var m json.Members
	m.Reset(v)
	var keyBuf [32]byte
	seen := false
	for m.Next() {
		if string(decodedKey(&m, keyBuf[:0])) != "include_usage" {
			continue
		}
		if seen {
			return errDuplicate("stream_options.include_usage")
		}
		seen = true
		start, end := m.ValueSpan()
		r.iuStart, r.iuEnd = r.soStart+start, r.soStart+end
		switch m.Kind() {
		case json.True:
			r.IncludeUsage = true
		case json.False, json.Null:
		default:
			return errType("stream_options.include_usage", "a boolean", m.Kind())
		}
	}
	if m.Err() != nil {
		return errNotJSON()
	}
	r.Params.IncludeUsage = r.IncludeUsage
	return nil
}

func number(dst **float64, param string, kind json.Kind, v []byte, lo, hi float64) *apierror.Error {
	if kind == json.Null {
		return nil
	}
	if kind != json.Number {
		return errType(param, "a number", kind)
	}
	f, ok := json.Float(v)
	if !ok || f < lo || f > hi {
		return apierror.BadRequest("invalid_value", param,
			fmt.Sprintf("Invalid value for '%s': must be a number between %g and %g.", param, lo, hi))
	}
	*dst = &f
	return nil
}

func integer(dst **int64, param string, kind json.Kind, v []byte, lo, hi int64) *apierror.Error {
	if kind == json.Null {
		return nil
	}
	if kind != json.Number {
		return errType(param, "an integer", kind)
	}
	n, ok := json.Int(v)
	if !ok {
		return errType(param, "an integer", json.Number)
	}
	if n < lo || n > hi {
		return apierror.BadRequest("invalid_value", param,
			fmt.Sprintf("Invalid value for '%s': must be between %d and %d.", param, lo, hi))
	}
	*dst = &n
	return nil
}

// AddsUsage reports whether Loom must ask the upstream for usage that the
// client did not ask for.
func (r *Request) AddsUsage() bool {
	return r.Stream && !r.IncludeUsage && r.Op != call.OpEmbeddings && !r.Responses && !r.Messages
}

// AppendUpstreamBody appends to dst the body to send upstream: body with the
// model set to upstreamModel and, when AddsUsage, include_usage turned on.
// Nothing else changes.
func (r *Request) AppendUpstreamBody(dst, body []byte, upstreamModel string) []byte {
	type splice struct {
		start, end int
		text       string
		quoted     bool
		// pre and post surround the (quoted) text: a member added
		// whole.
		pre, post string
	}
	var edits [2]splice
	n := 0
	switch {
	case r.modelFromPath && r.modelEnd == 0:
		// The body names no model (Azure clients leave it out): an
		// OpenAI-compatible upstream needs one, and Azure ignores it.
		post := ","
		if json.IsEmptyObject(body[r.objStart : r.objEnd+1]) {
			post = ""
		}
		edits[n] = splice{r.objStart + 1, r.objStart + 1, cmp.Or(upstreamModel, string(r.Model)), true, `"model":`, post}
		n++
	case r.modelFromPath && upstreamModel == "":
		edits[n] = splice{start: r.modelStart, end: r.modelEnd, text: string(r.Model), quoted: true}
		n++
	case upstreamModel != "" && (upstreamModel != string(r.Model) || r.modelFromPath):
		edits[n] = splice{start: r.modelStart, end: r.modelEnd, text: upstreamModel, quoted: true}
		n++
	}
	if r.AddsUsage() {
		switch {
		case r.soKind == json.Invalid:
			edits[n] = splice{start: r.objEnd, end: r.objEnd, text: `,"stream_options":{"include_usage":true}`}
		case r.soKind == json.Null:
			edits[n] = splice{start: r.soStart, end: r.soEnd, text: `{"include_usage":true}`}
		case r.iuEnd > 0:
			edits[n] = splice{start: r.iuStart, end: r.iuEnd, text: `true`}
		case json.IsEmptyObject(body[r.soStart:r.soEnd]):
			edits[n] = splice{start: r.soStart + 1, end: r.soStart + 1, text: `"include_usage":true`}
		default:
			edits[n] = splice{start: r.soStart + 1, end: r.soStart + 1, text: `"include_usage":true,`}
		}
		n++
	}
	if n == 2 && edits[1].start < edits[0].start {
		edits[0], edits[1] = edits[1], edits[0]
	}
	at := 0
	for _, e := range edits[:n] {
		dst = append(append(dst, body[at:e.start]...), e.pre...)
		if e.quoted {
			dst = json.AppendQuote(dst, e.text)
		} else {
			dst = append(dst, e.text...)
		}
		dst = append(dst, e.post...)
		at = e.end
	}
	return append(dst, body[at:]...)
}
