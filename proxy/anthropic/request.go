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
)

// AppendMessagesRequest appends to dst the Anthropic Messages request that
// does what the OpenAI chat request chatBody asks. System and developer
// messages become system, consecutive turns of one role are merged (the
// Messages API requires alternation), tool calls and tool results become
// tool_use and tool_result blocks, images become image blocks. Parameters
// Anthropic lacks are dropped when they do not change the answer's meaning
// (seed, penalties, service_tier, store...) and refused when they would
// (n > 1, logprobs, audio, JSON response formats...).
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
	maxTokens                                int64
	hasMaxTokens, stream, parallelOff        bool
	toolChoiceKind                           json.Kind
	seen                                     map[string]bool
	scratch                                  []byte
}

func errNotJSON() *apierror.Error {
	return apierror.BadRequest("", "", "We could not parse the JSON body of your request. "+
		"The API expects a JSON object (Content-Type: application/json); what was sent was not valid JSON.")
}

func errType(param, want string, got json.Kind) *apierror.Error {
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

func errValue(param, message string) *apierror.Error {
	return apierror.BadRequest("invalid_value", param, fmt.Sprintf("Invalid value for '%s': %s", param, message))
}

// errUnsupported refuses a parameter the Anthropic deployment cannot honour:
// dropping it would change what the client gets back.
func errUnsupported(param, message string) *apierror.Error {
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

// once refuses a repeated field: decoders disagree on which copy wins, and
// Loom must not read one while the upstream obeys another.
func (t *translator) once(key string) error {
	if t.seen[key] {
		return apierror.BadRequest("duplicate_parameter", key,
			fmt.Sprintf("Duplicate parameter: '%s' appears more than once.", key))
	}
	if t.seen == nil {
		t.seen = make(map[string]bool, 16)
	}
	t.seen[key] = true
	return nil
}

func (t *translator) member(key []byte, m *json.Members) error {
	v, kind := m.Value(), m.Kind()
	switch k := string(key); k {
	case "model":
		if err := t.once(k); err != nil {
			return err
		}
		if kind != json.String {
			return errType(k, "a string", kind)
		}
		if len(v) <= 2 {
			return apierror.BadRequest("", "model", "You must provide a model parameter.")
		}
		t.model = v
	case "messages":
		if err := t.once(k); err != nil {
			return err
		}
		if kind != json.Array {
			return errType(k, "an array", kind)
		}
		if json.IsEmptyArray(v) {
			return apierror.BadRequest("invalid_value", k, "Invalid 'messages': empty array. Expected an array with minimum length 1.")
		}
		t.messages = v
	case "tools":
		if err := t.once(k); err != nil {
			return err
		}
		switch kind {
		case json.Null:
		case json.Array:
			if !json.IsEmptyArray(v) {
				t.tools = v
			}
		default:
			return errType(k, "an array", kind)
		}
	case "tool_choice":
		if err := t.once(k); err != nil {
			return err
		}
		switch kind {
		case json.Null:
		case json.String, json.Object:
			t.toolChoice, t.toolChoiceKind = v, kind
		default:
			return errType(k, "a string or an object", kind)
		}
	case "parallel_tool_calls":
		if err := t.once(k); err != nil {
			return err
		}
		switch kind {
		case json.False:
			t.parallelOff = true
		case json.True, json.Null:
		default:
			return errType(k, "a boolean", kind)
		}
	case "stop":
		if err := t.once(k); err != nil {
			return err
		}
		switch kind {
		case json.Null:
		case json.String, json.Array:
			t.stop = v
		default:
			return errType(k, "a string or an array", kind)
		}
	case "temperature":
		if err := t.once(k); err != nil {
			return err
		}
		f, err := numberIn(k, kind, v, 0, 2)
		if err != nil || f == nil {
			return err
		}
		if *f > 1 {
			return errValue(k, "this model is served by Anthropic, which accepts a temperature between 0 and 1.")
		}
		t.temperature = v
	case "top_p":
		if err := t.once(k); err != nil {
			return err
		}
		f, err := numberIn(k, kind, v, 0, 1)
		if err != nil || f == nil {
			return err
		}
		t.topP = v
	case "top_k":
		// Not OpenAI's, but Anthropic's: a client that sends it (through
		// extra_body) means it for this model.
		if err := t.once(k); err != nil {
			return err
		}
		n, err := integerIn(k, kind, v, 0, 1<<20)
		if err != nil || n < 0 {
			return err
		}
		t.topK = v
	case "thinking":
		// Anthropic's extended thinking, passed through for the same reason
		// as top_k; the thinking comes back as reasoning_content.
		if err := t.once(k); err != nil {
			return err
		}
		switch kind {
		case json.Null:
		case json.Object:
			t.thinking = v
		default:
			return errType(k, "an object", kind)
		}
	case "max_tokens", "max_completion_tokens":
		if err := t.once(k); err != nil {
			return err
		}
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
		if err := t.once(k); err != nil {
			return err
		}
		switch kind {
		case json.Null:
		case json.String:
			if len(v) > 2 {
				t.user = v
			}
		default:
			return errType(k, "a string", kind)
		}
	case "stream":
		if err := t.once(k); err != nil {
			return err
		}
		switch kind {
		case json.True:
			t.stream = true
		case json.False, json.Null:
		default:
			return errType(k, "a boolean", kind)
		}
	case "n":
		n, err := integerIn(k, kind, v, 1, 128)
		if err != nil {
			return err
		}
		if n > 1 {
			return errUnsupported(k, "greater than 1 is not supported")
		}
	case "logprobs":
		switch kind {
		case json.True:
			return errUnsupported(k, "is not supported")
		case json.False, json.Null:
		default:
			return errType(k, "a boolean", kind)
		}
	case "top_logprobs":
		if kind != json.Null {
			return errUnsupported(k, "is not supported")
		}
	case "logit_bias":
		if kind != json.Null && !json.IsEmptyObject(v) {
			return errUnsupported(k, "is not supported")
		}
	case "audio":
		if kind != json.Null {
			return errUnsupported(k, "output is not supported")
		}
	case "modalities":
		return checkModalities(kind, v)
	case "response_format":
		return checkResponseFormat(kind, v)
	case "functions", "function_call":
		if kind != json.Null {
			return errUnsupported(k, "(deprecated) is not supported; use 'tools' and 'tool_choice'")
		}
	case "web_search_options":
		if kind != json.Null {
			return errUnsupported(k, "is not supported")
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
		return errType("modalities", "an array", kind)
	}
	var e json.Elements
	e.Reset(v)
	for e.Next() {
		if e.Kind() != json.String || string(e.Value()) != `"text"` {
			return errUnsupported("modalities", "other than [\"text\"] is not supported")
		}
	}
	return nil
}

func checkResponseFormat(kind json.Kind, v []byte) error {
	switch kind {
	case json.Null:
		return nil
	case json.Object:
	default:
		return errType("response_format", "an object", kind)
	}
	var m json.Members
	m.Reset(v)
	for m.Next() {
		if string(m.Key()) == "type" && string(m.Value()) != `"text"` {
			return errUnsupported("response_format", "other than {\"type\": \"text\"} is not supported")
		}
	}
	return nil
}

func numberIn(param string, kind json.Kind, v []byte, lo, hi float64) (*float64, error) {
	if kind == json.Null {
		return nil, nil
	}
	if kind != json.Number {
		return nil, errType(param, "a number", kind)
	}
	f, ok := json.Float(v)
	if !ok || f < lo || f > hi {
		return nil, errValue(param, fmt.Sprintf("must be a number between %g and %g.", lo, hi))
	}
	return &f, nil
}

// integerIn reads an integer between lo and hi; -1 (and no error) means null.
func integerIn(param string, kind json.Kind, v []byte, lo, hi int64) (int64, error) {
	if kind == json.Null {
		return -1, nil
	}
	if kind != json.Number {
		return 0, errType(param, "an integer", kind)
	}
	n, ok := json.Int(v)
	if !ok {
		return 0, errType(param, "an integer", json.Number)
	}
	if n < lo || n > hi {
		return 0, errValue(param, fmt.Sprintf("must be between %d and %d.", lo, hi))
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

// role is where a chat message goes in a Messages request.
type role uint8

const (
	roleSkip role = iota
	roleSystem
	roleUser
	roleAssistant
	roleTool
)

// message is one chat message's members.
type message struct {
	role                                   role
	content, toolCalls, toolCallID         []byte
	contentKind, toolCallsKind, toolIDKind json.Kind
}

func readMessage(i int, v []byte) (message, error) {
	var msg message
	var m json.Members
	m.Reset(v)
	hasRole := false
	var keyBuf [32]byte
	for m.Next() {
		switch string(decodedKey(&m, keyBuf[:0])) {
		case "role":
			hasRole = true
			if m.Kind() != json.String {
				return msg, errType(fmt.Sprintf("messages[%d].role", i), "a string", m.Kind())
			}
			switch string(m.Value()) {
			case `"system"`, `"developer"`:
				msg.role = roleSystem
			case `"user"`:
				msg.role = roleUser
			case `"assistant"`:
				msg.role = roleAssistant
			case `"tool"`:
				msg.role = roleTool
			default:
				return msg, errValue(fmt.Sprintf("messages[%d].role", i),
					"expected one of 'system', 'developer', 'user', 'assistant' or 'tool'.")
			}
		case "content":
			msg.content, msg.contentKind = m.Value(), m.Kind()
		case "tool_calls":
			msg.toolCalls, msg.toolCallsKind = m.Value(), m.Kind()
		case "tool_call_id":
			msg.toolCallID, msg.toolIDKind = m.Value(), m.Kind()
		case "function_call":
			if m.Kind() != json.Null {
				return msg, errUnsupported(fmt.Sprintf("messages[%d].function_call", i), "(deprecated) is not supported; use 'tool_calls'")
			}
		case "audio":
			if m.Kind() != json.Null {
				return msg, errUnsupported(fmt.Sprintf("messages[%d].audio", i), "is not supported")
			}
		}
	}
	if m.Err() != nil {
		return msg, errNotJSON()
	}
	if !hasRole {
		return msg, apierror.BadRequest("missing_required_parameter", fmt.Sprintf("messages[%d].role", i),
			fmt.Sprintf("Missing required parameter: 'messages[%d].role'.", i))
	}
	return msg, nil
}

// appendSystem writes every system and developer message, in order, as
// the request's system blocks: Anthropic takes the system prompt apart
// from the turns.
func (t *translator) appendSystem(dst []byte) ([]byte, error) {
	var e json.Elements
	e.Reset(t.messages)
	opened := false
	for i := 0; e.Next(); i++ {
		if e.Kind() != json.Object {
			return dst, errType(fmt.Sprintf("messages[%d]", i), "an object", e.Kind())
		}
		msg, err := readMessage(i, e.Value())
		if err != nil {
			return dst, err
		}
		if msg.role != roleSystem {
			continue
		}
		mark := len(dst)
		if opened {
			dst = append(dst, ',')
		} else {
			dst = append(dst, `,"system":[`...)
		}
		n := 0
		dst, n, err = appendTextBlocks(dst, msg.content, msg.contentKind, fmt.Sprintf("messages[%d].content", i), false)
		if err != nil {
			return dst, err
		}
		if n == 0 {
			dst = dst[:mark]
			continue
		}
		opened = true
	}
	if e.Err() != nil {
		return dst, errNotJSON()
	}
	if opened {
		dst = append(dst, ']')
	}
	return dst, nil
}

// appendTextBlocks appends the text blocks of content, a string or an array
// of text parts (and, where images is set, image parts), joined by commas;
// n counts them. Empty texts are left out: Anthropic refuses empty blocks.
func appendTextBlocks(dst, content []byte, kind json.Kind, param string, images bool) ([]byte, int, error) {
	switch kind {
	case json.Null, json.Invalid:
		return dst, 0, nil
	case json.String:
		if len(content) <= 2 {
			return dst, 0, nil
		}
		dst = append(dst, `{"type":"text","text":`...)
		dst = append(dst, content...)
		return append(dst, '}'), 1, nil
	case json.Array:
	default:
		return dst, 0, errType(param, "a string or an array", kind)
	}
	var e json.Elements
	e.Reset(content)
	n := 0
	for j := 0; e.Next(); j++ {
		p := fmt.Sprintf("%s[%d]", param, j)
		if e.Kind() != json.Object {
			return dst, n, errType(p, "an object", e.Kind())
		}
		mark := len(dst)
		if n > 0 {
			dst = append(dst, ',')
		}
		var wrote bool
		var err error
		dst, wrote, err = appendPart(dst, e.Value(), p, images)
		if err != nil {
			return dst, n, err
		}
		if !wrote {
			dst = dst[:mark]
			continue
		}
		n++
	}
	return dst, n, nil
}

// appendPart appends one content part as a block; wrote is false for a
// part that translates to nothing (empty text, a refusal echoed back).
func appendPart(dst, part []byte, param string, images bool) ([]byte, bool, error) {
	var m json.Members
	m.Reset(part)
	var typ, text, image, file, cache []byte
	var textKind, imageKind, fileKind json.Kind
	var keyBuf [32]byte
	for m.Next() {
		switch string(decodedKey(&m, keyBuf[:0])) {
		case "type":
			if m.Kind() != json.String {
				return dst, false, errType(param+".type", "a string", m.Kind())
			}
			typ = m.Value()
		case "text":
			text, textKind = m.Value(), m.Kind()
		case "image_url":
			image, imageKind = m.Value(), m.Kind()
		case "file":
			file, fileKind = m.Value(), m.Kind()
		case "cache_control":
			// Anthropic's prompt caching marker, as LiteLLM and others
			// accept it on OpenAI content parts.
			if m.Kind() == json.Object {
				cache = m.Value()
			}
		}
	}
	var err error
	switch string(typ) {
	case `"text"`:
		if textKind != json.String {
			return dst, false, errType(param+".text", "a string", textKind)
		}
		if len(text) <= 2 {
			return dst, false, nil
		}
		dst = append(dst, `{"type":"text","text":`...)
		dst = append(dst, text...)
	case `"refusal"`:
		return dst, false, nil
	case `"image_url"`:
		if !images {
			return dst, false, errValue(param+".type", "only text parts are allowed in this message.")
		}
		if dst, err = appendImage(dst, image, imageKind, param+".image_url"); err != nil {
			return dst, false, err
		}
	case `"file"`:
		if !images {
			return dst, false, errValue(param+".type", "only text parts are allowed in this message.")
		}
		if dst, err = appendFile(dst, file, fileKind, param+".file"); err != nil {
			return dst, false, err
		}
	case `"input_audio"`:
		return dst, false, errUnsupported(param, "(audio input) is not supported")
	case "":
		return dst, false, apierror.BadRequest("missing_required_parameter", param+".type",
			fmt.Sprintf("Missing required parameter: '%s.type'.", param))
	default:
		return dst, false, errValue(param+".type", "expected 'text', 'image_url' or 'file'.")
	}
	if cache != nil {
		dst = append(append(dst, `,"cache_control":`...), cache...)
	}
	return append(dst, '}'), true, nil
}

// imageTypes are the media types Anthropic reads in a base64 image.
var imageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}

// appendImage appends the opening of an image block (the caller closes it)
// for an image_url part: a data URL becomes a base64 source, an http(s) URL
// a url source.
func appendImage(dst, v []byte, kind json.Kind, param string) ([]byte, error) {
	url, urlKind := v, kind
	if kind == json.Object {
		url, urlKind = nil, json.Invalid
		var m json.Members
		m.Reset(v)
		for m.Next() {
			if string(m.Key()) == "url" {
				url, urlKind = m.Value(), m.Kind()
			}
		}
		param += ".url"
	}
	if urlKind != json.String {
		return dst, errType(param, "a string", urlKind)
	}
	decoded, _ := json.AppendString(nil, url)
	switch {
	case bytes.HasPrefix(decoded, []byte("data:")):
		media, data, ok := splitDataURL(decoded)
		if !ok {
			return dst, errValue(param, "expected a base64 data URL (data:image/png;base64,...).")
		}
		if !knownType(media, imageTypes) {
			return dst, errValue(param, "the image type must be image/jpeg, image/png, image/gif or image/webp.")
		}
		dst = append(dst, `{"type":"image","source":{"type":"base64","media_type":`...)
		dst = appendQuoted(dst, media)
		dst = append(dst, `,"data":`...)
		dst = appendQuoted(dst, data)
		return append(dst, '}'), nil
	case bytes.HasPrefix(decoded, []byte("https://")) || bytes.HasPrefix(decoded, []byte("http://")):
		dst = append(dst, `{"type":"image","source":{"type":"url","url":`...)
		dst = appendQuoted(dst, decoded)
		return append(dst, '}'), nil
	}
	return dst, errValue(param, "expected an http(s) URL or a base64 data URL.")
}

// appendFile appends the opening of a document block for a file part that
// carries a PDF inline; a file_id names OpenAI storage that Anthropic
// cannot read.
func appendFile(dst, v []byte, kind json.Kind, param string) ([]byte, error) {
	if kind != json.Object {
		return dst, errType(param, "an object", kind)
	}
	var data []byte
	var m json.Members
	m.Reset(v)
	for m.Next() {
		switch string(m.Key()) {
		case "file_data":
			if m.Kind() != json.String {
				return dst, errType(param+".file_data", "a string", m.Kind())
			}
			data = m.Value()
		case "file_id":
			if m.Kind() != json.Null {
				return dst, errUnsupported(param+".file_id", "is not supported; send the file inline as file_data")
			}
		}
	}
	if data == nil {
		return dst, apierror.BadRequest("missing_required_parameter", param+".file_data",
			fmt.Sprintf("Missing required parameter: '%s.file_data'.", param))
	}
	decoded, _ := json.AppendString(nil, data)
	media, b64, ok := splitDataURL(decoded)
	if !ok || string(media) != "application/pdf" {
		return dst, errValue(param+".file_data", "expected a base64 PDF data URL (data:application/pdf;base64,...).")
	}
	dst = append(dst, `{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":`...)
	dst = appendQuoted(dst, b64)
	return append(dst, '}'), nil
}

// splitDataURL splits data:<media>;base64,<data>.
func splitDataURL(u []byte) (media, data []byte, ok bool) {
	rest := u[len("data:"):]
	comma := bytes.IndexByte(rest, ',')
	if comma < 0 {
		return nil, nil, false
	}
	head, data := rest[:comma], rest[comma+1:]
	media, isB64 := bytes.CutSuffix(head, []byte(";base64"))
	if !isB64 || len(media) == 0 || len(data) == 0 {
		return nil, nil, false
	}
	for _, c := range data {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, nil, false
		}
	}
	return media, data, true
}

func knownType(media []byte, known []string) bool {
	for _, k := range known {
		if string(media) == k {
			return true
		}
	}
	return false
}

// turns writes the turns of a Messages request: a role's consecutive
// blocks go into one message, as the Messages API requires alternating
// roles, and a message is opened only when it gets its first block.
type turns struct {
	dst  []byte
	open role // roleSkip when no message is open
	n    int  // messages written
}

func (w *turns) block(r role) {
	if w.open == r {
		w.dst = append(w.dst, ',')
		return
	}
	w.close()
	if w.n > 0 {
		w.dst = append(w.dst, ',')
	}
	if r == roleAssistant {
		w.dst = append(w.dst, `{"role":"assistant","content":[`...)
	} else {
		w.dst = append(w.dst, `{"role":"user","content":[`...)
	}
	w.open = r
	w.n++
}

func (w *turns) close() {
	if w.open != roleSkip {
		w.dst = append(w.dst, "]}"...)
		w.open = roleSkip
	}
}

// appendMessages writes the user and assistant turns.
func (t *translator) appendMessages(dst []byte) ([]byte, error) {
	w := turns{dst: append(dst, `,"messages":[`...)}
	var e json.Elements
	e.Reset(t.messages)
	for i := 0; e.Next(); i++ {
		msg, err := readMessage(i, e.Value())
		if err != nil {
			return w.dst, err
		}
		param := fmt.Sprintf("messages[%d]", i)
		switch msg.role {
		case roleUser:
			err = w.blocks(roleUser, msg.content, msg.contentKind, param+".content", true)
		case roleAssistant:
			err = w.blocks(roleAssistant, msg.content, msg.contentKind, param+".content", false)
			if err == nil {
				err = t.toolUses(&w, msg, param)
			}
		case roleTool:
			err = t.toolResult(&w, msg, param)
		}
		if err != nil {
			return w.dst, err
		}
	}
	if w.n == 0 {
		return w.dst, apierror.BadRequest("invalid_value", "messages",
			"Invalid 'messages': this model is served by Anthropic, which needs at least one user or assistant message besides the system ones.")
	}
	w.close()
	return append(w.dst, ']'), nil
}

// blocks writes content's blocks into the turn of role r.
func (w *turns) blocks(r role, content []byte, kind json.Kind, param string, images bool) error {
	// The blocks are written to a scratch tail first: whether the turn
	// must be opened is known only once a block exists.
	mark := len(w.dst)
	out, n, err := appendTextBlocks(w.dst, content, kind, param, images)
	if err != nil || n == 0 {
		w.dst = out[:mark]
		return err
	}
	tail := append([]byte(nil), out[mark:]...)
	w.dst = out[:mark]
	w.block(r)
	w.dst = append(w.dst, tail...)
	return nil
}

// toolUses writes an assistant message's tool_calls as tool_use blocks.
func (t *translator) toolUses(w *turns, msg message, param string) error {
	switch msg.toolCallsKind {
	case json.Invalid, json.Null:
		return nil
	case json.Array:
	default:
		return errType(param+".tool_calls", "an array", msg.toolCallsKind)
	}
	var e json.Elements
	e.Reset(msg.toolCalls)
	for j := 0; e.Next(); j++ {
		p := fmt.Sprintf("%s.tool_calls[%d]", param, j)
		if e.Kind() != json.Object {
			return errType(p, "an object", e.Kind())
		}
		var id, name, args []byte
		var idKind, fnKind json.Kind
		var fn []byte
		var m json.Members
		m.Reset(e.Value())
		for m.Next() {
			switch string(m.Key()) {
			case "id":
				id, idKind = m.Value(), m.Kind()
			case "type":
				if string(m.Value()) != `"function"` {
					return errValue(p+".type", "expected 'function'.")
				}
			case "function":
				fn, fnKind = m.Value(), m.Kind()
			}
		}
		if idKind != json.String || len(id) <= 2 {
			return errType(p+".id", "a non-empty string", idKind)
		}
		if fnKind != json.Object {
			return errType(p+".function", "an object", fnKind)
		}
		var nameKind, argsKind json.Kind
		m.Reset(fn)
		for m.Next() {
			switch string(m.Key()) {
			case "name":
				name, nameKind = m.Value(), m.Kind()
			case "arguments":
				args, argsKind = m.Value(), m.Kind()
			}
		}
		if nameKind != json.String || len(name) <= 2 {
			return errType(p+".function.name", "a non-empty string", nameKind)
		}
		input := []byte("{}")
		switch argsKind {
		case json.Invalid, json.Null:
		case json.String:
			t.scratch, _ = json.AppendString(t.scratch[:0], args)
			if s := bytes.TrimSpace(t.scratch); len(s) > 0 {
				var o json.Members
				if !json.Valid(s) || !o.Reset(s) {
					return errValue(p+".function.arguments", "expected a string holding a JSON object.")
				}
				input = s
			}
		default:
			return errType(p+".function.arguments", "a string", argsKind)
		}
		w.block(roleAssistant)
		w.dst = append(w.dst, `{"type":"tool_use","id":`...)
		w.dst = append(w.dst, id...)
		w.dst = append(w.dst, `,"name":`...)
		w.dst = append(w.dst, name...)
		w.dst = append(w.dst, `,"input":`...)
		w.dst = append(w.dst, input...)
		w.dst = append(w.dst, '}')
	}
	return nil
}

// toolResult writes a tool message as a tool_result block of a user turn.
func (t *translator) toolResult(w *turns, msg message, param string) error {
	if msg.toolIDKind != json.String || len(msg.toolCallID) <= 2 {
		return errType(param+".tool_call_id", "a non-empty string", msg.toolIDKind)
	}
	mark := len(w.dst)
	body, n, err := appendTextBlocks(w.dst, msg.content, msg.contentKind, param+".content", false)
	if err != nil {
		w.dst = body[:mark]
		return err
	}
	blocks := append([]byte(nil), body[mark:]...)
	w.dst = body[:mark]
	w.block(roleUser)
	w.dst = append(w.dst, `{"type":"tool_result","tool_use_id":`...)
	w.dst = append(w.dst, msg.toolCallID...)
	if n > 0 {
		w.dst = append(w.dst, `,"content":[`...)
		w.dst = append(w.dst, blocks...)
		w.dst = append(w.dst, ']')
	}
	w.dst = append(w.dst, '}')
	return nil
}

// appendTools writes function tools as Anthropic tools.
func appendTools(dst, tools []byte) ([]byte, error) {
	dst = append(dst, `,"tools":[`...)
	var e json.Elements
	e.Reset(tools)
	for j := 0; e.Next(); j++ {
		p := fmt.Sprintf("tools[%d]", j)
		if e.Kind() != json.Object {
			return dst, errType(p, "an object", e.Kind())
		}
		var fn []byte
		var fnKind json.Kind
		var m json.Members
		m.Reset(e.Value())
		for m.Next() {
			switch string(m.Key()) {
			case "type":
				if string(m.Value()) != `"function"` {
					return dst, errUnsupported(p+".type", "other than 'function' is not supported")
				}
			case "function":
				fn, fnKind = m.Value(), m.Kind()
			}
		}
		if fnKind != json.Object {
			return dst, errType(p+".function", "an object", fnKind)
		}
		var name, desc, params []byte
		var nameKind json.Kind
		m.Reset(fn)
		for m.Next() {
			switch string(m.Key()) {
			case "name":
				name, nameKind = m.Value(), m.Kind()
			case "description":
				if m.Kind() == json.String {
					desc = m.Value()
				} else if m.Kind() != json.Null {
					return dst, errType(p+".function.description", "a string", m.Kind())
				}
			case "parameters":
				switch m.Kind() {
				case json.Object:
					params = m.Value()
				case json.Null:
				default:
					return dst, errType(p+".function.parameters", "an object", m.Kind())
				}
			}
		}
		if nameKind != json.String || len(name) <= 2 {
			return dst, errType(p+".function.name", "a non-empty string", nameKind)
		}
		if len(name) > maxNameBytes {
			return dst, errValue(p+".function.name", "too long.")
		}
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = append(append(dst, `{"name":`...), name...)
		if len(desc) > 2 {
			dst = append(append(dst, `,"description":`...), desc...)
		}
		dst = append(dst, `,"input_schema":`...)
		if params != nil && !json.IsEmptyObject(params) {
			dst = append(dst, params...)
		} else {
			// OpenAI allows a function without parameters; Anthropic
			// requires a schema.
			dst = append(dst, `{"type":"object","properties":{}}`...)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']'), nil
}

// appendToolChoice writes tool_choice; parallel_tool_calls: false rides
// on it as disable_parallel_tool_use.
func (t *translator) appendToolChoice(dst []byte) ([]byte, error) {
	var typ, name []byte
	switch t.toolChoiceKind {
	case json.Invalid:
		typ = []byte("auto")
	case json.String:
		switch string(t.toolChoice) {
		case `"auto"`:
			typ = []byte("auto")
		case `"none"`:
			typ = []byte("none")
		case `"required"`:
			typ = []byte("any")
		default:
			return dst, errValue("tool_choice", "expected 'none', 'auto', 'required' or a named function.")
		}
	case json.Object:
		var fn []byte
		var m json.Members
		m.Reset(t.toolChoice)
		for m.Next() {
			switch string(m.Key()) {
			case "type":
				if string(m.Value()) != `"function"` {
					return dst, errUnsupported("tool_choice.type", "other than 'function' is not supported")
				}
			case "function":
				fn = m.Value()
			}
		}
		var nameKind json.Kind
		if m.Reset(fn) {
			for m.Next() {
				if string(m.Key()) == "name" {
					name, nameKind = m.Value(), m.Kind()
				}
			}
		}
		if nameKind != json.String || len(name) <= 2 {
			return dst, errType("tool_choice.function.name", "a non-empty string", nameKind)
		}
		typ = []byte("tool")
	}
	if t.toolChoiceKind == json.Invalid && !t.parallelOff {
		return dst, nil // Anthropic's default is auto too
	}
	dst = append(dst, `,"tool_choice":{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, '"')
	if name != nil {
		dst = append(append(dst, `,"name":`...), name...)
	}
	if t.parallelOff && string(typ) != "none" {
		dst = append(dst, `,"disable_parallel_tool_use":true`...)
	}
	return append(dst, '}'), nil
}

// appendStop writes stop as stop_sequences, leaving out empty strings
// (which stop nothing, and Anthropic refuses).
func appendStop(dst, stop []byte) ([]byte, error) {
	mark := len(dst)
	dst = append(dst, `,"stop_sequences":[`...)
	n := 0
	add := func(s []byte) {
		if len(s) <= 2 {
			return
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, s...)
		n++
	}
	if stop[0] == '"' {
		add(stop)
	} else {
		var e json.Elements
		e.Reset(stop)
		for j := 0; e.Next(); j++ {
			if e.Kind() != json.String {
				return dst[:mark], errType(fmt.Sprintf("stop[%d]", j), "a string", e.Kind())
			}
			if j >= maxStopSequences {
				return dst[:mark], errValue("stop", fmt.Sprintf("at most %d stop sequences are allowed.", maxStopSequences))
			}
			add(e.Value())
		}
	}
	if n == 0 {
		return dst[:mark], nil
	}
	return append(dst, ']'), nil
}
