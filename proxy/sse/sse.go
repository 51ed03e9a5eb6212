// Package sse splits a server-sent-events byte stream into events exactly as
// they arrived. It never rewrites the bytes: Event.Raw is what the upstream
// sent for that event, terminator included, so a relay that writes every Raw
// in order reproduces the stream byte for byte. It reads the fields (data,
// event) the tap needs, without allocating in steady state.
package sse

import (
	"bytes"
	"errors"
	"io"
)

// ErrEventTooLarge means one event grew past the scanner's limit without
// ending.
var ErrEventTooLarge = errors.New("sse: event exceeds size limit")

// Event is one event. Its slices alias the scanner's buffer and are valid
// until the next call to Next.
type Event struct {
	// Raw is the event's bytes as received, up to and including the blank
	// line that ended it.
	Raw []byte
	// Data is the value of the data field; several data lines are joined with
	// "\n" as the SSE spec says. HasData tells an empty data field from none.
	Data    []byte
	HasData bool
	// DataOffset is where Data starts in Raw, or -1 when Data was joined
	// from several lines and so is not a slice of Raw.
	DataOffset int
	// Name is the value of the event field, if any.
	Name []byte
}

// IsDone reports whether the event is OpenAI's end-of-stream sentinel.
func (e *Event) IsDone() bool { return e.HasData && string(e.Data) == "[DONE]" }

// Scanner reads events from r. The zero value is unusable; use NewScanner or
// Reset.
type Scanner struct {
	r    io.Reader
	buf  []byte
	max  int
	head int // start of the unconsumed bytes
	tail int // end of the bytes read so far
	err  error
	ev   Event
	// joined holds data that spans several data lines.
	joined []byte
	// What is known of the pending event, so that a read that does not
	// complete it costs only the new bytes: an event arriving in many small
	// reads is scanned once, not once per read (quadratic up to max).
	// Offsets are relative to head, so they survive compaction and growth.
	pending
}

// pending is the scan state of the event being read.
type pending struct {
	lineAt    int // start of the line being read
	scanned   int // bytes of that line known to hold no line end
	dataLines int
	dataAt    int // the first data value
	dataLen   int
	nameAt    int // the event field's value
	nameLen   int
	hasName   bool
}

// DefaultMaxEvent bounds one event, well above the largest chunk a provider
// sends (logprobs with many alternatives).
const DefaultMaxEvent = 8 << 20

// NewScanner reads from r, starting with buf as its buffer (it grows up to
// max bytes for one event).
func NewScanner(r io.Reader, buf []byte, max int) *Scanner {
	s := &Scanner{}
	s.Reset(r, buf, max)
	return s
}

// Reset reuses s for r, keeping its buffers.
func (s *Scanner) Reset(r io.Reader, buf []byte, max int) {
	if buf == nil {
		buf = s.buf
	}
	if cap(buf) < 512 {
		buf = make([]byte, 16<<10)
	}
	if max <= 0 {
		max = DefaultMaxEvent
	}
	*s = Scanner{r: r, buf: buf[:cap(buf)], max: max, joined: s.joined[:0]}
}

// Next advances to the next complete event. It returns false at the end of
// the stream or on an error; Err tells which, and Rest holds any bytes that
// came after the last complete event.
func (s *Scanner) Next() bool {
	for {
		if end, ok := s.parse(); ok {
			s.head = end
			return true
		}
		if s.err != nil {
			return false
		}
		s.fill()
	}
}

// Event is the current event.
func (s *Scanner) Event() *Event { return &s.ev }

// Err is the read error that ended the stream; nil at a clean end.
func (s *Scanner) Err() error {
	if errors.Is(s.err, io.EOF) {
		return nil
	}
	return s.err
}

// Rest is what the stream sent after its last complete event: a truncated
// event, which the relay still passes on so no byte is lost.
func (s *Scanner) Rest() []byte { return s.buf[s.head:s.tail] }

func (s *Scanner) fill() {
	if s.head > 0 && s.head == s.tail {
		s.head, s.tail = 0, 0
	}
	if s.tail == len(s.buf) {
		if s.head > 0 {
			n := copy(s.buf, s.buf[s.head:s.tail])
			s.head, s.tail = 0, n
		} else if len(s.buf) >= s.max {
			s.err = ErrEventTooLarge
			return
		} else {
			grown := make([]byte, min(2*len(s.buf), s.max))
			copy(grown, s.buf[s.head:s.tail])
			s.tail -= s.head
			s.head = 0
			s.buf = grown
		}
	}
	n, err := s.r.Read(s.buf[s.tail:])
	s.tail += n
	if err != nil {
		s.err = err
	}
}

// parse looks for one complete event in buf[head:tail], resuming where the
// last call stopped. Lines end in CRLF, LF or CR; an event ends at an empty
// line. A CR at the very end of what was read could still be followed by LF,
// so the line is not complete until the next byte arrives (or the stream
// ends).
func (s *Scanner) parse() (int, bool) {
	b := s.buf[s.head:s.tail]
	p := &s.pending
	for {
		// b[lineAt:lineAt+scanned] holds no CR or LF, so the search for the
		// line's end starts after it.
		from := p.lineAt + p.scanned
		j := indexLineEnd(b[from:])
		if j < 0 {
			p.scanned = len(b) - p.lineAt
			return 0, false
		}
		lineEnd := from + j
		next := lineEnd + 1
		if b[lineEnd] == '\r' {
			// A full buffer is not the end of the stream: the LF may be
			// the event's next byte, one past the limit, so the event is
			// refused rather than cut at its CR.
			if next == len(b) && (s.err == nil || errors.Is(s.err, ErrEventTooLarge)) {
				p.scanned = lineEnd - p.lineAt
				return 0, false
			}
			if next < len(b) && b[next] == '\n' {
				next++
			}
		}
		lineAt := p.lineAt
		p.lineAt, p.scanned = next, 0
		if lineEnd == lineAt {
			s.complete(b[:next])
			return s.head + next, true
		}
		s.field(b, lineAt, lineEnd)
	}
}

// complete fills ev for the event raw and forgets the pending state.
func (s *Scanner) complete(raw []byte) {
	p := &s.pending
	ev := &s.ev
	*ev = Event{Raw: raw, DataOffset: -1, HasData: p.dataLines > 0}
	switch {
	case p.dataLines > 1:
		ev.Data = s.joined
	case p.dataLines == 1:
		ev.Data, ev.DataOffset = raw[p.dataAt:p.dataAt+p.dataLen], p.dataAt
	}
	if p.hasName {
		ev.Name = raw[p.nameAt : p.nameAt+p.nameLen]
	}
	*p = pending{}
}

// field reads the line b[at:end] of the pending event.
func (s *Scanner) field(b []byte, at, end int) {
	p := &s.pending
	line := b[at:end]
	name, valueAt := line, end
	if c := bytes.IndexByte(line, ':'); c >= 0 {
		name, valueAt = line[:c], at+c+1
		if valueAt < end && b[valueAt] == ' ' {
			valueAt++
		}
	}
	value := b[valueAt:end]
	switch string(name) {
	case "data":
		p.dataLines++
		switch p.dataLines {
		case 1:
			p.dataAt, p.dataLen = valueAt, len(value)
		case 2:
			s.joined = append(append(append(s.joined[:0], b[p.dataAt:p.dataAt+p.dataLen]...), '\n'), value...)
		default:
			s.joined = append(append(s.joined, '\n'), value...)
		}
	case "event":
		p.nameAt, p.nameLen, p.hasName = valueAt, len(value), true
	}
}

func indexLineEnd(b []byte) int {
	n := bytes.IndexByte(b, '\n')
	// A lone CR also ends a line; look for one only before the LF (or in the
	// whole rest when there is none). Providers send LF, so this is short.
	limit := b
	if n >= 0 {
		limit = b[:n]
	}
	if r := bytes.IndexByte(limit, '\r'); r >= 0 {
		return r
	}
	return n
}
