package mockupstream

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// FailMode is one way an attempt fails, as a gateway's failover has to tell them apart.
type FailMode string

const (
	FailNone FailMode = ""
	// Fail500 answers 500 in the endpoint's dialect (OpenAI, Azure or Anthropic).
	Fail500 FailMode = "500"
	// Fail429 answers 429 with Retry-After (Failure.RetryAfter, x-mock-retry-after; default 1 second).
	Fail429 FailMode = "429"
	// FailReset resets the connection before any byte of the response.
	FailReset FailMode = "reset"
	// FailTimeout holds the response head for Failure.Delay (x-mock-fail-delay-ms; default 10 s), longer
	// than a gateway's first-byte timeout, then answers normally if the client is still there.
	FailTimeout FailMode = "timeout"
	// FailResetAfterFirst resets a stream right after its first event; a non-streaming answer after its
	// head and half its body.
	FailResetAfterFirst FailMode = "reset-after-first"
)

const defaultFailDelay = 10 * time.Second

// ParseFailMode reads a FailMode as x-mock-fail spells it; "" and unknown names are not modes.
func ParseFailMode(s string) (FailMode, bool) {
	switch m := FailMode(s); m {
	case Fail500, Fail429, FailReset, FailTimeout, FailResetAfterFirst:
		return m, true
	}
	return FailNone, false
}

// Failure makes attempts fail, for failover tests: the first Count attempts counted under one key (the
// request's x-mock-fail-key, "" without one) fail in Mode, later ones are served normally.
type Failure struct {
	Mode FailMode
	// Count is how many attempts per key fail; 0 means every attempt.
	Count int
	// RetryAfter is the Retry-After value of a Fail429 (and of any 429 or 503 the mock answers while this
	// Failure applies): seconds or an HTTP date. "" means "1".
	RetryAfter string
	// Delay is how long FailTimeout holds the head; 0 means 10 s.
	Delay time.Duration
}

// SetFail replaces Config.Fail for the requests that arrive from now on, so a test can make a deployment
// fail until a circuit breaker opens and then heal it for the half-open probe. Attempt counts carry on.
func (s *Server) SetFail(f Failure) { s.fail.Store(&f) }

// failCounter counts attempts per fail key. Keys are client-chosen (one per test or per call), so the map
// is bounded like the request log: past the cap it starts over, which only a runaway client would notice.
type failCounter struct {
	mu       sync.Mutex
	attempts map[string]int
}

const maxFailKeys = 100_000

func (fc *failCounter) next(key string) int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.attempts == nil || len(fc.attempts) >= maxFailKeys {
		fc.attempts = make(map[string]int)
	}
	fc.attempts[key]++
	return fc.attempts[key]
}

// validRetryAfter accepts what Retry-After may carry: delay-seconds or an HTTP date.
func validRetryAfter(v string) bool {
	if n, err := strconv.Atoi(v); err == nil {
		return n >= 0 && n <= maxWaitMS/1000
	}
	_, err := http.ParseTime(v)
	return err == nil
}

// failNow counts this attempt under its key and says how it fails, FailNone if it is served. It records
// the attempt number and the failure in the request log, so a test can count attempts per key.
func (s *Server) failNow(c *call, key string) FailMode {
	f := c.plan.fail
	if f.Mode == FailNone {
		return FailNone
	}
	n := s.fails.next(key)
	mode := FailNone
	if f.Count == 0 || n <= f.Count {
		mode = f.Mode
	}
	s.log.update(c.rec, func(r *Received) { r.FailKey, r.Attempt, r.Failed = key, n, string(mode) })
	return mode
}

// hold waits d unless the server shuts down first, so a held head never delays Shutdown.
func (s *Server) hold(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.stopping:
	}
}

// resetNow answers with a TCP reset and nothing else.
func resetNow(ctx *fasthttp.RequestCtx) {
	conn := ctx.Conn() // the raw connection: SetLinger needs the *net.TCPConn
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(net.Conn) { resetConn(conn) })
}

// resetMidBody sends the response head and half the body, then resets: a non-streaming answer cut off
// after its first byte.
func resetMidBody(ctx *fasthttp.RequestCtx) {
	var h fasthttp.ResponseHeader
	ctx.Response.Header.CopyTo(&h)
	body := ctx.Response.Body()
	h.SetContentLength(len(body))
	h.Set(fasthttp.HeaderDate, time.Now().UTC().Format(http.TimeFormat))
	out := append(h.Header(), body[:len(body)/2]...)
	conn := ctx.Conn()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(net.Conn) {
		_, _ = conn.Write(out)
		resetConn(conn)
	})
}
