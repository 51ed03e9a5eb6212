package anthropic

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// maxBlocks bounds the content blocks a stream may open. Anthropic numbers
// them from 0 up; a hostile index must not make Loom grow a table that
// long.
const maxBlocks = 1 << 10

// blockKind is what a content block of the stream is.
type blockKind uint8

const (
	blockNone blockKind = iota
	blockText
	blockTool
	blockThinking
	blockOther // redacted thinking, server tools...: nothing a chat client reads
)

type blockState struct {
	kind blockKind
	tool int  // the OpenAI tool_calls index of a tool_use block
	args bool // a tool_use block's arguments were sent
}

// ChatStream translates one Anthropic Messages stream into OpenAI chat
// completion chunks, event by event, and records what the call said in a
// call.Record. Call Reset before a stream's first Event (the zero value is
// ready for it) and to reuse it; it is not safe for concurrent use.
//
// Every chunk is written whole (`data: {...}\n\n`), so a caller can flush
// after each Event. Thinking is sent as delta.reasoning_content (the field
// DeepSeek and OpenAI-compatible servers use; OpenAI's SDKs ignore it) and
// signatures are dropped. ChatStream fills rec.Content when rec captures
// content, so the translated chunks must not be tapped again.
type ChatStream struct {
	rec          *call.Record
	includeUsage bool
	// head opens every chunk: `data: {"id":...,"model":...,"choices":[`.
	head    []byte
	created int64
	blocks  []blockState
	tools   int
	usage   usage
	scratch []byte
	started bool // message_start seen
	stopped bool // message_stop seen
	failed  bool // an error event ended the stream
}

// Reset prepares s for a new stream recorded in rec. includeUsage is the
// client's own stream_options.include_usage: it decides whether End sends
// the usage chunk (Anthropic always reports usage, so rec gets it anyway).
func (s *ChatStream) Reset(rec *call.Record, includeUsage bool) {
	*s = ChatStream{
		rec:          rec,
		includeUsage: includeUsage,
		head:         s.head[:0],
		blocks:       s.blocks[:0],
		scratch:      s.scratch[:0],
		created:      time.Now().Unix(),
	}
}

// Done reports whether the upstream ended the message (message_stop).
func (s *ChatStream) Done() bool { return s.stopped }

// Failed reports whether an error event ended the stream; End then adds
// nothing, as the relay ends a failed OpenAI stream with its error event.
// An error event before message_start (Anthropic overloaded at once) is a
// failed attempt that nothing useful reached the client from: a router
// holding the first event may retry it elsewhere instead of sending the
// error chunk.
func (s *ChatStream) Failed() bool { return s.failed }

// event is the members of one stream event that the translation reads;
// they alias the event's data.
type event struct {
	typ, message, block, delta, usage, errorObj []byte
	index                                       int64
	hasIndex                                    bool
}

func (ev *event) read(data []byte) bool {
	var m json.Members
	if !m.Reset(data) {
		return false
	}
	for m.Next() {
		v, kind := m.Value(), m.Kind()
		switch string(m.Key()) {
		case "type":
			if kind == json.String {
				ev.typ = v
			}
		case "message":
			if kind == json.Object {
				ev.message = v
			}
		case "content_block":
			if kind == json.Object {
				ev.block = v
			}
		case "delta":
			if kind == json.Object {
				ev.delta = v
			}
		case "usage":
			if kind == json.Object {
				ev.usage = v
			}
		case "error":
			if kind == json.Object {
				ev.errorObj = v
			}
		case "index":
			if kind == json.Number {
				ev.index, ev.hasIndex = json.Int(v)
			}
		}
	}
	return m.Err() == nil
}

// kind names the event by its data's type, which every Anthropic event
// carries; the SSE event name, when the data has none.
func (ev *event) kind(name []byte) string {
	if len(ev.typ) >= 2 {
		return string(ev.typ[1 : len(ev.typ)-1])
	}
	return string(name)
}

// Event appends to dst the chunks (zero or more) that the Anthropic event
// (its SSE event name and data) becomes. An error wraps ErrMalformed: the
// data was not a JSON object, and dst is returned as it was; the caller
// ends the stream with an error of its own. Empty data is a keep-alive. Events after message_stop or
// an error event are ignored, as are ping and event types Loom does not
// know.
func (s *ChatStream) Event(dst []byte, name, data []byte) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return dst, nil // a keep-alive with an empty data field
	}
	var ev event
	if !ev.read(data) {
		return dst, fmt.Errorf("%w: event %.40q is not a JSON object", ErrMalformed, name)
	}
	if s.stopped || s.failed {
		return dst, nil
	}
	switch ev.kind(name) {
	case "message_start":
		return s.messageStart(dst, &ev), nil
	case "content_block_start":
		return s.blockStart(dst, &ev), nil
	case "content_block_delta":
		return s.blockDelta(dst, &ev), nil
	case "content_block_stop":
		return s.blockStop(dst, &ev), nil
	case "message_delta":
		return s.messageDelta(dst, &ev), nil
	case "message_stop":
		s.stopped = true
	case "error":
		return s.error(dst, &ev), nil
	}
	return dst, nil
}

func (s *ChatStream) messageStart(dst []byte, ev *event) []byte {
	if s.started {
		return dst
	}
	s.started = true
	var f messageFields
	f.read(ev.message)
	f.record(s.rec)
	if f.usage != nil {
		s.usage.read(f.usage)
		s.usage.fill(s.rec)
	}
	// Every chunk repeats the head, so the id and model in it are capped
	// as the record caps them: a huge id must not be sent again per chunk.
	s.head = append(s.head[:0], `data: {"id":`...)
	s.scratch = appendDecoded(s.scratch[:0], f.id, maxIDBytes)
	s.head = json.AppendQuote(s.head, s.scratch)
	s.head = append(s.head, `,"object":"chat.completion.chunk","created":`...)
	s.head = strconv.AppendInt(s.head, s.created, 10)
	s.head = append(s.head, `,"model":`...)
	s.scratch = appendDecoded(s.scratch[:0], f.model, maxModelBytes)
	s.head = json.AppendQuote(s.head, s.scratch)
	s.head = append(s.head, `,"choices":[`...)
	return s.chunk(dst, `{"role":"assistant","content":"","refusal":null}`, "")
}

// ensureHead makes sure chunks have a head even if a (non-conforming)
// upstream sends content before message_start.
func (s *ChatStream) ensureHead() {
	if len(s.head) == 0 {
		s.head = append(s.head, `data: {"id":"","object":"chat.completion.chunk","created":`...)
		s.head = strconv.AppendInt(s.head, s.created, 10)
		s.head = append(s.head, `,"model":"","choices":[`...)
	}
}

// chunk appends one chunk whose choice has delta (a JSON object) and
// finish reason (none when "").
func (s *ChatStream) chunk(dst []byte, delta string, finish string) []byte {
	dst = s.open(dst)
	dst = append(dst, delta...)
	return s.close(dst, finish)
}

// open appends a chunk up to its delta.
func (s *ChatStream) open(dst []byte) []byte {
	s.ensureHead()
	dst = append(dst, s.head...)
	return append(dst, `{"index":0,"delta":`...)
}

// close appends the rest of a chunk after its delta.
func (s *ChatStream) close(dst []byte, finish string) []byte {
	if finish == "" {
		return append(dst, `,"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
	}
	dst = append(dst, `,"logprobs":null,"finish_reason":"`...)
	dst = append(dst, finish...)
	return append(dst, `"}]}`+"\n\n"...)
}

// slot returns the state of block index, growing the table; nil for an
// index out of bounds.
func (s *ChatStream) slot(ev *event) *blockState {
	if !ev.hasIndex || ev.index < 0 || ev.index >= maxBlocks {
		return nil
	}
	i := int(ev.index)
	for len(s.blocks) <= i {
		s.blocks = append(s.blocks, blockState{})
	}
	return &s.blocks[i]
}

func (s *ChatStream) blockStart(dst []byte, ev *event) []byte {
	st := s.slot(ev)
	if st == nil || st.kind != blockNone {
		return dst
	}
	b := readBlock(ev.block)
	switch string(b.typ) {
	case `"text"`:
		st.kind = blockText
		return s.text(dst, b.text)
	case `"thinking"`:
		st.kind = blockThinking
		return s.thinking(dst, b.thinking)
	case `"tool_use"`:
		st.kind, st.tool = blockTool, s.tools
		s.tools++
		s.usage.piece(s.rec)
		dst = s.open(dst)
		dst = append(dst, `{"tool_calls":[{"index":`...)
		dst = strconv.AppendInt(dst, int64(st.tool), 10)
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, orEmpty(b.id))
		dst = append(dst, `,"type":"function","function":{"name":`...)
		dst = appendString(dst, orEmpty(b.name))
		dst = append(dst, `,"arguments":`...)
		// A streamed tool_use starts with input {} and sends its input as
		// input_json_delta; one that arrives whole is sent whole.
		if b.input != nil && !json.IsEmptyObject(b.input) {
			dst = appendArguments(dst, b.input)
			st.args = true
		} else {
			dst = append(dst, `""`...)
		}
		dst = append(dst, `}}]}`...)
		return s.close(dst, "")
	}
	st.kind = blockOther
	return dst
}

func (s *ChatStream) text(dst, quoted []byte) []byte {
	if len(quoted) <= 2 {
		return dst
	}
	s.usage.piece(s.rec)
	if s.rec.Content.Capture {
		s.scratch, _ = json.AppendString(s.scratch[:0], quoted)
		s.rec.Content.AppendChoice(0, s.scratch)
	}
	dst = s.open(dst)
	dst = append(dst, `{"content":"`...)
	dst = appendInner(dst, quoted)
	dst = append(dst, `"}`...)
	return s.close(dst, "")
}

func (s *ChatStream) thinking(dst, quoted []byte) []byte {
	if len(quoted) <= 2 {
		return dst
	}
	s.usage.piece(s.rec)
	dst = s.open(dst)
	dst = append(dst, `{"reasoning_content":"`...)
	dst = appendInner(dst, quoted)
	dst = append(dst, `"}`...)
	return s.close(dst, "")
}

// delta is the members of a content_block_delta's delta.
type delta struct {
	typ, text, partial, thinking []byte
}

func (d *delta) read(v []byte) {
	var m json.Members
	m.Reset(v)
	for m.Next() {
		if m.Kind() != json.String {
			continue
		}
		switch string(m.Key()) {
		case "type":
			d.typ = m.Value()
		case "text":
			d.text = m.Value()
		case "partial_json":
			d.partial = m.Value()
		case "thinking":
			d.thinking = m.Value()
		}
	}
}

func (s *ChatStream) blockDelta(dst []byte, ev *event) []byte {
	st := s.slot(ev)
	if st == nil || ev.delta == nil {
		return dst
	}
	var d delta
	d.read(ev.delta)
	switch string(d.typ) {
	case `"text_delta"`:
		if st.kind == blockNone {
			st.kind = blockText
		}
		if st.kind == blockText {
			return s.text(dst, d.text)
		}
	case `"thinking_delta"`:
		if st.kind == blockNone {
			st.kind = blockThinking
		}
		if st.kind == blockThinking {
			return s.thinking(dst, d.thinking)
		}
	case `"input_json_delta"`:
		if st.kind != blockTool || len(d.partial) <= 2 {
			return dst
		}
		st.args = true
		s.usage.piece(s.rec)
		dst = s.open(dst)
		dst = append(dst, `{"tool_calls":[{"index":`...)
		dst = strconv.AppendInt(dst, int64(st.tool), 10)
		// partial_json is a fragment of the input's JSON text, sent as a
		// JSON string: exactly how OpenAI sends an arguments fragment.
		dst = append(dst, `,"function":{"arguments":"`...)
		dst = appendInner(dst, d.partial)
		dst = append(dst, `"}}]}`...)
		return s.close(dst, "")
	}
	// signature_delta, citations_delta and anything newer: record-only or
	// nothing a chat client reads.
	return dst
}

func (s *ChatStream) blockStop(dst []byte, ev *event) []byte {
	st := s.slot(ev)
	if st == nil || st.kind != blockTool || st.args {
		return dst
	}
	// A tool called without arguments streams no input at all; OpenAI
	// clients parse the arguments as JSON, and "" is not.
	st.args = true
	dst = s.open(dst)
	dst = append(dst, `{"tool_calls":[{"index":`...)
	dst = strconv.AppendInt(dst, int64(st.tool), 10)
	dst = append(dst, `,"function":{"arguments":"{}"}}]}`...)
	return s.close(dst, "")
}

func (s *ChatStream) messageDelta(dst []byte, ev *event) []byte {
	if ev.usage != nil {
		s.usage.read(ev.usage)
		s.usage.final = true
		s.usage.fill(s.rec)
	}
	if ev.delta == nil {
		return dst
	}
	var reason []byte
	var m json.Members
	m.Reset(ev.delta)
	for m.Next() {
		if string(m.Key()) == "stop_reason" && m.Kind() == json.String {
			reason = m.Value()
		}
	}
	if reason == nil {
		return dst
	}
	finish := finishReason(reason)
	s.rec.SetFinishReason(0, finish)
	return s.chunk(dst, `{}`, finish)
}

// error turns an error event into the error chunk OpenAI's SDKs raise as a
// stream error, and marks the record.
func (s *ChatStream) error(dst []byte, ev *event) []byte {
	s.failed = true
	body := s.scratch[:0]
	body = append(body, `{"type":"error","error":`...)
	if ev.errorObj != nil {
		body = append(body, ev.errorObj...)
	} else {
		body = append(body, `{}`...)
	}
	body = append(body, '}')
	s.scratch = body
	typ, msg := readError(body)
	rec := s.rec
	rec.Outcome = call.OutcomeUpstreamError
	if len(typ) > 0 {
		rec.ErrorType = call.CleanBytes(typ, 64)
	} else {
		rec.ErrorType = "upstream_error"
	}
	rec.ErrorMessage = call.CleanBytes(msg, 512)
	dst = append(dst, "data: "...)
	_, dst = ErrorToOpenAI(dst, 200, body)
	return append(dst, "\n\n"...)
}

// End appends what ends a translated stream that ended cleanly: the usage
// chunk, when the client asked for it and the upstream reported usage
// (with no choices, as OpenAI sends it), and data: [DONE]. After an error
// event it appends nothing. Where the upstream failed instead (a reset, a
// timeout, a stream cut before message_stop: see Done), the caller ends
// the stream with its own error event, as the relay does.
func (s *ChatStream) End(dst []byte) []byte {
	if s.failed {
		return dst
	}
	if s.includeUsage && s.usage.seen {
		s.ensureHead()
		dst = append(dst, s.head...)
		dst = append(dst, `],"usage":`...)
		dst = s.usage.appendOpenAI(dst)
		dst = append(dst, "}\n\n"...)
	}
	return append(dst, "data: [DONE]\n\n"...)
}
