package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// kind is one shape of call in the mix.
type kind uint8

const (
	unary         kind = iota // plain chat
	streamPlain               // stream without include_usage
	streamUsage               // stream with include_usage
	unaryFail                 // the upstream answers 500
	upstreamReset             // the upstream resets the stream's connection mid-stream
	clientAbort               // the client hangs up after the first event
)

var kindNames = [...]string{"unary", "stream", "stream+usage", "upstream 500", "upstream reset", "client abort"}

func (k kind) String() string { return kindNames[k] }

func (k kind) stream() bool {
	return k == streamPlain || k == streamUsage || k == upstreamReset || k == clientAbort
}

// kindOf spreads the mix evenly over call numbers: per 200 calls, one
// upstream reset and one client abort (about 1 % of the ~100 streams
// each), two upstream failures, and unary and streamed calls half and half.
func kindOf(n int) kind {
	switch r := n % 200; {
	case r == 17:
		return upstreamReset
	case r == 117:
		return clientAbort
	case r == 53 || r == 153:
		return unaryFail
	case r%2 == 0:
		return unary
	case r%4 == 1:
		return streamPlain
	default:
		return streamUsage
	}
}

// tenantOf alternates tenants in runs of three, so that neither tenant
// owns a kind.
func tenantOf(n int) string { return tenants[(n/3)%2] }

// traceID is the call's own trace id, sent in its traceparent: Loom keeps
// it for the call's spans, so it joins a row in Postgres to the call.
func traceID(n int) string { return fmt.Sprintf("fa%030x", n+1) }

// callOf reads a call number back from a trace id; false for any trace id
// the suite did not make (the run markers').
func callOf(traceID string) (int, bool) {
	if len(traceID) != 32 || !strings.HasPrefix(traceID, "fa") {
		return 0, false
	}
	v, err := strconv.ParseUint(traceID[2:], 16, 64)
	if err != nil || v == 0 {
		return 0, false
	}
	return int(v - 1), true
}

// state is what the client saw of one call.
type state uint8

const (
	notSent    state = iota
	unanswered       // no response: Loom was down or went down before answering
	answered         // a complete response: a whole body, or a stream to its end
	aborted          // the client hung up after the first event, as planned
	cut              // the response broke off (Loom died mid-answer)
)

var stateNames = [...]string{"not sent", "unanswered", "answered", "aborted", "cut"}

func (s state) String() string { return stateNames[s] }

// outcome is one call's record on the client side.
type outcome struct {
	state  state
	status int16
	start  time.Time
	end    time.Time // when the client had the whole answer (or gave up)
	err    string    // first error seen, for the report
}

// client makes the suite's calls against Loom's stable address.
type client struct {
	base string
	keys map[string]string
	http *http.Client
}

func newClient(st *stack, conns int) *client {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		// Never more connections than clients: Loom refuses a client
		// address past its connections.max_per_ip (1,024 by default).
		MaxConnsPerHost:       conns,
		DisableCompression:    true,
		ResponseHeaderTimeout: 30 * time.Second,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}
	return &client{base: "http://" + st.loomAddr, keys: st.keys, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// body is the call's request: each one distinct, naming the call.
func body(n int, k kind) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"model":%q,"messages":[{"role":"user","content":"fault suite call %d"}]`, publicModel[tenantOf(n)], n)
	switch k {
	case streamUsage:
		b.WriteString(`,"stream":true,"stream_options":{"include_usage":true}`)
	case streamPlain, upstreamReset, clientAbort:
		b.WriteString(`,"stream":true`)
	}
	b.WriteString("}")
	return b.Bytes()
}

// do makes call n once (never retried: a retry would blur which attempt
// Loom recorded) and reads the answer as a client would.
func (c *client) do(ctx context.Context, n int) outcome {
	k := kindOf(n)
	o := outcome{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/chat/completions", bytes.NewReader(body(n, k)))
	if err != nil {
		o.state, o.err, o.end = unanswered, err.Error(), time.Now()
		return o
	}
	req.Header.Set("Authorization", "Bearer "+c.keys[tenantOf(n)])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID(n)+"-00f067aa0ba902b7-01")
	req.Header.Set("x-mock-tag", strconv.Itoa(n))
	switch k {
	case unaryFail:
		req.Header.Set("x-mock-status", "500")
	case upstreamReset:
		// The first events reach the client before the reset, so Loom
		// cannot retry and must end the stream with an error.
		req.Header.Set("x-mock-chunks", "10")
		req.Header.Set("x-mock-chunk-delay-ms", "2")
		req.Header.Set("x-mock-reset-after", "4")
	case clientAbort:
		req.Header.Set("x-mock-chunks", "20")
		req.Header.Set("x-mock-chunk-delay-ms", "5")
	case streamPlain, streamUsage:
		req.Header.Set("x-mock-chunk-delay-ms", "1")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		o.state, o.err, o.end = unanswered, err.Error(), time.Now()
		return o
	}
	defer resp.Body.Close()
	o.status = int16(resp.StatusCode)
	if !k.stream() || resp.StatusCode != http.StatusOK {
		_, err = io.Copy(io.Discard, resp.Body)
		o.end = time.Now()
		if err != nil {
			o.state, o.err = cut, err.Error()
			return o
		}
		o.state = answered
		return o
	}
	o.state, o.err = readStream(resp.Body, k == clientAbort)
	o.end = time.Now()
	return o
}

// readStream reads SSE events to the end of the body. A stream is complete
// when its body ended cleanly after [DONE] or after an error event (how
// Loom ends a stream whose upstream broke); it is cut when the connection
// broke first. With abort, the client leaves after the first event.
func readStream(r io.Reader, abort bool) (state, string) {
	br := bufio.NewReaderSize(r, 4096)
	var done, errEvent bool
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte("data: ")) {
			if abort {
				return aborted, ""
			}
			data := bytes.TrimSpace(line[len("data: "):])
			switch {
			case bytes.Equal(data, []byte("[DONE]")):
				done = true
			case bytes.HasPrefix(data, []byte(`{"error"`)):
				errEvent = true
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && (done || errEvent):
			return answered, ""
		case errors.Is(err, io.EOF):
			return cut, "stream ended without [DONE] or an error event"
		default:
			return cut, err.Error()
		}
	}
}
