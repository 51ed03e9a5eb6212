package anthropic

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// path names a field inside the request for an error's param
// ("messages[2].content[0].image_url.url"). It is built into a string only
// when an error is reported, so a request that translates cleanly pays
// nothing for it.
type path struct {
	head string // "messages", "tools", "stop"
	i    int    // index into head; -1 for none
	mid  string // ".content", ".tool_calls"
	j    int    // index into mid; -1 for none
	tail string // the rest, replaced (never joined) by dot
}

func field(name string) path { return path{head: name, i: -1, j: -1} }

// at indexes the innermost array named so far.
func (p path) at(i int) path {
	if p.i < 0 && p.mid == "" {
		p.i = i
	} else {
		p.j = i
	}
	return p
}

// dot names a member below what p names.
func (p path) dot(name string) path {
	if p.i >= 0 && p.mid == "" {
		p.mid = name
	} else {
		p.tail = name
	}
	return p
}

func (p path) String() string {
	b := append([]byte(nil), p.head...)
	if p.i >= 0 {
		b = append(strconv.AppendInt(append(b, '['), int64(p.i), 10), ']')
	}
	b = append(b, p.mid...)
	if p.j >= 0 {
		b = append(strconv.AppendInt(append(b, '['), int64(p.j), 10), ']')
	}
	return string(append(b, p.tail...))
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
				return msg, errType(field("messages").at(i).dot(".role"), "a string", m.Kind())
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
				return msg, errValue(field("messages").at(i).dot(".role"),
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
				return msg, errUnsupported(field("messages").at(i).dot(".function_call"), "(deprecated) is not supported; use 'tool_calls'")
			}
		case "audio":
			if m.Kind() != json.Null {
				return msg, errUnsupported(field("messages").at(i).dot(".audio"), "is not supported")
			}
		}
	}
	if m.Err() != nil {
		return msg, errNotJSON()
	}
	if !hasRole {
		return msg, errMissing(field("messages").at(i).dot(".role"))
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
			return dst, errType(field("messages").at(i), "an object", e.Kind())
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
		dst, n, err = appendTextBlocks(dst, msg.content, msg.contentKind, field("messages").at(i).dot(".content"), false)
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
func appendTextBlocks(dst, content []byte, kind json.Kind, param path, images bool) ([]byte, int, error) {
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
		p := param.at(j)
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
func appendPart(dst, part []byte, param path, images bool) ([]byte, bool, error) {
	var m json.Members
	m.Reset(part)
	var typ, text, image, file, cache []byte
	var textKind, imageKind, fileKind json.Kind
	var keyBuf [32]byte
	for m.Next() {
		switch string(decodedKey(&m, keyBuf[:0])) {
		case "type":
			if m.Kind() != json.String {
				return dst, false, errType(param.dot(".type"), "a string", m.Kind())
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
			return dst, false, errType(param.dot(".text"), "a string", textKind)
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
			return dst, false, errValue(param.dot(".type"), "only text parts are allowed in this message.")
		}
		if dst, err = appendImage(dst, image, imageKind, param.dot(".image_url")); err != nil {
			return dst, false, err
		}
	case `"file"`:
		if !images {
			return dst, false, errValue(param.dot(".type"), "only text parts are allowed in this message.")
		}
		if dst, err = appendFile(dst, file, fileKind, param); err != nil {
			return dst, false, err
		}
	case `"input_audio"`:
		return dst, false, errUnsupported(param, "(audio input) is not supported")
	case "":
		return dst, false, errMissing(param.dot(".type"))
	default:
		return dst, false, errValue(param.dot(".type"), "expected 'text', 'image_url' or 'file'.")
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
func appendImage(dst, v []byte, kind json.Kind, param path) ([]byte, error) {
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
		param = param.dot(".image_url.url")
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
		dst = json.AppendQuote(dst, media)
		dst = append(dst, `,"data":`...)
		dst = json.AppendQuote(dst, data)
		return append(dst, '}'), nil
	case bytes.HasPrefix(decoded, []byte("https://")) || bytes.HasPrefix(decoded, []byte("http://")):
		dst = append(dst, `{"type":"image","source":{"type":"url","url":`...)
		dst = json.AppendQuote(dst, decoded)
		return append(dst, '}'), nil
	}
	return dst, errValue(param, "expected an http(s) URL or a base64 data URL.")
}

// appendFile appends the opening of a document block for a file part that
// carries a PDF inline; a file_id names OpenAI storage that Anthropic
// cannot read.
func appendFile(dst, v []byte, kind json.Kind, param path) ([]byte, error) {
	if kind != json.Object {
		return dst, errType(param.dot(".file"), "an object", kind)
	}
	var data []byte
	var m json.Members
	m.Reset(v)
	for m.Next() {
		switch string(m.Key()) {
		case "file_data":
			if m.Kind() != json.String {
				return dst, errType(param.dot(".file.file_data"), "a string", m.Kind())
			}
			data = m.Value()
		case "file_id":
			if m.Kind() != json.Null {
				return dst, errUnsupported(param.dot(".file.file_id"), "is not supported; send the file inline as file_data")
			}
		}
	}
	if data == nil {
		return dst, errMissing(param.dot(".file.file_data"))
	}
	decoded, _ := json.AppendString(nil, data)
	media, b64, ok := splitDataURL(decoded)
	if !ok || string(media) != "application/pdf" {
		return dst, errValue(param.dot(".file.file_data"), "expected a base64 PDF data URL (data:application/pdf;base64,...).")
	}
	dst = append(dst, `{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":`...)
	dst = json.AppendQuote(dst, b64)
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
		param := field("messages").at(i)
		switch msg.role {
		case roleUser:
			err = w.blocks(roleUser, msg.content, msg.contentKind, param.dot(".content"), true)
		case roleAssistant:
			err = w.blocks(roleAssistant, msg.content, msg.contentKind, param.dot(".content"), false)
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
func (w *turns) blocks(r role, content []byte, kind json.Kind, param path, images bool) error {
	// The turn is opened (or continued) first and taken back if content
	// had no block after all: whether it has one is known only once read.
	mark, open, n := len(w.dst), w.open, w.n
	w.block(r)
	out, blocks, err := appendTextBlocks(w.dst, content, kind, param, images)
	w.dst = out
	if err != nil || blocks == 0 {
		w.dst, w.open, w.n = w.dst[:mark], open, n
	}
	return err
}

// toolUses writes an assistant message's tool_calls as tool_use blocks.
func (t *translator) toolUses(w *turns, msg message, param path) error {
	switch msg.toolCallsKind {
	case json.Invalid, json.Null:
		return nil
	case json.Array:
	default:
		return errType(param.dot(".tool_calls"), "an array", msg.toolCallsKind)
	}
	var e json.Elements
	e.Reset(msg.toolCalls)
	for j := 0; e.Next(); j++ {
		p := param.dot(".tool_calls").at(j)
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
					return errValue(p.dot(".type"), "expected 'function'.")
				}
			case "function":
				fn, fnKind = m.Value(), m.Kind()
			}
		}
		if idKind != json.String || len(id) <= 2 {
			return errType(p.dot(".id"), "a non-empty string", idKind)
		}
		if fnKind != json.Object {
			return errType(p.dot(".function"), "an object", fnKind)
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
			return errType(p.dot(".function.name"), "a non-empty string", nameKind)
		}
		w.block(roleAssistant)
		w.dst = append(w.dst, `{"type":"tool_use","id":`...)
		w.dst = append(w.dst, id...)
		w.dst = append(w.dst, `,"name":`...)
		w.dst = append(w.dst, name...)
		w.dst = append(w.dst, `,"input":`...)
		switch argsKind {
		case json.Invalid, json.Null:
			w.dst = append(w.dst, "{}"...)
		case json.String:
			// The arguments string holds the input's JSON text: decoded in
			// place, it is the input.
			at := len(w.dst)
			w.dst, _ = json.AppendString(w.dst, args)
			input := w.dst[at:]
			if len(bytes.TrimSpace(input)) == 0 {
				w.dst = append(w.dst[:at], "{}"...)
				break
			}
			var o json.Members
			if !json.Valid(input) || !o.Reset(input) {
				return errValue(p.dot(".function.arguments"), "expected a string holding a JSON object.")
			}
		default:
			return errType(p.dot(".function.arguments"), "a string", argsKind)
		}
		w.dst = append(w.dst, '}')
	}
	return nil
}

// toolResult writes a tool message as a tool_result block of a user turn.
func (t *translator) toolResult(w *turns, msg message, param path) error {
	if msg.toolIDKind != json.String || len(msg.toolCallID) <= 2 {
		return errType(param.dot(".tool_call_id"), "a non-empty string", msg.toolIDKind)
	}
	w.block(roleUser)
	w.dst = append(w.dst, `{"type":"tool_result","tool_use_id":`...)
	w.dst = append(w.dst, msg.toolCallID...)
	mark := len(w.dst)
	w.dst = append(w.dst, `,"content":[`...)
	out, n, err := appendTextBlocks(w.dst, msg.content, msg.contentKind, param.dot(".content"), false)
	w.dst = out
	if err != nil {
		return err
	}
	if n == 0 {
		w.dst = w.dst[:mark]
	} else {
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
		p := field("tools").at(j)
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
					return dst, errUnsupported(p.dot(".type"), "other than 'function' is not supported")
				}
			case "function":
				fn, fnKind = m.Value(), m.Kind()
			}
		}
		if fnKind != json.Object {
			return dst, errType(p.dot(".function"), "an object", fnKind)
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
					return dst, errType(p.dot(".function.description"), "a string", m.Kind())
				}
			case "parameters":
				switch m.Kind() {
				case json.Object:
					params = m.Value()
				case json.Null:
				default:
					return dst, errType(p.dot(".function.parameters"), "an object", m.Kind())
				}
			}
		}
		if nameKind != json.String || len(name) <= 2 {
			return dst, errType(p.dot(".function.name"), "a non-empty string", nameKind)
		}
		if len(name) > maxNameBytes {
			return dst, errValue(p.dot(".function.name"), "too long.")
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
			return dst, errValue(field("tool_choice"), "expected 'none', 'auto', 'required' or a named function.")
		}
	case json.Object:
		var fn []byte
		var m json.Members
		m.Reset(t.toolChoice)
		for m.Next() {
			switch string(m.Key()) {
			case "type":
				if string(m.Value()) != `"function"` {
					return dst, errUnsupported(field("tool_choice.type"), "other than 'function' is not supported")
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
			return dst, errType(field("tool_choice.function.name"), "a non-empty string", nameKind)
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
				return dst[:mark], errType(field("stop").at(j), "a string", e.Kind())
			}
			if j >= maxStopSequences {
				return dst[:mark], errValue(field("stop"), fmt.Sprintf("at most %d stop sequences are allowed.", maxStopSequences))
			}
			add(e.Value())
		}
	}
	if n == 0 {
		return dst[:mark], nil
	}
	return append(dst, ']'), nil
}
