package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Target is an HTTP endpoint the generator calls.
type Target struct {
	Name           string
	Addr           string            // host:port
	Path           string            // e.g. /v1/chat/completions
	Header         map[string]string // e.g. Authorization, x-mock-* controls
	Body           []byte            // sent with POST; an empty Body makes the call a GET
	Stream         bool              // read the response as a stream and time its first chunk
	OverheadHeader string            // response header holding the target's own overhead in ms (e.g. X-Loom-Overhead-Ms); "" = none
	ServiceHeader  string            // response header with the upstream's deliberate wait in ms (x-mock-service-ms); "" = none
}

var (
	// ErrStatus is wrapped by the error for a non-2xx response.
	ErrStatus = errors.New("status")
	// ErrHeader is wrapped by the error for an overhead or service header that is not a number of
	// milliseconds: measuring on with it missing would report the wrong thing quietly.
	ErrHeader = errors.New("unreadable header")
)

const (
	httpTimeout  = 30 * time.Second
	errorBodyMax = 200 // bytes of a non-2xx body quoted in its error
)

// bufPool holds read buffers for streamed bodies; a buffer per call would be garbage at 2000 rps.
var bufPool = sync.Pool{New: func() any { return new([16 << 10]byte) }}

// NewHTTPCall returns a Call for t with its own fasthttp.HostClient, holding up to maxConns kept-alive
// connections (maxConns <= 0 means DefaultMaxInFlight). Size maxConns to Plan.MaxInFlight: a call
// that finds every connection busy waits for one, and the wait shows in its latency.
//
// Non-2xx is an error carrying the status and the first 200 bytes of the body. A Stream target's
// TTFC is when the first body bytes arrived; the body is always read to the end. Calls are never
// retried, since a retry would hide an error inside a longer latency. ctx's deadline bounds a call;
// a cancellation without a deadline is noticed between chunks of a streamed body.
func NewHTTPCall(t Target, maxConns int) Call {
	if maxConns <= 0 {
		maxConns = DefaultMaxInFlight
	}
	name := t.Name
	if name == "" {
		name = t.Addr
	}
	client := &fasthttp.HostClient{
		Addr:               t.Addr,
		Name:               "loom-loadgen",
		MaxConns:           maxConns,
		MaxConnWaitTimeout: httpTimeout,
		// Connections stay open for the whole run: one closed while idle would add a handshake to
		// some later call's latency, noise that is not the target's.
		MaxIdleConnDuration: time.Hour,
		ReadTimeout:         httpTimeout,
		WriteTimeout:        httpTimeout,
		StreamResponseBody:  t.Stream,
		RetryIfErr:          func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
	}
	tmpl := &fasthttp.Request{}
	tmpl.SetRequestURI("http://" + t.Addr + t.Path)
	tmpl.Header.SetMethod(fasthttp.MethodGet)
	if len(t.Body) > 0 {
		tmpl.Header.SetMethod(fasthttp.MethodPost)
		tmpl.Header.SetContentType("application/json")
		tmpl.SetBody(t.Body)
	}
	for k, v := range t.Header {
		tmpl.Header.Set(k, v)
	}
	h := &httpCall{client: client, tmpl: tmpl, target: t, name: name}
	return h.do
}

type httpCall struct {
	client *fasthttp.HostClient
	tmpl   *fasthttp.Request // read-only once built; copied into each request
	target Target
	name   string
}

func (h *httpCall) do(ctx context.Context, intended time.Time) (Sample, error) {
	s := Sample{Overhead: None, Service: None}
	if err := ctx.Err(); err != nil {
		return s, err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	h.tmpl.CopyTo(req)

	var err error
	if deadline, ok := ctx.Deadline(); ok {
		err = h.client.DoDeadline(req, resp, deadline)
	} else {
		err = h.client.Do(req, resp)
	}
	if err != nil {
		return s, fmt.Errorf("%s: %w", h.name, err)
	}
	code := resp.StatusCode()
	failed := code < 200 || code > 299
	var body []byte
	if h.target.Stream {
		var first time.Time
		if first, body, err = readStream(ctx, resp, failed); err != nil {
			return s, fmt.Errorf("%s: read stream: %w", h.name, err)
		}
		if !first.IsZero() {
			s.TTFC = first.Sub(intended)
		}
	} else {
		body = resp.Body() // never on a stream: Body would read it all before we time it
	}
	if failed {
		body = bytes.TrimSpace(body[:min(len(body), errorBodyMax)])
		return s, fmt.Errorf("%s: %w %d: %s", h.name, ErrStatus, code, body)
	}
	if s.Overhead, err = millisHeader(&resp.Header, h.target.OverheadHeader); err != nil {
		return s, fmt.Errorf("%s: %w", h.name, err)
	}
	if s.Service, err = millisHeader(&resp.Header, h.target.ServiceHeader); err != nil {
		return s, fmt.Errorf("%s: %w", h.name, err)
	}
	return s, nil
}

// readStream reads resp's streamed body to the end and closes it. It returns when the first bytes
// arrived (zero for an empty body) and, if keepHead, a copy of the first errorBodyMax bytes.
func readStream(ctx context.Context, resp *fasthttp.Response, keepHead bool) (first time.Time, head []byte, err error) {
	body := resp.BodyStream()
	if body == nil { // a HEAD, 204 or 304 has no body to stream
		return first, nil, nil
	}
	buf := bufPool.Get().(*[16 << 10]byte)
	defer bufPool.Put(buf)
	for {
		n, rerr := body.Read(buf[:])
		if n > 0 {
			if first.IsZero() {
				first = time.Now()
			}
			if keepHead && len(head) < errorBodyMax {
				head = append(head, buf[:min(n, errorBodyMax-len(head))]...)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return first, head, resp.CloseBodyStream()
		}
		if rerr == nil {
			rerr = ctx.Err()
		}
		if rerr != nil {
			// Closing with the cause drops the connection rather than reusing it mid-body.
			if c, ok := body.(fasthttp.ReadCloserWithError); ok {
				_ = c.CloseWithError(rerr)
			}
			_ = resp.CloseBodyStream()
			return first, head, rerr
		}
	}
}

// millisHeader reads a header holding decimal milliseconds, such as "0.412". A missing header (or
// name "") is None; a negative value, which a target's clock jitter can produce, counts as 0.
func millisHeader(h *fasthttp.ResponseHeader, name string) (time.Duration, error) {
	if name == "" {
		return None, nil
	}
	v := h.Peek(name)
	if v == nil {
		return None, nil
	}
	ms, err := fasthttp.ParseUfloat(bytes.TrimPrefix(v, []byte("-")))
	if err != nil {
		return None, fmt.Errorf("%w %s: %q", ErrHeader, name, v)
	}
	if v[0] == '-' {
		return 0, nil
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}
