package mockupstream

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// sseEvent is one SSE event, framing included, written with one write and one flush.
type sseEvent struct {
	data  []byte
	usage *Usage     // the usage this event reports, if any; recorded once the event is on the wire
	wire  *wireUsage // the same, read from the event's own bytes (replays and the newer dialects)
}

// stream is a planned SSE response. It holds no reference to the RequestCtx: it runs after the handler
// has returned.
type stream struct {
	events     []sseEvent
	ttft       time.Duration
	delay      time.Duration
	gate       func(i int)
	resetAfter int
	log        *requestLog
	rec        *Received
	start      time.Time // the call's start; set with timing
	timing     bool      // end with a TimingComment (x-mock-timing)
}

// newStream plans events under c's behaviour and adds the waits it will make to c.waited, so that
// x-mock-service-ms, sent with the headers, already counts them.
func newStream(s *Server, c *call, events []sseEvent) *stream {
	if n := c.plan.errorAfter; n > 0 && n < len(events) {
		events = append(events[:n:n], streamErrorEvent(c, n))
	}
	st := &stream{events: events, ttft: c.plan.TTFT, delay: c.plan.ChunkDelay, gate: s.cfg.EventGate, log: &s.log, rec: c.rec,
		start: c.start, timing: c.plan.timing}
	sent := len(events)
	if c.plan.ResetAfter > 0 && c.plan.ResetAfter < len(events) {
		st.resetAfter = c.plan.ResetAfter
		sent = c.plan.ResetAfter
	}
	if sent > 0 {
		c.waited += st.ttft + time.Duration(sent-1)*st.delay
	}
	return st
}

// launch starts st once the handler's headers are final. A stream that will be reset takes over the
// connection (hijack) and writes HTTP itself, because fasthttp's stream writer copies through a pipe: a
// close issued from the writer could overtake events still in that pipe, and "reset after N events" must
// mean the client received exactly N.
func (s *Server) launch(ctx *fasthttp.RequestCtx, c *call, st *stream) {
	if st.resetAfter == 0 {
		ctx.Response.ImmediateHeaderFlush = true // TTFT counts from headers on the wire
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) { st.run(flushSink{w}, nil) })
		return
	}
	var h fasthttp.ResponseHeader
	ctx.Response.Header.CopyTo(&h)
	h.SetContentLength(-1) // chunked, as a real stream is
	h.Set(fasthttp.HeaderDate, time.Now().UTC().Format(http.TimeFormat))
	head := h.Header()
	conn := ctx.Conn() // the raw connection: SetLinger needs the *net.TCPConn, not fasthttp's wrapper
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(net.Conn) {
		sink := &chunkedSink{conn: conn}
		if _, err := conn.Write(head); err != nil {
			st.finish(func(r *Received) { r.ClientGone = true })
			return
		}
		st.run(sink, conn)
	})
}

// eventSink writes one event and pushes it to the peer.
type eventSink interface {
	writeEvent(b []byte) error
	end() error
}

type flushSink struct{ w *bufio.Writer }

func (f flushSink) writeEvent(b []byte) error {
	if _, err := f.w.Write(b); err != nil {
		return err
	}
	return f.w.Flush()
}

func (f flushSink) end() error { return nil } // fasthttp writes the last chunk

// chunkedSink frames events as HTTP/1.1 chunks straight onto a hijacked connection.
type chunkedSink struct {
	conn net.Conn
	buf  []byte
}

func (c *chunkedSink) writeEvent(b []byte) error {
	c.buf = strconv.AppendInt(c.buf[:0], int64(len(b)), 16)
	c.buf = append(c.buf, "\r\n"...)
	c.buf = append(c.buf, b...)
	c.buf = append(c.buf, "\r\n"...)
	_, err := c.conn.Write(c.buf)
	return err
}

func (c *chunkedSink) end() error {
	_, err := c.conn.Write([]byte("0\r\n\r\n"))
	return err
}

// run writes the events with the planned waits. conn is non-nil only on the hijacked path, where a reset
// is due.
func (st *stream) run(sink eventSink, conn net.Conn) {
	began := time.Now()
	var first, last time.Time
	for i, ev := range st.events {
		wait := st.delay
		if i == 0 {
			wait = st.ttft
		}
		if wait > 0 {
			time.Sleep(wait)
		}
		if i > 0 && st.gate != nil {
			st.gate(i)
		}
		if err := sink.writeEvent(ev.data); err != nil {
			st.finish(func(r *Received) { r.ClientGone = true })
			return
		}
		sentAt := time.Now()
		if i == 0 {
			first = sentAt
		}
		last = sentAt
		st.log.update(st.rec, func(r *Received) {
			r.ChunkSentAt = append(r.ChunkSentAt, sentAt)
			if ev.usage != nil {
				u := *ev.usage
				r.UsageSent = &u
			}
			if ev.wire != nil {
				applyUsage(r, ev.wire)
			}
		})
		if st.resetAfter > 0 && i+1 == st.resetAfter && conn != nil {
			resetConn(conn)
			st.finish(nil)
			return
		}
	}
	if st.timing && !first.IsZero() {
		if err := sink.writeEvent(timingComment(nil, st.start, began, first, last)); err != nil {
			st.finish(func(r *Received) { r.ClientGone = true })
			return
		}
	}
	if err := sink.end(); err != nil {
		st.finish(func(r *Received) { r.ClientGone = true })
		return
	}
	st.finish(nil)
}

func (st *stream) finish(f func(*Received)) {
	done := time.Now()
	st.log.update(st.rec, func(r *Received) {
		if f != nil {
			f(r)
		}
		r.Done = done
	})
}

// timingComment appends the TimingComment event for a stream that began, wrote its first event and its
// last one at those times, counted from start.
func timingComment(dst []byte, start, began, first, last time.Time) []byte {
	ms := func(dst []byte, name string, t time.Time) []byte {
		dst = append(dst, name...)
		return strconv.AppendFloat(dst, float64(t.Sub(start))/float64(time.Millisecond), 'f', 3, 64)
	}
	dst = append(dst, TimingComment...)
	dst = ms(dst, "head-ms=", began)
	dst = ms(dst, " first-event-ms=", first)
	dst = ms(dst, " service-ms=", last)
	return append(dst, "\n\n"...)
}

// resetConn makes the peer see a TCP RST rather than a clean FIN, the way a provider's load balancer
// dropping a stream looks to a gateway.
func resetConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// frame wraps a JSON payload as one SSE data event.
func frame(payload []byte) []byte {
	b := make([]byte, 0, len(payload)+8)
	b = append(b, "data: "...)
	b = append(b, payload...)
	return append(b, "\n\n"...)
}

var _ eventSink = flushSink{}
var _ eventSink = (*chunkedSink)(nil)

// streamErrorEvent is the error a provider sends inside a stream that has already begun, as its SDKs parse
// it; n is the number of events before it (the Responses API's sequence_number).
func streamErrorEvent(c *call, n int) sseEvent {
	switch {
	case c.p == providerAnthropic:
		return namedEvent("error", []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`))
	case c.ep == epResponses:
		return namedEvent("error", []byte(`{"type":"error","sequence_number":`+strconv.Itoa(n)+
			`,"error":{"type":"server_error","code":"server_error","message":"The server had an error while `+
			`processing your request. Sorry about that!","param":null}}`))
	}
	return sseEvent{data: []byte(`data: {"error":{"message":"The server had an error while processing your ` +
		`request. Sorry about that!","type":"server_error","param":null,"code":null}}` + "\n\n")}
}

// doneEvent ends every OpenAI stream.
func doneEvent() sseEvent { return sseEvent{data: []byte("data: [DONE]\n\n")} }

// interleave merges per-choice event sequences round by round (choice 0's first event, choice 1's first,
// ..., then each one's second), which is how OpenAI orders n>1 streams (fixtures chat-stream-n3-choices.sse).
func interleave(perChoice [][]sseEvent) []sseEvent {
	var out []sseEvent
	for k := 0; ; k++ {
		more := false
		for _, evs := range perChoice {
			if k < len(evs) {
				out = append(out, evs[k])
				more = true
			}
		}
		if !more {
			return out
		}
	}
}
