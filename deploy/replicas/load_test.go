package replicas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The mix. Every number here is chosen so that the run proves its claims on
// a 2-core machine in seconds: enough calls of the limited tenant that its
// limit must refuse some whichever way a minute boundary splits the run,
// and few enough that it is not most of the run.
const (
	calls   = 10_000
	workers = 64 // calls in flight, over both replicas
	// limitRPM is the limited tenant's requests per minute. It sends 4,000
	// calls: however a minute boundary splits them, one window holds at
	// least 2,000, over the limit, and two replicas counting apart would
	// let up to 2 x 1,500 through in it.
	limitRPM      = 1_500
	limitedTenant = "globex"
)

// Tenants: acme is unlimited, globex has limitRPM requests per minute.
var tenants = [2]string{"acme", limitedTenant}

var publicModel = map[string]string{"acme": "gpt-4o-mini", limitedTenant: "globex-model"}

// kind is one shape of call.
type kind uint8

const (
	unary       kind = iota
	stream           // stream without include_usage
	streamUsage      // stream with include_usage
	upstream400      // the upstream refuses the request: its 400 is relayed
)

var kindNames = [...]string{"unary", "stream", "stream+usage", "upstream 400"}

func (k kind) String() string { return kindNames[k] }

// replicaOf spreads calls over the replicas as a round-robin balancer does.
func replicaOf(n int) int { return n % 2 }

// tenantOf gives the limited tenant 4 calls in 10, evenly over both
// replicas (n%10 in 1, 3 go to b; 6, 8 to a).
func tenantOf(n int) string {
	switch n % 10 {
	case 1, 3, 6, 8:
		return limitedTenant
	}
	return "acme"
}

// kindOf mixes unary and streamed calls in runs of ten, and two calls in a
// hundred (acme's, one per replica) that the upstream refuses.
func kindOf(n int) kind {
	if r := n % 100; r == 50 || r == 75 {
		return upstream400
	}
	switch (n / 10) % 4 {
	case 1:
		return stream
	case 2:
		return streamUsage
	}
	return unary
}

// traceID is the call's own trace id, sent in its traceparent: Loom keeps
// it, so it joins a row in Postgres to the call.
func traceID(n int) string { return fmt.Sprintf("5ca1ed%026x", n+1) }

// callOf reads a call number back from a trace id; false for any other.
func callOf(id string) (int, bool) {
	if len(id) != 32 || !strings.HasPrefix(id, "5ca1ed") {
		return 0, false
	}
	v, err := strconv.ParseUint(id[6:], 16, 64)
	if err != nil || v == 0 || v > calls {
		return 0, false
	}
	return int(v - 1), true
}

// outcome is what the client saw of one call.
type outcome struct {
	status int
	// complete: the whole answer arrived (a JSON body; a stream to its
	// [DONE]).
	complete bool
	// remaining and window are the x-ratelimit-remaining-requests header
	// and the minute window it counts in (-1: no header).
	remaining, window int64
	errType           string // a 429's error.type
	err               string
}

// runLoad makes every call once, workers at a time, each to its replica,
// and returns what the client saw of each.
func runLoad(ctx context.Context, st *stack) []outcome {
	client := &fasthttp.Client{
		// Never more connections than workers: Loom limits a client
		// address (connections.max_per_ip).
		MaxConnsPerHost:     workers,
		ReadTimeout:         30 * time.Second,
		WriteTimeout:        10 * time.Second,
		MaxIdleConnDuration: time.Minute,
	}
	defer client.CloseIdleConnections()
	out := make([]outcome, calls)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if n >= calls {
					return
				}
				out[n] = call(client, req, resp, st, n)
			}
		})
	}
	wg.Wait()
	return out
}

// call makes call n once (never retried: a retry would blur which attempt
// each replica recorded).
func call(client *fasthttp.Client, req *fasthttp.Request, resp *fasthttp.Response, st *stack, n int) outcome {
	k, ten := kindOf(n), tenantOf(n)
	req.Reset()
	resp.Reset()
	req.SetRequestURI("http://" + st.replicas[replicaOf(n)].addr + "/v1/chat/completions")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer "+st.keys[ten])
	req.Header.Set("traceparent", "00-"+traceID(n)+"-00f067aa0ba902b7-01")
	body := fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":"replica call %d"}]`, publicModel[ten], n)
	switch k {
	case stream:
		body = append(body, `,"stream":true`...)
	case streamUsage:
		body = append(body, `,"stream":true,"stream_options":{"include_usage":true}`...)
	case upstream400:
		req.Header.Set("x-mock-status", "400")
	}
	req.SetBody(append(body, '}'))
	o := outcome{remaining: -1, window: -1}
	if err := client.Do(req, resp); err != nil {
		o.err = err.Error()
		return o
	}
	received := time.Now()
	o.status = resp.StatusCode()
	b := resp.Body()
	switch {
	case o.status == fasthttp.StatusOK && (k == stream || k == streamUsage):
		o.complete = bytes.HasSuffix(b, []byte("data: [DONE]\n\n"))
	default:
		o.complete = json.Valid(b)
	}
	if o.status == fasthttp.StatusTooManyRequests {
		o.errType = errorType(b)
	}
	if rem := resp.Header.Peek("x-ratelimit-remaining-requests"); rem != nil {
		v, err := strconv.ParseInt(string(rem), 10, 64)
		w, werr := windowOf(received, string(resp.Header.Peek("x-ratelimit-reset-requests")))
		if err != nil || werr != nil {
			o.err = fmt.Sprintf("x-ratelimit headers: remaining %q: %v; reset: %v", rem, err, werr)
			return o
		}
		o.remaining, o.window = v, w
	}
	return o
}

// windowOf is the minute window (unix seconds / 60) that a limit decision
// counted in, from when its answer arrived and its reset header (the time
// left in that window when the decision was taken, rounded up to a
// millisecond): the window ends at a whole minute, which the arrival plus
// the reset passes by no more than the answer took, far less than half a
// minute.
func windowOf(received time.Time, reset string) (int64, error) {
	d, err := time.ParseDuration(reset)
	if err != nil {
		return 0, err
	}
	if d < 0 || d > time.Minute {
		return 0, fmt.Errorf("reset %s is not within a minute", reset)
	}
	end := math.Round(float64(received.Add(d).UnixNano()) / float64(time.Minute))
	return int64(end) - 1, nil
}

// errorType is the error.type of an OpenAI-shaped error body.
func errorType(b []byte) string {
	var e struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Error.Type
}
