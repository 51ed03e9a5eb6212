package server_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/proxy/call"
)

type mockReceived = mockupstream.Received

// openStream starts a streaming call and returns the response for reading.
func openStream(t *testing.T, st *stack, body string, header map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", st.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+st.keyA)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := st.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// The mock sends event i+1 only once the client has read event i (or, if
// Loom holds event i back, after a wait no relay needs on any machine):
// order and causality, where 50 ms gaps between sends once stood in for
// them and a busy two-core box under -race could miss one.
func TestStream_NotBuffered_EachChunkArrivesBeforeTheNextIsSent(t *testing.T) {
	const heldBack = 10 * time.Second
	read := make(chan int, 64) // indexes of the events the client has read
	var late []int             // events the mock sent without the one before having arrived
	var mu sync.Mutex
	gate := func(i int) {
		mu.Lock()
		failed := len(late) > 0
		mu.Unlock()
		if failed { // one wait proves it; the rest of the stream goes out at once
			return
		}
		timeout := time.After(heldBack)
		for {
			select {
			case got := <-read:
				if got >= i-1 {
					return
				}
			case <-timeout:
				mu.Lock()
				late = append(late, i)
				mu.Unlock()
				return
			}
		}
	}
	st := startStack(t, stackOptions{eventGate: gate})
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`
	resp := openStream(t, st, body, map[string]string{"x-mock-chunks": "20"})
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	n := 0
	for {
		line, err := r.ReadBytes('\n')
		if bytes.Equal(line, []byte("\n")) {
			select {
			case read <- n:
			default: // the gate has stopped listening (the stream ended)
			}
			n++
		}
		if err != nil {
			break
		}
	}
	up, _ := st.mock.Last()
	if len(up.ChunkSentAt) < 22 || n != len(up.ChunkSentAt) {
		t.Fatalf("mock sent %d events, client got %d", len(up.ChunkSentAt), n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(late) > 0 {
		t.Fatalf("the client had not got the event before events %v after %v: Loom held them back", late, heldBack)
	}
}

func TestStream_ClientAbortsMidStream_UpstreamClosedWithinDrainBound(t *testing.T) {
	const drain = 300 * time.Millisecond
	st := startStack(t, stackOptions{drain: drain})
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}`
	// Warm up, so the servers' worker pools and the upstream pool exist
	// before counting goroutines.
	if status, _, _ := st.do("POST", "/v1/chat/completions", st.keyA, body, nil); status != 200 {
		t.Fatal("warm-up failed")
	}
	before := runtime.NumGoroutine()
	seen := st.count()
	// 200 events 20 ms apart: 4 s of stream, far longer than the drain bound.
	resp := openStream(t, st, body, map[string]string{"x-mock-chunks": "200", "x-mock-chunk-delay-ms": "20"})
	r := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		if _, err := r.ReadBytes('\n'); err != nil {
			t.Fatal(err)
		}
	}
	abortedAt := time.Now()
	resp.Body.Close()
	st.client.CloseIdleConnections()

	rec := st.lastRecord(seen)
	up := waitUpstreamDone(t, st)
	if !up.ClientGone {
		t.Fatalf("upstream stream still open or finished normally (done %v, gone %v)", up.Done, up.ClientGone)
	}
	// Loom notices the vanished client at its next write (one event, 20 ms),
	// drains for at most the bound, and the mock notices the closed
	// connection at its own next write (another 20 ms). The margin is wide
	// (a loaded 2-core machine delays each of those steps) and still far
	// below the 4 s an uncut drain would take; rec.DrainComplete below
	// says the same without a clock.
	if limit := drain + time.Second; up.Done.Sub(abortedAt) > limit {
		t.Fatalf("upstream closed %v after the client left, bound %v", up.Done.Sub(abortedAt), limit)
	}
	if !rec.ClientDisconnected || !rec.Drained || rec.DrainComplete || rec.Outcome != call.OutcomeClientGone || rec.ErrorType != "client_disconnected" {
		t.Fatalf("record %+v", rec)
	}
	if rec.UsageSource != call.UsageEstimated || rec.Usage.OutputTokens != int64(rec.OutputPieces) || rec.OutputPieces < 2 {
		t.Fatalf("a drain cut short must leave an estimate: %+v from %s (%d output pieces)", rec.Usage, rec.UsageSource, rec.OutputPieces)
	}
	if rec.ChunksSent >= rec.Chunks || rec.Chunks < 3 {
		t.Fatalf("chunks received %d, sent %d: the drain should have read past what the client got", rec.Chunks, rec.ChunksSent)
	}
	waitGoroutines(t, before)
}

func TestStream_ClientAbortsNearTheEnd_DrainFindsTheUsage(t *testing.T) {
	st := startStack(t, stackOptions{drain: 2 * time.Second})
	seen := st.count()
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}`
	resp := openStream(t, st, body, map[string]string{"x-mock-chunks": "10", "x-mock-chunk-delay-ms": "30"})
	r := bufio.NewReader(resp.Body)
	_, _ = r.ReadBytes('\n')
	resp.Body.Close()
	st.client.CloseIdleConnections()
	rec := st.lastRecord(seen)
	up, _ := st.mock.Last()
	if !rec.ClientDisconnected || !rec.DrainComplete || up.UsageSent == nil || rec.Usage.TotalTokens != int64(up.UsageSent.TotalTokens) ||
		rec.UsageSource != call.UsageProvider {
		t.Fatalf("after the drain the record must hold the provider's usage: %+v (mock sent %+v)", rec, up.UsageSent)
	}
}

// waitUpstreamDone waits until the mock has finished its last response.
func waitUpstreamDone(t *testing.T, st *stack) mockReceived {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		up, _ := st.mock.Last()
		if !up.Done.IsZero() {
			return up
		}
		if time.Now().After(deadline) {
			t.Fatal("upstream stream never finished: Loom did not close it")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := runtime.NumGoroutine()
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		// fasthttp may keep an idle worker or two; nothing of the relay may
		// survive the call.
		if now <= before+2 && !strings.Contains(stacks, "loom/proxy/relay") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after\n%s", before, now, stacks)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStream_UpstreamResetsMidStream_ClientGetsErrorEventAndCleanEnd(t *testing.T) {
	st := startStack(t, stackOptions{})
	seen := st.count()
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}`
	status, _, got := st.do("POST", "/v1/chat/completions", st.keyA, body, map[string]string{"x-mock-chunks": "10", "x-mock-reset-after": "4"})
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	events := sseEvents(got)
	last := events[len(events)-1]
	if len(events) != 5 || !bytes.HasPrefix(last, []byte(`data: {"error":{`)) || !bytes.Contains(last, []byte(`"code":"upstream_reset"`)) {
		t.Fatalf("want 4 relayed events and an error event, got %d:\n%s", len(events), got)
	}
	rec := st.lastRecord(seen)
	if rec.Outcome != call.OutcomeUpstreamFailed || rec.ErrorType != "upstream_reset" || rec.Chunks != 4 {
		t.Fatalf("record %+v", rec)
	}
	// The provider's count never came: Loom estimates it and says so. The
	// mock's first event is the role, the next three carry one token each.
	if rec.UsageSource != call.UsageEstimated || rec.Usage.OutputTokens != 3 || rec.Usage.InputTokens != 1 ||
		rec.Usage.TotalTokens != 4 {
		t.Fatalf("estimated usage %+v from %s", rec.Usage, rec.UsageSource)
	}
}

func TestUpstreamFailures_MapToGatewayStatuses(t *testing.T) {
	// A port nobody listens on: connection refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	refused := startStack(t, stackOptions{upstreamURL: dead})
	status, _, body := refused.do("POST", "/v1/chat/completions", refused.keyA, `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`, nil)
	assertError(t, status, body, 502, "upstream_unreachable")
	if rec := refused.waitRecords(1)[0]; rec.ErrorType != "connect" || rec.Outcome != call.OutcomeUpstreamFailed {
		t.Fatalf("record %+v", rec)
	}

	slow := startStack(t, stackOptions{firstByte: 200 * time.Millisecond})
	for _, stream := range []string{"false", "true"} {
		status, _, body = slow.do("POST", "/v1/chat/completions", slow.keyA,
			`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":`+stream+`}`, map[string]string{"x-mock-latency-ms": "1500"})
		assertError(t, status, body, 504, "upstream_timeout")
	}

	st := startStack(t, stackOptions{})
	// 401 and 403 are not relayed: they say the deployment's credential
	// failed, which Loom answers with its own 502 (issue 10; see
	// TestServer_UpstreamRefusesCredential_Loom502WithoutItsBody).
	for _, code := range []int{400, 429, 500, 503} {
		for _, stream := range []string{"false", "true"} {
			seen := st.count()
			status, hdr, body := st.do("POST", "/v1/chat/completions", st.keyA,
				`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":`+stream+`}`,
				map[string]string{"x-mock-status": strconv.Itoa(code)})
			if status != code || !bytes.Contains(body, []byte(`"error"`)) {
				t.Fatalf("upstream %d relayed as %d: %s", code, status, body)
			}
			if code == 429 && hdr.Get("Retry-After") == "" {
				t.Fatal("Retry-After of an upstream 429 not relayed")
			}
			if rec := st.lastRecord(seen); rec.Outcome != call.OutcomeUpstreamError || rec.ErrorType != strconv.Itoa(code) || rec.UpstreamStatus != code {
				t.Fatalf("record %+v", rec)
			}
		}
	}
}

func TestShutdown_LetsInFlightStreamsFinish(t *testing.T) {
	st := startStack(t, stackOptions{})
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`
	resp := openStream(t, st, body, map[string]string{"x-mock-chunks": "10", "x-mock-chunk-delay-ms": "30"})
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- st.loom.Shutdown(ctx)
	}()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatalf("stream cut by shutdown: %v", err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("data: [DONE]\n\n")) {
		t.Fatalf("stream did not finish: %q", b.Bytes())
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := http.Get(st.url + "/healthz"); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}

func TestShutdown_DeadlineEndsStreamsWithErrorEvent(t *testing.T) {
	st := startStack(t, stackOptions{})
	seen := st.count()
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}`
	resp := openStream(t, st, body, map[string]string{"x-mock-chunks": "100", "x-mock-chunk-delay-ms": "50"})
	defer resp.Body.Close()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_ = st.loom.Shutdown(ctx)
	}()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if !bytes.Contains(b.Bytes(), []byte(`"code":"server_shutdown"`)) {
		t.Fatalf("stream ended without a shutdown error event: %q", b.Bytes())
	}
	if rec := st.lastRecord(seen); rec.ErrorType != "shutdown" {
		t.Fatalf("record %+v", rec)
	}
}
