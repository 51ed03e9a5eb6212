package loadgen

import (
	"bufio"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/bench/histogram"
)

// countingListener counts accepted connections, to show the client keeps its connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// serve runs h on a real loopback port for the test's lifetime.
func serve(t *testing.T, h fasthttp.RequestHandler) (addr string, ln *countingListener) {
	return serveB(t, h)
}

func serveB(t testing.TB, h fasthttp.RequestHandler) (addr string, ln *countingListener) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = &countingListener{Listener: l}
	srv := &fasthttp.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return l.Addr().String(), ln
}

func TestHTTPCall_SendsTheRequestAndKeepsConnections(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	addr, ln := serve(t, func(ctx *fasthttp.RequestCtx) {
		if got := string(ctx.Method()) + " " + string(ctx.Path()) + " " + string(ctx.Request.Header.Peek("Authorization")) +
			" " + string(ctx.PostBody()); got != `POST /v1/chat/completions Bearer k {"model":"m"}` {
			mu.Lock()
			bad = append(bad, got)
			mu.Unlock()
		}
	})
	call := NewHTTPCall(Target{Addr: addr, Path: "/v1/chat/completions", Header: map[string]string{"Authorization": "Bearer k"},
		Body: []byte(`{"model":"m"}`)}, 16)
	r, err := Run(context.Background(), Plan{Rate: 500, Duration: 200 * time.Millisecond}, call)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 100 || len(bad) > 0 {
		t.Fatalf("ok %d, errors %q, server saw %q", r.OK, r.ErrorSamples, bad)
	}
	// Connections are reused: never more than the calls that were ever in
	// flight at once (on a busy machine that can be more than one or two,
	// so the bound is the generator's own peak, not a constant).
	if n := ln.accepted.Load(); n > int64(r.Workers) || n > 16 {
		t.Fatalf("%d connections for 100 calls with at most %d in flight: connections churn", n, r.Workers)
	}
}

func TestHTTPCall_Stream_TTFCIsFirstChunkAndLatencyTheWhole(t *testing.T) {
	addr, _ := serve(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.Response.ImmediateHeaderFlush = true // headers now, so TTFC is the body's first chunk
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			time.Sleep(30 * time.Millisecond)
			_, _ = w.WriteString("data: {\"a\":1}\n\n")
			_ = w.Flush()
			time.Sleep(30 * time.Millisecond)
			_, _ = w.WriteString("data: [DONE]\n\n")
			_ = w.Flush()
		})
	})
	call := NewHTTPCall(Target{Addr: addr, Path: "/s", Body: []byte("{}"), Stream: true}, 16)
	r, err := Run(context.Background(), Plan{Rate: 20, Duration: 500 * time.Millisecond}, call)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 10 || r.TTFC.Count() != 10 {
		t.Fatalf("ok %d ttfc %d errors %q", r.OK, r.TTFC.Count(), r.ErrorSamples)
	}
	if ttfc := r.TTFC.Quantile(0.5); ttfc < 30*time.Millisecond || ttfc > 40*time.Millisecond {
		t.Errorf("TTFC p50 = %v, want ~30ms", ttfc)
	}
	if total := r.Latency.Quantile(0.5); total < 60*time.Millisecond || total > 75*time.Millisecond {
		t.Errorf("latency p50 = %v, want ~60ms", total)
	}
}

func TestHTTPCall_OverheadAndServiceHeaders_Parsed(t *testing.T) {
	addr, _ := serve(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Loom-Overhead-Ms", "0.250")
		ctx.Response.Header.Set("x-mock-service-ms", "12")
		_, _ = ctx.WriteString("{}")
	})
	call := NewHTTPCall(Target{Addr: addr, Path: "/", OverheadHeader: "X-Loom-Overhead-Ms", ServiceHeader: "x-mock-service-ms"}, 1)
	s, err := call(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Overhead != 250*time.Microsecond || s.Service != 12*time.Millisecond || s.TTFC != 0 {
		t.Fatalf("sample = %+v, want overhead 250µs, service 12ms, no TTFC", s)
	}

	none, err := NewHTTPCall(Target{Addr: addr, Path: "/"}, 1)(context.Background(), time.Now())
	if err != nil || none.Overhead != None || none.Service != None {
		t.Fatalf("without header names: %+v, %v; want None", none, err)
	}
}

func TestHTTPCall_UnreadableHeader_IsAnError(t *testing.T) {
	addr, _ := serve(t, func(ctx *fasthttp.RequestCtx) { ctx.Response.Header.Set("X-Loom-Overhead-Ms", "soon") })
	_, err := NewHTTPCall(Target{Addr: addr, Path: "/", OverheadHeader: "X-Loom-Overhead-Ms"}, 1)(context.Background(), time.Now())
	if !errors.Is(err, ErrHeader) {
		t.Fatalf("err = %v, want ErrHeader", err)
	}
}

func TestHTTPCall_Non2xx_ErrorCarriesStatusAndBodyHead(t *testing.T) {
	body := `{"error":{"message":"overloaded"}}` + strings.Repeat("x", 500)
	for _, stream := range []bool{false, true} {
		addr, _ := serve(t, func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			_, _ = ctx.WriteString(body)
		})
		call := NewHTTPCall(Target{Name: "loom", Addr: addr, Path: "/", Stream: stream}, 4)
		r, err := Run(context.Background(), Plan{Rate: 100, Duration: 100 * time.Millisecond}, call)
		if err != nil {
			t.Fatal(err)
		}
		want := "loom: status 503: " + body[:errorBodyMax]
		if r.Errors != 10 || r.OK != 0 || !slices.Equal(r.ErrorSamples, []string{want}) {
			t.Fatalf("stream=%v: errors %d ok %d samples %q, want %q", stream, r.Errors, r.OK, r.ErrorSamples, want)
		}
	}
	_, err := NewHTTPCall(Target{Addr: "127.0.0.1:1", Path: "/"}, 1)(context.Background(), time.Now())
	if err == nil {
		t.Fatal("a refused connection is not an error")
	}
}

func TestHTTPCall_ContextDeadline_BoundsTheCall(t *testing.T) {
	release := make(chan struct{})
	addr, _ := serve(t, func(*fasthttp.RequestCtx) { <-release })
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := NewHTTPCall(Target{Addr: addr, Path: "/"}, 1)(ctx, begin)
	if err == nil || time.Since(begin) > 500*time.Millisecond {
		t.Fatalf("err %v after %v, want a timeout after ~100ms", err, time.Since(begin))
	}
}

// TestRun_ServerStallsOnce_EveryCallScheduledDuringItShowsIt is the coordinated-omission check: a
// 200 ms stall must lengthen every call scheduled inside it. A closed-loop client, which waits for
// each answer before sending the next, sees one slow call and reports a clean p99.
func TestRun_ServerStallsOnce_EveryCallScheduledDuringItShowsIt(t *testing.T) {
	const stall = 200 * time.Millisecond
	newServer := func() string {
		var stallUntil atomic.Int64 // unix nanos; the first request after 300 ms starts the stall
		begin := time.Now()
		addr, _ := serve(t, func(*fasthttp.RequestCtx) {
			now := time.Now()
			if now.Sub(begin) > 300*time.Millisecond && stallUntil.CompareAndSwap(0, now.Add(stall).UnixNano()) {
				time.Sleep(stall)
			}
			if until := time.Unix(0, stallUntil.Load()); now.Before(until) {
				time.Sleep(until.Sub(now)) // held back like every request during a GC pause
			}
		})
		return addr
	}

	r, err := Run(context.Background(), Plan{Rate: 200, Duration: time.Second}, NewHTTPCall(Target{Addr: newServer(), Path: "/"}, 64))
	if err != nil || r.OK != 200 {
		t.Fatalf("ok %d, err %v, errors %q", r.OK, err, r.ErrorSamples)
	}
	// 40 calls fall inside the stall, waiting from 200 ms down to ~0: 20 of them wait 100 ms or more.
	if p99, p90 := r.Latency.Quantile(0.99), r.Latency.Quantile(0.90); p99 < 180*time.Millisecond || p90 < 90*time.Millisecond {
		t.Fatalf("open loop: p99 %v, p90 %v; the stall is hidden", p99, p90)
	}

	// The closed loop has one call in flight: the stall holds exactly that
	// one for the whole stall, and the next starts after it ended. Counting
	// the calls that took the stall or longer says so without a bound on
	// the others, which a busy two-core box under -race can slow by tens of
	// ms (a p99 of 50 ms once stood here).
	closed, call := histogram.New(), NewHTTPCall(Target{Addr: newServer(), Path: "/"}, 1)
	stalled := 0
	for range 200 {
		begin := time.Now()
		if _, err := call(context.Background(), begin); err != nil {
			t.Fatal(err)
		}
		took := time.Since(begin)
		closed.Record(took)
		if took >= stall {
			stalled++
		}
		time.Sleep(5 * time.Millisecond)
	}
	if stalled != 1 {
		t.Fatalf("closed loop: %d calls took the %v stall or longer (max %v, p99 %v); expected it to see one slow call only",
			stalled, stall, closed.Max(), closed.Quantile(0.99))
	}
	t.Logf("p99 open loop %v, closed loop %v", r.Latency.Quantile(0.99), closed.Quantile(0.99))
}
