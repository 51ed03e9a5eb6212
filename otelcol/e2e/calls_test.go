package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// kind is one shape of call in the mixed workload.
type kind int

const (
	unary        kind = iota // plain chat
	unaryN2                  // chat with two choices
	streamHidden             // stream without include_usage: Loom asks for usage and hides it
	streamUsage              // stream with include_usage
	upstream500              // the upstream fails
	upstream429              // the upstream refuses a stream request
	clientAbort              // the client leaves after the first event
)

// mix is the order kinds repeat in: every tenant gets every kind.
var mix = []kind{unary, streamHidden, unaryN2, streamUsage, upstream500, unary, clientAbort, streamHidden, upstream429, unary}

// planned is one call of a run, as the client made it.
type planned struct {
	n      int
	tenant string
	kind   kind
}

func (p planned) tag() string { return "call-" + strconv.Itoa(p.n) }

func (p planned) traceID() string { return fmt.Sprintf("%032x", p.n+1) }

func (p planned) stream() bool {
	return p.kind == streamHidden || p.kind == streamUsage || p.kind == upstream429 || p.kind == clientAbort
}

func plan(n int) []planned {
	out := make([]planned, n)
	for i := range out {
		tenant := "acme"
		if i%3 == 1 {
			tenant = "globex"
		}
		out[i] = planned{n: i, tenant: tenant, kind: mix[i%len(mix)]}
	}
	return out
}

// do makes one call the way its plan says and reads the answer as a client
// would; a client abort reads one event and hangs up.
func (g *gateway) do(p planned) error {
	body := `{"model":"` + models[p.tenant].public + `","messages":[{"role":"user","content":"hello ` + p.tag() + `"}]`
	switch p.kind {
	case unaryN2:
		body += `,"n":2`
	case streamHidden, upstream429:
		body += `,"stream":true`
	case streamUsage:
		body += `,"stream":true,"stream_options":{"include_usage":true}`
	case clientAbort:
		body += `,"stream":true`
	}
	body += "}"
	req, err := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+g.keys[p.tenant])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-mock-tag", p.tag())
	// The caller's trace id names the call, so each row can be matched to
	// it; every third caller says sampled=0, which must not lose the call.
	flags := "01"
	if p.n%3 == 0 {
		flags = "00"
	}
	req.Header.Set("traceparent", "00-"+p.traceID()+"-00f067aa0ba902b7-"+flags)
	if p.stream() {
		req.Header.Set("x-mock-ttft-ms", strconv.Itoa(2+p.n%7))
	}
	switch p.kind {
	case upstream500:
		req.Header.Set("x-mock-status", "500")
	case upstream429:
		req.Header.Set("x-mock-status", "429")
	case clientAbort:
		req.Header.Set("x-mock-chunks", "20")
		req.Header.Set("x-mock-chunk-delay-ms", "5")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", p.tag(), err)
	}
	defer resp.Body.Close()
	want := http.StatusOK
	switch p.kind {
	case upstream500:
		want = http.StatusInternalServerError
	case upstream429:
		want = http.StatusTooManyRequests
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: status %d, want %d: %s", p.tag(), resp.StatusCode, want, b)
	}
	if p.kind == clientAbort {
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "data: ") {
			return fmt.Errorf("%s: first event: %q %w", p.tag(), line, err)
		}
		return nil // Close without reading on: the connection is dropped mid-stream.
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// run makes the calls with workers in parallel; before, if set, runs just
// before call number i is made (by the caller of the i-th call).
func (g *gateway) run(t testing.TB, calls []planned, workers int, before func(i int)) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(calls))
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(calls) {
					return
				}
				if before != nil {
					before(i)
				}
				if err := g.do(calls[i]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}
