package server

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/apierror"
)

// The front door bounds what a client can make Loom hold before its request
// is handled: connections (in total and per address), and request bodies.
// fasthttp reads a body of announced length into a buffer of that length,
// allocated when the headers arrive, and holds it while the body trickles
// in; so Loom reads bodies as a stream (fasthttp pre-reads at most 8 KiB),
// into a buffer that grows with what arrives, and refuses a Content-Length
// over max_body_bytes from the headers alone.

// overLimitHeader marks, from headerReceived to Handle, a request whose
// announced body is over the limit. A client cannot set it: headerReceived
// deletes any it sent.
const overLimitHeader = "X-Loom-Body-Over-Limit"

// headerReceived runs when a request's headers are in, before fasthttp reads
// any of its body. A body announced over the limit is never read: its
// Content-Length becomes 0, so fasthttp calls the handler at once (which
// answers 413), the connection is marked to close (the unread body must never
// be parsed as a next request), and an Expect: 100-continue is dropped so the
// client is not invited to send it.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	h.Del(overLimitHeader)
	if n := h.ContentLength(); n > s.cfg.MaxBodyBytes {
		var buf [20]byte
		h.SetBytesV(overLimitHeader, strconv.AppendInt(buf[:0], int64(n), 10))
		h.SetContentLength(0)
		h.Del(fasthttp.HeaderExpect)
		h.SetConnectionClose()
	}
	return fasthttp.RequestConfig{}
}

// refuseOverLimit answers a request whose announced body is over the limit.
// The client may be sending that body: the connection lingers after the 413
// (see clientConn), so the client reads the answer instead of a reset.
func (s *Server) refuseOverLimit(ctx *fasthttp.RequestCtx) {
	lingerAfter(ctx)
	s.handleTransportError(ctx, fasthttp.ErrBodyTooLarge)
}

func lingerAfter(ctx *fasthttp.RequestCtx) {
	if c, ok := ctx.Conn().(*clientConn); ok {
		c.linger.Store(true)
	}
}

// maxKeptBody is the largest request buffer a pooled exchange keeps between
// calls; a larger one goes to the garbage collector.
const maxKeptBody = 1 << 20

var errBodyTooLarge = errors.New("request body over max_body_bytes")

// readBody reads the request body into ex's buffer, which grows with what
// arrives (never to the announced size up front) up to max_body_bytes. The
// client's read deadline (timeouts.client_read) bounds how long it takes.
func (s *Server) readBody(ctx *fasthttp.RequestCtx, ex *exchange) ([]byte, error) {
	if !ctx.Request.IsBodyStream() {
		body := ctx.PostBody()
		if len(body) > s.cfg.MaxBodyBytes {
			return nil, errBodyTooLarge
		}
		return body, nil
	}
	r := ctx.RequestBodyStream()
	limit := s.cfg.MaxBodyBytes
	buf := ex.in[:0]
	if n := ctx.Request.Header.ContentLength(); n > cap(buf) && n <= 16<<10 {
		// A small body is allocated whole, once: at most 16 KiB per
		// connection that sent its first 8 KiB (fasthttp's pre-read).
		buf = make([]byte, 0, n+1)
	}
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				ex.in = buf[:0]
				return nil, errBodyTooLarge
			}
			grown := make([]byte, len(buf), min(max(2*cap(buf), 16<<10), limit+1))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			ex.in = buf[:0]
			return nil, errBodyTooLarge
		}
		if err == io.EOF {
			ex.in = buf
			return buf, nil
		}
		if err != nil {
			ex.in = buf[:0]
			return nil, err
		}
	}
}

// bodyUnreadable answers a request whose body could not be read in full.
func bodyUnreadable(err error) *apierror.Error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return apierror.New(fasthttp.StatusRequestTimeout, apierror.TypeInvalidRequest, "request_timeout", "",
			"The request body did not arrive in time.")
	}
	return apierror.New(fasthttp.StatusBadRequest, apierror.TypeInvalidRequest, "malformed_request", "",
		"The request body could not be read.")
}

// frontDoor caps the client connections the gateway holds, in total and per
// address. A connection over a cap is answered at once with an OpenAI-shaped
// error and closed, before Loom reads anything from it.
type frontDoor struct {
	net.Listener
	s                  *Server
	maxTotal, maxPerIP int

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int

	busy, crowded []byte // the pre-rendered refusals
	lastLog       atomic.Int64
	lingerBytes   int64
}

func newFrontDoor(ln net.Listener, s *Server) *frontDoor {
	d := &frontDoor{Listener: ln, s: s, maxTotal: s.cfg.Connections.MaxTotal, maxPerIP: s.cfg.Connections.MaxPerIP,
		perIP: map[netip.Addr]int{}}
	busy := apierror.New(fasthttp.StatusServiceUnavailable, apierror.TypeServer, "too_many_connections", "",
		"The gateway is serving as many connections as it accepts ("+strconv.Itoa(d.maxTotal)+"). Please try again.")
	crowded := apierror.New(fasthttp.StatusTooManyRequests, "requests", "too_many_connections_per_ip", "",
		"Too many open connections from your address (the limit is "+strconv.Itoa(d.maxPerIP)+"). Reuse connections or close idle ones.")
	d.busy, d.crowded = rawResponse(busy), rawResponse(crowded)
	// Enough for a client to finish sending a body a few times the limit
	// (the 60 MB an SDK might send against the default 16 MiB), so that it
	// reads the 413 instead of a write error; reading costs no memory.
	d.lingerBytes = max(4*int64(s.cfg.MaxBodyBytes), 64<<20)
	return d
}

// rawResponse renders e as a whole HTTP/1.1 response that closes the
// connection.
func rawResponse(e *apierror.Error) []byte {
	body := e.AppendJSON(nil)
	b := append([]byte("HTTP/1.1 "), strconv.Itoa(e.Status)...)
	b = append(b, ' ')
	b = append(b, fasthttp.StatusMessage(e.Status)...)
	b = append(b, "\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// Accept returns the next connection within the caps.
func (d *frontDoor) Accept() (net.Conn, error) {
	for {
		c, err := d.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, perIP := addrOf(c.RemoteAddr())
		if refusal, reason := d.enter(ip, perIP); refusal != nil {
			// A fresh socket's send buffer is empty: the write does not
			// block the accept loop (the deadline is a safety net).
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Write(refusal)
			_ = c.Close()
			d.logRefusal(ip, reason)
			continue
		}
		return &clientConn{Conn: c, door: d, ip: ip, perIP: perIP, lingerBytes: d.lingerBytes}, nil
	}
}

func addrOf(a net.Addr) (netip.Addr, bool) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(ta.IP)
		return ip.Unmap(), ok
	}
	// In-memory and unix listeners have no client address to count by.
	return netip.Addr{}, false
}

// enter counts a connection in, or returns the refusal to send it and why.
func (d *frontDoor) enter(ip netip.Addr, perIP bool) ([]byte, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total >= d.maxTotal {
		return d.busy, "max_total"
	}
	if perIP {
		if d.perIP[ip] >= d.maxPerIP {
			return d.crowded, "max_per_ip"
		}
		d.perIP[ip]++
	}
	d.total++
	return nil, ""
}

func (d *frontDoor) leave(ip netip.Addr, perIP bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total--
	if perIP {
		if n := d.perIP[ip] - 1; n > 0 {
			d.perIP[ip] = n
		} else {
			delete(d.perIP, ip)
		}
	}
}

// logRefusal logs at most one refused connection a minute: a flood must not
// become a flood of log lines.
func (d *frontDoor) logRefusal(ip netip.Addr, reason string) {
	now := time.Now().Unix()
	if last := d.lastLog.Load(); now-last < 60 || !d.lastLog.CompareAndSwap(last, now) {
		return
	}
	d.s.log.Warn("refusing client connections over the cap (logged once a minute)", "reason", reason, "addr", ip.String())
}

// clientConn is one counted client connection.
type clientConn struct {
	net.Conn
	door   *frontDoor
	ip     netip.Addr
	perIP  bool
	closed atomic.Bool
	// linger, set when Loom answered before reading a body the client may
	// still be sending, makes Close half-close and read what arrives for a
	// while first: closing a socket with unread input sends a reset, which
	// can destroy the answer before the client reads it.
	linger      atomic.Bool
	lingerBytes int64
}

// lingerTime bounds how long a closing connection reads what its client
// still sends.
const lingerTime = 2 * time.Second

func (c *clientConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	defer c.door.leave(c.ip, c.perIP)
	if c.linger.Load() {
		if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
			_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.CopyN(io.Discard, c.Conn, c.lingerBytes)
		}
	}
	return c.Conn.Close()
}
