package messages

import (
	"bytes"
	"errors"
	"strconv"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/tap"
)

// ErrUpstreamChunk means one chunk of the upstream's stream was not a chat
// completion chunk Loom can translate (not JSON, a tool call index out of
// range). Nothing was written for it; the stream may go on, or the caller
// may end it with Fail.
var ErrUpstreamChunk = errors.New("messages: upstream chunk cannot be translated")

// maxToolCalls bounds the tool calls of one streamed answer: the index comes
// from the upstream, and a hostile one must not grow a table that long.
const maxToolCalls = 256

type blockKind uint8

const (
	blockNone blockKind = iota
	blockText
	blockThinking
	blockTool
)

// Stream translates one OpenAI chat completion stream into Anthropic's
// Messages stream, chunk by chunk. The zero value is unusable: call Reset.
// Reuse it for the next stream with Reset; after the first few streams it
// allocates nothing.
//
// What the client sees, for a stream of chunks ending in [DONE]:
//
//	message_start (at the first chunk with a choice; usage zero, as the
//	  chat stream tells usage only at its end)
//	content_block_start / content_block_delta... / content_block_stop
//	  per block: thinking (reasoning_content deltas), text (content and
//	  refusal deltas), tool_use (one per tool call, input_json_delta
//	  fragments exactly as the upstream streamed the arguments); a new
//	  block closes the open one, indexes count from 0 without gaps
//	message_delta (stop_reason, and the whole usage: input_tokens,
//	  cache_read_input_tokens, cache_creation_input_tokens, output_tokens,
//	  which Anthropic's SDKs take as the message's totals)
//	message_stop
//
// An upstream error chunk becomes one `event: error` and ends the stream.
type Stream struct {
	rec   *call.Record
	own   call.Record
	model []byte

	started, ended, finished bool
	open                     blockKind
	openIndex                int
	next                     int // the next block's index
	// tools maps a chat tool call index to its block index + 1 (0: not
	// started yet).
	tools    []int
	nCalls   int
	refused  bool
	stop     string // the finish reason, mapped; "" until one arrives
	u        usage
	sawUsage bool
}

// Reset prepares s for a new stream. model is what the client asked for
// (the message says it back); it is copied.
//
// rec, if not nil, is the call's record, and the Stream is its tap: each
// chunk goes through tap.Observe (response id and model, finish reasons,
// usage, output pieces, error type), and an upstream error chunk sets
// rec.Outcome to upstream_error. Content capture (tap.ObserveContent) and
// counting and timing events (Chunks, ChunksSent, FirstChunk) stay the
// caller's. Pass nil when something else already taps the same chunks:
// observing twice would count output pieces twice.
func (s *Stream) Reset(rec *call.Record, model []byte) {
	tools, m := s.tools[:0], s.model[:0]
	ownID, ownModel, ownReasons := s.own.ResponseID[:0], s.own.ResponseModel[:0], s.own.FinishReasons[:0]
	*s = Stream{rec: rec, tools: tools, model: append(m, model...)}
	s.own.ResponseID, s.own.ResponseModel, s.own.FinishReasons = ownID, ownModel, ownReasons
	if rec == nil {
		s.rec = &s.own
	}
}

// Started reports whether message_start has been written: until then no
// byte of the answer has reached the client, and a failure may still be
// answered with an error status instead of an error event.
func (s *Stream) Started() bool { return s.started }

// Ended reports whether the stream has been closed (message_stop, or an
// error event); Chunk and End then append nothing.
func (s *Stream) Ended() bool { return s.ended }

func appendEvent(dst []byte, name string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	return append(dst, "\ndata: "...)
}

const endEvent = "\n\n"

// Chunk appends the events for one chunk's data (the SSE data field of
// the upstream's event, "[DONE]" included, which ends the stream as End
// does).
func (s *Stream) Chunk(dst, data []byte) ([]byte, error) {
	if s.ended {
		return dst, nil
	}
	if string(data) == "[DONE]" {
		return s.End(dst), nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// An empty data field (a keep-alive some servers send) says
		// nothing: not a broken stream.
		return dst, nil
	}
	c := tap.Observe(s.rec, data)
	if !c.Valid {
		return dst, ErrUpstreamChunk
	}
	caller := s.rec != &s.own
	if c.Error {
		if caller && s.rec.Outcome == "" {
			s.rec.Outcome = call.OutcomeUpstreamError
		}
		return s.upstreamError(dst, data), nil
	}
	var m json.Members
	m.Reset(data)
	var c0 choice
	hadUsage := false
	for m.Next() {
		switch string(m.Key()) {
		case "choices":
			if m.Kind() != json.Array {
				continue
			}
			var e json.Elements
			e.Reset(m.Value())
			for e.Next() {
				if e.Kind() == json.Object {
					c0.read(e.Value())
				}
			}
		case "usage":
			if m.Kind() == json.Object {
				readUsage(&s.u, m.Value())
				s.sawUsage, hadUsage = true, true
			}
		}
	}
	var err error
	// Content after the finish reason and usage (message_delta is out)
	// has no place in an Anthropic stream: an upstream that sends it is
	// broken, and it is dropped.
	if c0.found && !s.finished {
		if !s.started {
			dst = s.messageStart(dst)
		}
		dst, err = s.choice(dst, &c0)
	}
	// The message ends with the usage that comes with or after the finish
	// reason (include_usage's last chunk); usage sent earlier may be a
	// running count, so it waits for the end of the stream.
	if hadUsage && s.stop != "" && !s.finished {
		dst = s.finish(dst)
	}
	return dst, err
}

// choice is what a chunk says in choice 0 (one with no index counts as
// 0): Messages has no n, the other choices are not translated.
type choice struct {
	delta, finish []byte
	found         bool
}

func (c *choice) read(v []byte) {
	var delta, finish []byte
	first := true
	var m json.Members
	m.Reset(v)
	for m.Next() {
		switch string(m.Key()) {
		case "index":
			first = string(m.Value()) == "0"
		case "delta":
			if m.Kind() == json.Object {
				delta = m.Value()
			}
		case "finish_reason":
			if m.Kind() == json.String {
				finish = m.Value()
			}
		}
	}
	if first {
		*c = choice{delta: delta, finish: finish, found: true}
	}
}

func (s *Stream) messageStart(dst []byte) []byte {
	s.started = true
	dst = appendEvent(dst, "message_start")
	dst = append(dst, `{"type":"message_start","message":{"id":`...)
	dst = appendMessageID(dst, s.rec.ResponseID)
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = json.AppendQuote(dst, s.model)
	dst = append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}`...)
	return append(dst, endEvent...)
}

func (s *Stream) choice(dst []byte, c *choice) ([]byte, error) {
	delta, finish := c.delta, c.finish
	var err error
	if delta != nil {
		var reasoning, content, refusal, calls []byte
		var d json.Members
		d.Reset(delta)
		for d.Next() {
			switch string(d.Key()) {
			case "reasoning_content", "reasoning":
				if d.Kind() == json.String && len(d.Value()) > 2 {
					reasoning = d.Value()
				}
			case "content":
				if d.Kind() == json.String && len(d.Value()) > 2 {
					content = d.Value()
				}
			case "refusal":
				if d.Kind() == json.String && len(d.Value()) > 2 {
					refusal = d.Value()
				}
			case "tool_calls":
				if d.Kind() == json.Array {
					calls = d.Value()
				}
			}
		}
		if reasoning != nil {
			dst = s.textDelta(dst, blockThinking, reasoning)
		}
		if content != nil {
			dst = s.textDelta(dst, blockText, content)
		}
		if refusal != nil {
			s.refused = true
			dst = s.textDelta(dst, blockText, refusal)
		}
		if calls != nil {
			dst, err = s.toolCalls(dst, calls)
		}
	}
	if finish != nil {
		s.stop = stopReason(finish, false)
	}
	return dst, err
}

// closeBlock ends the open block, if any.
func (s *Stream) closeBlock(dst []byte) []byte {
	if s.open == blockNone {
		return dst
	}
	if s.open == blockThinking {
		// Anthropic ends every thinking block with its signature; a chat
		// model has none to give, and clients expect the delta.
		dst = appendEvent(dst, "content_block_delta")
		dst = append(dst, `{"type":"content_block_delta","index":`...)
		dst = strconv.AppendInt(dst, int64(s.openIndex), 10)
		dst = append(dst, `,"delta":{"type":"signature_delta","signature":""}}`...)
		dst = append(dst, endEvent...)
	}
	s.open = blockNone
	dst = appendEvent(dst, "content_block_stop")
	dst = append(dst, `{"type":"content_block_stop","index":`...)
	dst = strconv.AppendInt(dst, int64(s.openIndex), 10)
	dst = append(dst, '}')
	return append(dst, endEvent...)
}

// startBlock closes the open block and opens the next one; the caller
// appends the content_block object and "}\n\n".
func (s *Stream) startBlock(dst []byte, kind blockKind) []byte {
	dst = s.closeBlock(dst)
	s.open, s.openIndex = kind, s.next
	s.next++
	dst = appendEvent(dst, "content_block_start")
	dst = append(dst, `{"type":"content_block_start","index":`...)
	dst = strconv.AppendInt(dst, int64(s.openIndex), 10)
	return append(dst, `,"content_block":`...)
}

func (s *Stream) textDelta(dst []byte, kind blockKind, text []byte) []byte {
	if s.open != kind {
		dst = s.startBlock(dst, kind)
		if kind == blockThinking {
			dst = append(dst, `{"type":"thinking","thinking":"","signature":""}}`...)
		} else {
			dst = append(dst, `{"type":"text","text":""}}`...)
		}
		dst = append(dst, endEvent...)
	}
	dst = appendEvent(dst, "content_block_delta")
	dst = append(dst, `{"type":"content_block_delta","index":`...)
	dst = strconv.AppendInt(dst, int64(s.openIndex), 10)
	if kind == blockThinking {
		dst = append(dst, `,"delta":{"type":"thinking_delta","thinking":`...)
	} else {
		dst = append(dst, `,"delta":{"type":"text_delta","text":`...)
	}
	dst = appendCleanJSONString(dst, text)
	dst = append(dst, "}}"...)
	return append(dst, endEvent...)
}

// toolCalls translates one delta's tool_calls. The first fragment of a
// call (its id and name) starts a tool_use block; argument fragments are
// passed on as input_json_delta, byte for byte as JSON strings. A fragment
// for a call whose block was closed (an upstream that interleaves calls;
// OpenAI does not) still goes to that call's block index, where the
// Anthropic SDKs accumulate it.
func (s *Stream) toolCalls(dst, calls []byte) ([]byte, error) {
	var err error
	var e json.Elements
	e.Reset(calls)
	for pos := 0; e.Next(); pos++ {
		if e.Kind() != json.Object {
			continue
		}
		var index int64 = int64(pos)
		var id, fn []byte
		var m json.Members
		m.Reset(e.Value())
		for m.Next() {
			switch string(m.Key()) {
			case "index":
				n, ok := json.Int(m.Value())
				if !ok {
					n = -1
				}
				index = n
			case "id":
				if m.Kind() == json.String && len(m.Value()) > 2 {
					id = m.Value()
				}
			case "function":
				if m.Kind() == json.Object {
					fn = m.Value()
				}
			}
		}
		if index < 0 || index >= maxToolCalls {
			err = ErrUpstreamChunk
			continue
		}
		for int64(len(s.tools)) <= index {
			s.tools = append(s.tools, 0)
		}
		name, nameKind := field(fn, "name")
		args, argsKind := field(fn, "arguments")
		if s.tools[index] == 0 {
			s.nCalls++
			dst = s.startBlock(dst, blockTool)
			s.tools[index] = s.openIndex + 1
			dst = append(dst, `{"type":"tool_use","id":`...)
			dst = appendToolID(dst, id, s.nCalls)
			dst = append(dst, `,"name":`...)
			if nameKind == json.String {
				dst = appendCleanJSONString(dst, name)
			} else {
				dst = append(dst, `""`...)
			}
			dst = append(dst, `,"input":{}}}`...)
			dst = append(dst, endEvent...)
		}
		if argsKind == json.String && len(args) > 2 {
			dst = appendEvent(dst, "content_block_delta")
			dst = append(dst, `{"type":"content_block_delta","index":`...)
			dst = strconv.AppendInt(dst, int64(s.tools[index]-1), 10)
			dst = append(dst, `,"delta":{"type":"input_json_delta","partial_json":`...)
			dst = appendCleanJSONString(dst, args)
			dst = append(dst, "}}"...)
			dst = append(dst, endEvent...)
		}
	}
	return dst, err
}

// finish closes the open block and writes message_delta.
func (s *Stream) finish(dst []byte) []byte {
	s.finished = true
	dst = s.closeBlock(dst)
	reason := s.stop
	switch {
	case s.refused:
		reason = "refusal"
	case reason == "" || reason == "end_turn" && s.nCalls > 0:
		reason = stopReason(nil, s.nCalls > 0)
	}
	dst = appendEvent(dst, "message_delta")
	dst = append(dst, `{"type":"message_delta","delta":{"stop_reason":"`...)
	dst = append(dst, reason...)
	dst = append(dst, `","stop_sequence":null},"usage":`...)
	if s.sawUsage {
		dst = appendUsage(dst, &s.u)
	} else {
		// The upstream never said (it ignored include_usage): one output
		// piece is about one token, the estimate Loom records too.
		dst = append(dst, `{"output_tokens":`...)
		dst = strconv.AppendInt(dst, int64(s.rec.OutputPieces), 10)
		dst = append(dst, '}')
	}
	dst = append(dst, '}')
	return append(dst, endEvent...)
}

// End appends what closes the stream: the open block's stop, message_delta
// (if the usage chunk has not already brought it) and message_stop. Call it
// when the upstream's stream ended cleanly ([DONE] does it too); it
// appends nothing after an error event or a second time.
func (s *Stream) End(dst []byte) []byte {
	if s.ended {
		return dst
	}
	if !s.started {
		dst = s.messageStart(dst)
	}
	if !s.finished {
		dst = s.finish(dst)
	}
	s.ended = true
	dst = appendEvent(dst, "message_stop")
	dst = append(dst, `{"type":"message_stop"}`...)
	return append(dst, endEvent...)
}

// Fail appends an Anthropic error event and ends the stream: what the
// client sees when the upstream fails after the stream began (a reset, a
// timeout). errType "" is api_error. Nothing is appended after the end.
func (s *Stream) Fail(dst []byte, errType, message string) []byte {
	if s.ended {
		return dst
	}
	s.ended = true
	if errType == "" {
		errType = TypeAPI
	}
	dst = appendEvent(dst, "error")
	dst = AppendError(dst, 500, errType, message)
	return append(dst, endEvent...)
}

// upstreamError turns an OpenAI error chunk ({"error":{...}} in place of a
// chunk) into an error event, typed by its code, and ends the stream.
func (s *Stream) upstreamError(dst, data []byte) []byte {
	s.ended = true
	_, code := openAIError(data)
	status := 500
	switch string(code) {
	case "rate_limit_exceeded", "rate_limit_error", "tokens", "requests":
		status = 429
	case "server_overloaded", "overloaded", "overloaded_error":
		status = 503
	}
	dst = appendEvent(dst, "error")
	_, dst = ErrorFromOpenAI(dst, status, data)
	return append(dst, endEvent...)
}
