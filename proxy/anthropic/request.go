package anthropic

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// RequestOptions shape the Messages request sent to one deployment.
type RequestOptions struct {
	// UpstreamModel replaces the client's model; "" keeps it.
	UpstreamModel string
	// DefaultMaxTokens is max_tokens when the client sets neither
	// max_tokens nor max_completion_tokens: Anthropic requires one, OpenAI
	// does not. 0 means FallbackMaxTokens.
	DefaultMaxTokens int64
}

// FallbackMaxTokens is max_tokens when neither the client nor the
// deployment says.
const FallbackMaxTokens = 4096

// Bounds on what a translated request may hold. The body itself is bounded
// by the server; these keep one field from costing more than its share.
const (
	maxStopSequences = 64
	maxNameBytes     = 256
	maxUserID        = 256
)

// AppendMessagesRequest appends to dst the Anthropic Messages request that
// does what the OpenAI chat request chatBody asks. System and developer
// messages become system, consecutive turns of one role are merged (the
// Messages API requires alternation), tool calls and tool results become
// tool_use and tool_result blocks, images become image blocks, a JSON
// schema response format becomes structured output. Parameters Anthropic
// lacks are dropped when they do not change the answer's meaning (seed,
// penalties, service_tier, store, reasoning_effort...) and refused when
// they would (n > 1, logprobs, audio, the json_object response format...).
//
// An error is the client's fault and carries an *apierror.Error (errors.As)
// to answer with as is: a 400 whose param names the field.
func AppendMessagesRequest(dst, chatBody []byte, o RequestOptions) ([]byte, error) {
	var t translator
	if err := t.read(chatBody); err != nil {
		return dst, err
	}
	out, err := t.write(dst, o)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// translator holds the raw values of the chat request's fields that the
// Messages request needs; they alias the body.
type translator struct {
	model, messages, tools, toolChoice, stop []byte
	temperature, topP, topK, thinking, user  []byte
	schema                                   []byte // response_format.json_schema.schema
	maxTokens                                int64
	hasMaxTokens, stream, parallelOff        bool
	toolChoiceKind                           json.Kind
	seen                                     uint32 // bits of fields
}

func errNotJSON() *apierror.Error {
	return apierror.BadRequest("", "", "We could not parse the JSON body of your request. "+
		"The API expects a JSON object (Content-Type: application/json); what was sent was not valid JSON.")
}

func errType(p path, want string, got json.Kind) *apierror.Error {
	param := p.String()
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

func errValue(p path, message string) *apierror.Error {
	param := p.String()
	return apierror.BadRequest("invalid_value", param, fmt.Sprintf("Invalid value for '%s': %s", param, message))
}

func errMissing(p path) *apierror.Error {
	param := p.String()
	return apierror.BadRequest("missing_required_parameter", param, "Missing required parameter: '"+param+"'.")
}

// errUnsupported refuses a parameter the Anthropic deployment cannot honour:
// dropping it would change what the client gets back.
func errUnsupported(p path, message string) *apierror.Error {
	param := p.String()
	return apierror.BadRequest("unsupported_parameter", param,
		fmt.Sprintf("Unsupported parameter: '%s' %s with this model, which is served by Anthropic.", param, message))
}

// decodedKey is the member's key as a decoder reads it: "mod\u0065l" is
// "model" to every JSON decoder, so it must be to Loom.
func decodedKey(m *json.Members, buf []byte) []byte {
	key := m.Key()
	if bytes.IndexByte(key, '\\') >= 0 {
		key, _ = json.AppendString(buf, m.QuotedKey())
	}
	return key
}

// read checks the body and takes the fields the translation needs.
func (t *translator) read(body []byte) error {
	if !json.Valid(body) {
		return errNotJSON()
	}
	if !utf8.Valid(body) {
		// Anthropic refuses invalid UTF-8 in a body; saying so here names
		// the problem instead of relaying a confusing upstream 400.
		return apierror.BadRequest("invalid_encoding", "", "The request body is not valid UTF-8.")
	}
	var m json.Members
	if !m.Reset(body) {
		return apierror.BadRequest("invalid_type", "", "Invalid request body: expected a JSON object.")
	}
	var keyBuf [32]byte
	for m.Next() {
		key := decodedKey(&m, keyBuf[:0])
		if err := t.member(key, &m); err != nil {
			return err
		}
	}
	if m.Err() != nil {
		return errNotJSON()
	}
	if t.model == nil {
		return apierror.BadRequest("", "model", "You must provide a model parameter.")
	}
	if t.messages == nil {
		return apierror.BadRequest("missing_required_parameter", "messages", "Missing required parameter: 'messages'.")
	}
	return nil
}

// fields are the top-level fields the translation reads or refuses; each
// may appear once.
var fields = [...]string{"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "stop",
	"temperature", "top_p", "top_k", "thinking", "max_tokens", "max_completion_tokens", "user", "stream",
	"n", "logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "response_format", "functions",
	"function_call", "web_search_options"}

func (t *translator) member(key []byte, m *json.Members) error {
	v, kind := m.Value(), m.Kind()
	at := -1
	for i, f := range fields {
		if string(key) == f {
			at = i
			break
		}
	}
	if at < 0 {
		return nil
	}
	// A repeated field is refused: decoders disagree on which copy wins,
	// and Loom must not read one while the upstream obeys another.
	k := fields[at]
	if t.seen&(1<<at) != 0 {
		return apierror.BadRequest("duplicate_parameter", k,
			fmt.Sprintf("Duplicate parameter: '%s' appears more than once.", k))
	}
	t.seen |= 1 << at
	switch k {
	case "model":
		if kind != json.String {
			return errType(field(k), "a string", kind)
		}
		if len(v) <= 2 {
			return apierror.BadRequest("", "model", "You must provide a model parameter.")
		}
		t.model = v
	case "messages":
		if kind != json.Array {
			return errType(field(k), "an array", kind)
		}
		if json.IsEmptyArray(v) {
			return apierror.BadRequest("invalid_value", k, "Invalid 'messages': empty array. Expected an array with minimum length 1.")
		}
		t.messages = v
	case "tools":
		switch kind {
		case json.Null:
		case json.Array:
			if !json.IsEmptyArray(v) {
				t.tools = v
			}
		default:
			return errType(field(k), "an array", kind)
		}
	case "tool_choice":
		switch kind {
		case json.Null:
		case json.String, json.Object:
			t.toolChoice, t.toolChoiceKind = v, kind
		default:
			return errType(field(k), "a string or an object", kind)
		}
	case "parallel_tool_calls":
		switch kind {
		case json.False:
			t.parallelOff = true
		case json.True, json.Null:
		default:
			return errType(field(k), "a boolean", kind)
		}
	case "stop":
		switch kind {
		case json.Null:
		case json.String, json.Array:
			t.stop = v
		default:
			return errType(field(k), "a string or an array", kind)
		}
	case "temperature":
		f, ok, err := numberIn(k, kind, v, 0, 2)
		if err != nil || !ok {
			return err
		}
		if f > 1 {
			return errValue(field(k), "this model is served by Anthropic, which accepts a temperature between 0 and 1.")
		}
		t.temperature = v
	case "top_p":
		if _, ok, err := numberIn(k, kind, v, 0, 1); err != nil || !ok {
			return err
		}
		t.topP = v
	case "top_k":
		// Not OpenAI's, but Anthropic's: a client that sends it (through
		// extra_body) means it for this model.
		n, err := integerIn(k, kind, v, 0, 1<<20)
		if err != nil || n < 0 {
			return err
		}
		t.topK = v
	case "thinking":
		// Anthropic's extended thinking, passed through for the same reason
		// as top_k; the thinking comes back as reasoning_content.
		switch kind {
		case json.Null:
		case json.Object:
			t.thinking = v
		default:
			return errType(field(k), "an object", kind)
		}
	case "max_tokens", "max_completion_tokens":
		n, err := integerIn(k, kind, v, 1, 1<<40)
		if err != nil || n < 0 {
			return err
		}
		// With both, the larger is what the client allows, as the token
		// limiter reads it too.
		if !t.hasMaxTokens || n > t.maxTokens {
			t.maxTokens, t.hasMaxTokens = n, true
		}
	case "user":
		switch kind {
		case json.Null:
		case json.String:
			// Anthropic refuses a user_id over 256 characters; OpenAI's
			// user is an end-user tag for abuse monitoring, nothing the
			// answer depends on, so a longer one is dropped, not refused.
			if len(v) > 2 && len(v) <= maxUserID+2 {
				t.user = v
			}
		default:
			return errType(field(k), "a string", kind)
		}
	case "stream":
		switch kind {
		case json.True:
			t.stream = true
		case json.False, json.Null:
		default:
			return errType(field(k), "a boolean", kind)
		}
	case "n":
		n, err := integerIn(k, kind, v, 1, 128)
		if err != nil {
			return err
		}
		if n > 1 {
			return errUnsupported(field(k), "greater than 1 is not supported")
		}
	case "logprobs":
		switch kind {
		case json.True:
			return errUnsupported(field(k), "is not supported")
		case json.False, json.Null:
		default:
			return errType(field(k), "a boolean", kind)
		}
	case "top_logprobs":
		if kind != json.Null && string(v) != "0" {
			return errUnsupported(field(k), "is not supported")
		}
	case "logit_bias":
		if kind != json.Null && !json.IsEmptyObject(v) {
			return errUnsupported(field(k), "is not supported")
		}
	case "audio":
		if kind != json.Null {
			return errUnsupported(field(k), "output is not supported")
		}
	case "modalities":
		return checkModalities(kind, v)
	case "response_format":
		return t.responseFormat(kind, v)
	case "functions", "function_call":
		if kind != json.Null {
			return errUnsupported(field(k), "(deprecated) is not supported; use 'tools' and 'tool_choice'")
		}
	case "web_search_options":
		if kind != json.Null {
			return errUnsupported(field(k), "is not supported")
		}
	}
	// Everything else (seed, presence and frequency penalties, store,
	// metadata, service_tier, stream_options, prediction,
	// reasoning_effort...) changes nothing a client could tell apart, or is
	// Loom's own concern: dropped.
	return nil
}

func checkModalities(kind json.Kind, v []byte) error {
	switch kind {
	case json.Null:
		return nil
	case json.Array:
	default:
		return errType(field("modalities"), "an array", kind)
	}
	var e json.Elements
	e.Reset(v)
	for e.Next() {
		if e.Kind() != json.String || string(e.Value()) != `"text"` {
			return errUnsupported(field("modalities"), "other than [\"text\"] is not supported")
		}
	}
	return nil
}

// responseFormat reads response_format: text changes nothing, a JSON
// schema becomes Anthropic's structured output (output_config.format), and
// json_object, which has no schema to give Anthropic, is refused.
func (t *translator) responseFormat(kind json.Kind, v []byte) error {
	switch kind {
	case json.Null:
		return nil
	case json.Object:
	default:
		return errType(field("response_format"), "an object", kind)
	}
	var typ, spec []byte
	var specKind json.Kind
	var m json.Members
	m.Reset(v)
	for m.Next() {
		switch string(m.Key()) {
		case "type":
			typ = m.Value()
		case "json_schema":
			spec, specKind = m.Value(), m.Kind()
		}
	}
	switch string(typ) {
	case `"text"`:
		return nil
	case `"json_schema"`:
	default:
		return errUnsupported(field("response_format.type"), "other than 'text' or 'json_schema' is not supported")
	}
	if specKind != json.Object {
		return errType(field("response_format.json_schema"), "an object", specKind)
	}
	m.Reset(spec)
	for m.Next() {
		if string(m.Key()) == "schema" {
			if m.Kind() != json.Object {
				return errType(field("response_format.json_schema.schema"), "an object", m.Kind())
			}
			t.schema = m.Value()
		}
	}
	if t.schema == nil {
		return errMissing(field("response_format.json_schema.schema"))
	}
	return nil
}

// numberIn reads a number between lo and hi; ok is false (and no error)
// for null.
func numberIn(param string, kind json.Kind, v []byte, lo, hi float64) (f float64, ok bool, err error) {
	if kind == json.Null {
		return 0, false, nil
	}
	if kind != json.Number {
		return 0, false, errType(field(param), "a number", kind)
	}
	f, ok = json.Float(v)
	if !ok || f < lo || f > hi {
		return 0, false, errValue(field(param), fmt.Sprintf("must be a number between %g and %g.", lo, hi))
	}
	return f, true, nil
}

// integerIn reads an integer between lo and hi; -1 (and no error) means null.
func integerIn(param string, kind json.Kind, v []byte, lo, hi int64) (int64, error) {
	if kind == json.Null {
		return -1, nil
	}
	if kind != json.Number {
		return 0, errType(field(param), "an integer", kind)
	}
	n, ok := json.Int(v)
	if !ok {
		return 0, errType(field(param), "an integer", json.Number)
	}
	if n < lo || n > hi {
		return 0, errValue(field(param), fmt.Sprintf("must be between %d and %d.", lo, hi))
	}
	return n, nil
}

// write appends the Messages request.
func (t *translator) write(dst []byte, o RequestOptions) ([]byte, error) {
	dst = append(dst, `{"model":`...)
	if o.UpstreamModel != "" {
		dst = json.AppendQuote(dst, o.UpstreamModel)
	} else {
		dst = append(dst, t.model...)
	}
	dst = append(dst, `,"max_tokens":`...)
	max := t.maxTokens
	if !t.hasMaxTokens {
		max = o.DefaultMaxTokens
		if max <= 0 {
			max = FallbackMaxTokens
		}
	}
	dst = strconv.AppendInt(dst, max, 10)

	var err error
	if dst, err = t.appendSystem(dst); err != nil {
		return dst, err
	}
	if dst, err = t.appendMessages(dst); err != nil {
		return dst, err
	}
	if t.tools != nil {
		if dst, err = appendTools(dst, t.tools); err != nil {
			return dst, err
		}
		if dst, err = t.appendToolChoice(dst); err != nil {
			return dst, err
		}
	}
	if t.stop != nil {
		if dst, err = appendStop(dst, t.stop); err != nil {
			return dst, err
		}
	}
	if t.temperature != nil {
		dst = append(append(dst, `,"temperature":`...), t.temperature...)
	}
	if t.topP != nil {
		dst = append(append(dst, `,"top_p":`...), t.topP...)
	}
	if t.topK != nil {
		dst = append(append(dst, `,"top_k":`...), t.topK...)
	}
	if t.thinking != nil {
		dst = append(append(dst, `,"thinking":`...), t.thinking...)
	}
	if t.schema != nil {
		dst = append(dst, `,"output_config":{"format":{"type":"json_schema","schema":`...)
		dst = append(dst, t.schema...)
		dst = append(dst, "}}"...)
	}
	if t.user != nil {
		// Anthropic's user_id is for abuse detection, as OpenAI's user is.
		dst = append(append(dst, `,"metadata":{"user_id":`...), t.user...)
		dst = append(dst, '}')
	}
	if t.stream {
		dst = append(dst, `,"stream":true`...)
	}
	return append(dst, '}'), nil
}
