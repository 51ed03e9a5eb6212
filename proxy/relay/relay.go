// Package relay passes an upstream SSE stream to a client event by event,
// byte for byte, while the tap reads each event on the side. Stream is the
// response body fasthttp writes to the client: every Write of its WriteTo
// (or Read) hands over at most one event, and fasthttp flushes after each,
// so each event reaches the client as soon as it is complete and never
// waits for the next one.
//
// It changes the stream in exactly one case: when Loom asked the upstream for
// usage on the client's behalf, the usage chunk (and any "usage" member) is
// cut out, so the client sees what the provider would have sent it.
package relay

import (
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/sse"
	"github.com/loom-gateway/loom/proxy/tap"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// Reasons a stream's upstream is closed early.
var (
	ErrDrainDeadline = errors.New("relay: drain deadline reached after client disconnect")
	ErrShutdown      = errors.New("relay: server shutting down")
)

// Body is an upstream response body that can be closed while a Read is
// blocked on it (fasthttp's streamed bodies can).
type Body interface {
	io.Reader
	CloseWithError(err error) error
}

// Options for one stream.
type Options struct {
	// DropUsage removes the usage chunk Loom asked for on the client's behalf.
	DropUsage bool
	// Observe reads one event's data into the record; nil means
	// tap.Observe (OpenAI chat and completions chunks). The Responses API
	// uses tap.ObserveResponseEvent. It must not change data.
	Observe func(r *call.Record, data []byte) tap.Chunk
	// ObserveContent adds one event's text to the captured content; nil
	// means tap.ObserveContent.
	ObserveContent func(c *call.Content, data []byte)
	// Translator, when set, decides what the client gets for each event
	// (and taps it): a stream whose dialect differs from the client's is
	// translated, not passed. Observe, ObserveContent and DropUsage do not
	// apply then. Nil (the pass-through path) costs one nil check.
	Translator Translator
	// Drain bounds how long the upstream is read after the client left.
	Drain time.Duration
	// MaxEvent bounds one event's size.
	MaxEvent int
	// Done runs once, after the upstream is closed and the client is done
	// (or gone). The record is complete then.
	Done func()
	// Client, with WriteTimeout, bounds each write to the client: its write
	// deadline is pushed WriteTimeout ahead each time the stream hands
	// fasthttp bytes to write. A client that stops reading is then cut off
	// (and recorded as gone) once its socket buffers fill, while a long
	// stream that the client keeps reading is never cut, as one deadline
	// for the whole response would.
	Client       WriteDeadliner
	WriteTimeout time.Duration
}

// Translator turns an upstream stream of one dialect into the client's
// (Anthropic Messages events into OpenAI chat chunks, or back), or reads a
// native stream that it passes on unchanged, filling the record it was set
// up with. Each method appends to dst and returns it; what it returns
// for one event reaches the client as one write, so it must be whole
// events.
type Translator interface {
	// Event appends what the client gets for one upstream event: nothing,
	// one event or several. An error means the event could not be read
	// (the upstream's fault): the stream ends there, with Error's event.
	Event(dst []byte, ev *sse.Event) ([]byte, error)
	// End appends what closes the client's stream after the upstream's
	// clean end; rest holds the bytes of an unterminated last event, if
	// any.
	End(dst, rest []byte) []byte
	// Error appends an error event in the client's dialect, for a stream
	// that the upstream or a shutdown broke off.
	Error(dst []byte, message, code string) []byte
}

// ErrTranslate marks a stream ended because its translator could not read
// an upstream event.
var ErrTranslate = errors.New("relay: upstream event could not be translated")

// WriteDeadliner is a client connection (a net.Conn) whose write deadline
// the stream moves.
type WriteDeadliner interface {
	SetWriteDeadline(t time.Time) error
}

type state uint8

const (
	streaming state = iota
	ending          // upstream finished; pending holds the last bytes for the client
	ended           // io.EOF returned
	closed
)

// Stream is one relayed stream. Reuse it with Reset; the zero value is ready
// for Reset.
type Stream struct {
	body    Body
	rec     *call.Record
	opts    Options
	sc      sse.Scanner
	buf     []byte
	scratch []byte
	pending []byte
	state   state
	counter countingReader
	// held is what Prime kept of the events before the first real one
	// (comments, pings), copied out of the scanner's buffer.
	held    []byte
	aborted atomic.Bool
	upDone  bool
	// broken is set when the translator failed on an event: the stream
	// ends after the error event it produced.
	broken bool
	// deadline is the client write deadline last set (see pushDeadline).
	deadline time.Time
}

// scanBuf is the scanner's starting buffer. Every open stream holds it for
// its whole life (at 16 KiB it was a third of what a stream cost Loom), and
// a chat chunk is a few hundred bytes: the upstream connection's own 4 KiB
// read buffer absorbs bursts, and the scanner takes one event at a time
// from it. A larger event grows the buffer for that stream alone (up to
// MaxEvent); the next stream starts small again.
const scanBuf = 1 << 10

type countingReader struct {
	r Body
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// Reset prepares s to relay body into rec.
func (s *Stream) Reset(body Body, rec *call.Record, opts Options) {
	if s.buf == nil {
		s.buf = make([]byte, scanBuf)
	}
	s.body, s.rec, s.opts = body, rec, opts
	s.deadline = time.Time{}
	s.pending, s.scratch = nil, s.scratch[:0]
	if cap(s.held) > maxHeld {
		s.held = nil // a stream's memory stays small (see scanBuf)
	}
	s.held = s.held[:0]
	s.state, s.upDone, s.broken = streaming, false, false
	s.aborted.Store(false)
	s.counter = countingReader{r: body, n: &rec.UpstreamBytes}
	s.sc.Reset(&s.counter, s.buf, opts.MaxEvent)
}

// maxHeld bounds what Prime holds of the events before the first real one:
// an upstream that sends only comments past it is committed to as it is.
const maxHeld = 4 << 10

// Prime reads the upstream until its first real event (one with data: a
// chunk, an error, [DONE]), taps it, and holds it for the client with
// whatever came before it (comments, pings), so that the caller commits
// the client to this upstream only once it has produced something. The
// held bytes are the first the client gets, as soon as fasthttp writes
// the stream: holding them costs no time. Call it after Reset, before the
// stream is handed to fasthttp.
//
// It returns the read error when the upstream failed before its first
// real event: nothing reached the client, the caller closes the body and
// may try another upstream (Reset the stream for it). A clean end before
// any real event is not a failure: the stream relays it as it is.
//
// A first real event that is an error object worth another upstream
// (RetryableEventError: overloaded, a server error, a rate limit) is
// reported as a *FirstEventError. The stream stays primed with that event:
// the caller either closes the body and tries another upstream, or, with
// none left, relays it as it is. An error that would be the same anywhere
// (an invalid request) is the answer: Prime returns nil for it. A
// translated stream's errors are its translator's to render, never
// reported.
func (s *Stream) Prime() error {
	for {
		if !s.sc.Next() {
			if err := s.sc.Err(); err != nil {
				return err
			}
			s.pending = s.held
			return nil
		}
		ev := s.sc.Event()
		out := s.process(ev)
		if len(out) > 0 {
			s.rec.ChunksSent++
		}
		if s.broken {
			// The translator could not read the event: the client gets
			// its error event, and the stream ends there.
			s.finishUpstream(ErrTranslate)
			s.state = ending
		}
		if ev.HasData || s.broken || len(s.held)+len(out) > maxHeld {
			if len(s.held) > 0 {
				out = append(s.held, out...)
				s.held = out
			}
			s.pending = out
			if ev.HasData && s.opts.Translator == nil && s.rec.Outcome == call.OutcomeUpstreamError &&
				RetryableEventError(s.rec.ErrorType) {
				return &FirstEventError{Type: s.rec.ErrorType}
			}
			return nil
		}
		s.held = append(s.held, out...)
	}
}

// FirstEventError is Prime's report of a stream whose first real event is
// an error object that another upstream may not repeat.
type FirstEventError struct {
	// Type is the error's code, or its type when it has no code (as
	// call.Record.ErrorType has it).
	Type string
}

func (e *FirstEventError) Error() string {
	return "the upstream's stream began with an error event (" + e.Type + ")"
}

// RetryableEventError reports whether an error event of this code or type
// (OpenAI's, Azure's and Anthropic's names) says the upstream could not
// serve now, rather than that the request is wrong: the kinds of error a
// 429 or a 5xx answer would carry.
func RetryableEventError(typ string) bool {
	switch typ {
	case "server_error", "internal_error", "internal_server_error", "api_error", "overloaded_error", "overloaded",
		"service_unavailable", "server_overloaded", "engine_overloaded", "timeout", "rate_limit_exceeded",
		"rate_limit_error", "requests", "tokens":
		return true
	}
	return false
}

// Read implements io.Reader: it returns the next event (or the rest of one
// that did not fit in p). fasthttp uses WriteTo instead; Read serves any
// other reader of the stream.
func (s *Stream) Read(p []byte) (int, error) {
	b, err := s.next()
	if err != nil {
		return 0, err
	}
	n := copy(p, b)
	s.pending = s.pending[n:]
	s.rec.ClientBytes += int64(n)
	s.pushDeadline()
	return n, nil
}

// WriteTo writes the stream to w, one Write per event, straight from the
// scanner's buffer. fasthttp's chunked writer frames and flushes each Write
// as one chunk, as it did each Read, so every event still reaches the
// client as soon as it is complete; what WriteTo saves is the copy into a
// 4 KiB buffer from fasthttp's pool, which a stream held for its whole
// life. The accounting (ClientBytes, ChunksSent, the write deadline) is
// Read's. It returns nil at the stream's end and w's error when the client
// is gone; fasthttp then calls CloseWithError either way.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		b, err := s.next()
		if err != nil { // io.EOF: the stream is over
			return total, nil
		}
		s.pending = nil
		s.rec.ClientBytes += int64(len(b))
		s.pushDeadline()
		n, err := w.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// SupportsBodyWriteTo tells fasthttp that WriteTo may replace Read: it has
// the same side effects and writes the same bytes, event by event.
func (s *Stream) SupportsBodyWriteTo() bool { return true }

// next returns the bytes the client gets next (never empty; s.pending
// holds them), or io.EOF once the stream is over.
func (s *Stream) next() ([]byte, error) {
	for len(s.pending) == 0 {
		switch s.state {
		case ending:
			s.state = ended
			// fasthttp still writes the stream's end.
			s.pushDeadline()
			return nil, io.EOF
		case ended, closed:
			return nil, io.EOF
		}
		if !s.sc.Next() {
			s.pending = s.end()
			s.state = ending
			continue
		}
		s.pending = s.process(s.sc.Event())
		if len(s.pending) > 0 {
			s.rec.ChunksSent++
		}
		if s.broken {
			s.finishUpstream(ErrTranslate)
			s.state = ending
		}
	}
	return s.pending, nil
}

// pushDeadline gives the write of what the stream hands fasthttp at least
// WriteTimeout, counted from now: the wait for the upstream's next event
// never counts against the client. Moving a deadline is a timer operation
// in the runtime's netpoller, and at thousands of streams of tens of events
// a second one per event was a measurable share of the gateway's CPU and
// of its tail latency. So the deadline is set WriteTimeout plus an eighth
// ahead, and only moved when less than WriteTimeout is left: a stream that
// the client keeps reading moves it about once every WriteTimeout/8, and a
// client that stops reading is still cut off between WriteTimeout and
// 9/8 WriteTimeout after the write began.
func (s *Stream) pushDeadline() {
	if s.opts.Client == nil || s.opts.WriteTimeout <= 0 {
		return
	}
	now := time.Now()
	if s.deadline.Sub(now) >= s.opts.WriteTimeout {
		return
	}
	s.deadline = now.Add(s.opts.WriteTimeout + s.opts.WriteTimeout/8)
	_ = s.opts.Client.SetWriteDeadline(s.deadline)
}

// process taps one event and returns the bytes the client gets for it.
func (s *Stream) process(ev *sse.Event) []byte {
	if s.opts.Translator != nil {
		return s.translate(ev)
	}
	if !ev.HasData || ev.IsDone() {
		return ev.Raw
	}
	rec := s.rec
	if rec.FirstChunk.IsZero() {
		rec.FirstChunk = time.Now()
	}
	rec.Chunks++
	var c tap.Chunk
	if s.opts.Observe != nil {
		c = s.opts.Observe(rec, ev.Data)
	} else {
		c = tap.Observe(rec, ev.Data)
	}
	if rec.Content.Capture {
		if s.opts.ObserveContent != nil {
			s.opts.ObserveContent(&rec.Content, ev.Data)
		} else {
			tap.ObserveContent(&rec.Content, ev.Data)
		}
	}
	if c.Error && rec.Outcome == "" {
		rec.Outcome = call.OutcomeUpstreamError
	}
	if !s.opts.DropUsage || !c.Valid {
		return ev.Raw
	}
	if c.UsageOnly {
		return nil
	}
	if c.UsageEnd > 0 && ev.DataOffset >= 0 {
		off := ev.DataOffset
		s.scratch = append(append(s.scratch[:0], ev.Raw[:off+c.UsageStart]...), ev.Raw[off+c.UsageEnd:]...)
		return s.scratch
	}
	return ev.Raw
}

// translate hands one event to the translator.
func (s *Stream) translate(ev *sse.Event) []byte {
	rec := s.rec
	if ev.HasData && !ev.IsDone() {
		if rec.FirstChunk.IsZero() {
			rec.FirstChunk = time.Now()
		}
		rec.Chunks++
	}
	out, err := s.opts.Translator.Event(s.scratch[:0], ev)
	if err != nil {
		s.broken = true
		rec.Outcome, rec.ErrorType, rec.ErrorMessage = call.OutcomeUpstreamFailed, "upstream_malformed", err.Error()
		out = s.opts.Translator.Error(out, "The upstream sent an event the gateway could not read.", "upstream_malformed")
	}
	s.scratch = out
	return out
}

// end closes the upstream after its last event and returns what the client
// still gets: the bytes of an unterminated last event at a clean end, or an
// error event when the upstream failed.
func (s *Stream) end() []byte {
	err := s.sc.Err()
	rec := s.rec
	var out []byte
	switch {
	case s.aborted.Load():
		rec.Outcome, rec.ErrorType, rec.ErrorMessage = call.OutcomeUpstreamFailed, "shutdown", ErrShutdown.Error()
		out = s.errorEvent("The server is shutting down; the stream was ended early.", "server_shutdown")
	case err != nil:
		rec.Outcome = call.OutcomeUpstreamFailed
		rec.ErrorMessage = err.Error()
		switch {
		case errors.Is(err, sse.ErrEventTooLarge):
			rec.ErrorType = "event_too_large"
		case errors.Is(upstream.Classify(err), upstream.ErrTimeout):
			rec.ErrorType = "timeout"
		default:
			rec.ErrorType = "upstream_reset"
		}
		out = s.errorEvent("The upstream connection failed mid-stream ("+rec.ErrorType+").", rec.ErrorType)
	case s.opts.Translator != nil:
		out = s.opts.Translator.End(s.scratch[:0], s.sc.Rest())
		s.scratch = out
	default:
		out = s.sc.Rest()
	}
	s.finishUpstream(err)
	if len(out) > 0 {
		s.rec.ChunksSent++
	}
	return out
}

// errorEvent is the event that ends a broken stream, in the client's
// dialect.
func (s *Stream) errorEvent(message, code string) []byte {
	if s.opts.Translator != nil {
		s.scratch = s.opts.Translator.Error(s.scratch[:0], message, code)
		return s.scratch
	}
	return errorEvent(s.scratch[:0], message, code)
}

func errorEvent(dst []byte, message, code string) []byte {
	e := apierror.Error{Message: message, Type: apierror.TypeServer, Code: code}
	dst = append(dst, "data: "...)
	dst = e.AppendJSON(dst)
	return append(dst, "\n\n"...)
}

func (s *Stream) finishUpstream(err error) {
	if s.upDone {
		return
	}
	s.upDone = true
	s.rec.UpstreamEnd = time.Now()
	_ = s.body.CloseWithError(err)
}

// CloseWithError is called by fasthttp once it stops writing the response:
// with nil after the whole body, or with the write error when the client
// vanished. A client that left before the end is recorded, and the upstream
// is drained for at most Options.Drain to learn the final usage.
func (s *Stream) CloseWithError(err error) error {
	if s.state == closed {
		return nil
	}
	clientGone := s.state != ended
	s.state = closed
	s.opts.Client = nil // the connection outlives the stream; do not hold it
	rec := s.rec
	if clientGone {
		rec.ClientDisconnected = true
		if rec.Outcome == "" || rec.Outcome == call.OutcomeOK {
			rec.Outcome, rec.ErrorType = call.OutcomeClientGone, "client_disconnected"
			if err != nil {
				rec.ErrorMessage = err.Error()
			}
		}
		s.drainUpstream()
	}
	rec.End = time.Now()
	if s.opts.Done != nil {
		s.opts.Done()
	}
	return nil
}

func (s *Stream) drainUpstream() {
	if s.upDone {
		return
	}
	s.rec.Drained = true
	if s.opts.Drain <= 0 {
		s.finishUpstream(ErrDrainDeadline)
		return
	}
	body := s.body
	t := time.AfterFunc(s.opts.Drain, func() { _ = body.CloseWithError(ErrDrainDeadline) })
	for !s.broken && s.sc.Next() {
		s.process(s.sc.Event())
	}
	t.Stop()
	s.rec.DrainComplete = s.sc.Err() == nil && !s.broken
	s.finishUpstream(s.sc.Err())
}

// Abort ends the stream early from another goroutine (server shutdown): the
// upstream is closed, and the client gets an error event and a clean end.
func (s *Stream) Abort() {
	s.aborted.Store(true)
	_ = s.body.CloseWithError(ErrShutdown)
}
