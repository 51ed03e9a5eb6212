package mockupstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const streamBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}`

func TestStream_Timing_FollowsHeaders(t *testing.T) {
	m := startMock(t, Config{})
	start := time.Now()
	r := m.mustDo(t, "POST", "/v1/chat/completions", streamBody,
		HeaderLatencyMS, "30", HeaderTTFTMS, "40", HeaderChunkDelayMS, "10", HeaderChunks, "3")
	elapsed := time.Since(start)
	// role + 3 content + finish + [DONE] = 6 events: 30 + 40 + 5*10 ms.
	if got := r.header[HeaderServiceMS]; got != "120" {
		t.Errorf("%s = %q, want 120", HeaderServiceMS, got)
	}
	if elapsed < 120*time.Millisecond {
		t.Errorf("stream took %v, less than the planned 120ms", elapsed)
	}
	if ms, _ := strconv.Atoi(r.header["openai-processing-ms"]); ms < 30 {
		t.Errorf("openai-processing-ms %d, want >= latency", ms)
	}
	rec, _ := m.srv.Last()
	if len(rec.ChunkSentAt) != 6 {
		t.Fatalf("%d chunk times", len(rec.ChunkSentAt))
	}
	if first := rec.ChunkSentAt[0].Sub(start); first < 70*time.Millisecond {
		t.Errorf("first event after %v, want >= latency+ttft", first)
	}
	for i := 1; i < len(rec.ChunkSentAt); i++ {
		if gap := rec.ChunkSentAt[i].Sub(rec.ChunkSentAt[i-1]); gap < 9*time.Millisecond {
			t.Errorf("gap before event %d = %v", i, gap)
		}
	}
}

func TestStream_NonStreamLatency_IsServiceTime(t *testing.T) {
	m := startMock(t, Config{Defaults: Behaviour{Latency: 25 * time.Millisecond}})
	start := time.Now()
	r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody)
	if time.Since(start) < 25*time.Millisecond || r.header[HeaderServiceMS] != "25" {
		t.Errorf("took %v, %s %q", time.Since(start), HeaderServiceMS, r.header[HeaderServiceMS])
	}
}

func TestStream_ResetAfter_ClientReadFails(t *testing.T) {
	m := startMock(t, Config{})
	_, err := m.do(t, "POST", "/v1/chat/completions", streamBody, HeaderResetAfter, "3")
	if err == nil {
		t.Fatal("want a read error from a reset stream")
	}
	rec := waitDone(t, m.srv)
	if len(rec.ChunkSentAt) != 3 || rec.UsageSent != nil {
		t.Errorf("sent %d events before reset, usage %v", len(rec.ChunkSentAt), rec.UsageSent)
	}
	// The server is still healthy for the next connection.
	if r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
		t.Errorf("after reset: %d", r.status)
	}
}

// TestStream_ResetAfter_TCP_SendsRST checks the real socket path: the peer sees a reset, not a clean end.
func TestStream_ResetAfter_TCP_SendsRST(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	srv := New(Config{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n" +
		HeaderResetAfter + ": 2\r\nContent-Length: " + strconv.Itoa(len(streamBody)) + "\r\n\r\n" + streamBody
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read ended with %v after %q, want ECONNRESET", err, got)
	}
	if strings.Contains(string(got), "[DONE]") {
		t.Errorf("reset stream reached [DONE]")
	}
}

func TestStream_ClientGone_Recorded(t *testing.T) {
	m := startMock(t, Config{})
	conn, err := m.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n" +
		HeaderChunks + ": 200\r\n" + HeaderChunkDelayMS + ": 5\r\nContent-Length: " +
		strconv.Itoa(len(streamBody)) + "\r\n\r\n" + streamBody
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, "tok2 ") {
			break
		}
	}
	conn.Close()
	rec := waitDone(t, m.srv)
	if !rec.ClientGone || len(rec.ChunkSentAt) >= 202 {
		t.Errorf("client_gone %v after %d events", rec.ClientGone, len(rec.ChunkSentAt))
	}
}

// waitDone waits for the last request's response to finish; streams finish after the client has read.
func waitDone(t *testing.T, s *Server) Received {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, ok := s.Last()
		if ok && !rec.Done.IsZero() {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("response never finished: %+v", rec)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With x-mock-timing the stream ends with what the mock measured: its events unchanged, then one comment
// whose times are in order, at least the waits it planned (a timer never fires early), and within the
// time the client itself waited.
func TestStream_TimingHeader_EndsWithMeasuredTimes(t *testing.T) {
	m := startMock(t, Config{})
	start := time.Now()
	r := m.mustDo(t, "POST", "/v1/chat/completions", streamBody,
		HeaderTTFTMS, "20", HeaderChunkDelayMS, "5", HeaderChunks, "3", HeaderTiming, "1")
	elapsed := time.Since(start)
	body, comment, ok := strings.Cut(string(r.body), TimingComment)
	if !ok {
		t.Fatalf("no %q in the stream:\n%s", TimingComment, r.body)
	}
	if evs := events(t, []byte(body)); len(evs) != 6 || evs[5] != "[DONE]" {
		t.Fatalf("events before the comment: %q, want role, 3 chunks, finish, [DONE]", evs)
	}
	line, ok := strings.CutSuffix(comment, "\n\n")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("comment %q is not one SSE event that ends the stream", comment)
	}
	got := map[string]float64{}
	for _, field := range strings.Fields(line) {
		k, v, _ := strings.Cut(field, "=")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s in %q: %v", field, line, err)
		}
		got[k] = f
	}
	head, first, service := got["head-ms"], got["first-event-ms"], got["service-ms"]
	if len(got) != 3 || !(0 <= head && head <= first && first <= service) {
		t.Fatalf("times %v: want head-ms <= first-event-ms <= service-ms", got)
	}
	// ttft 20, then 5 more events 5 ms apart; the head counts from the request, the waits from the head.
	if first-head < 20 || service-head < 20+5*5 {
		t.Errorf("times %v: less than the planned waits (first event 20 ms after the head, last 45 ms)", got)
	}
	if service > float64(elapsed)/float64(time.Millisecond) {
		t.Errorf("service-ms %v exceeds what the client waited (%v)", service, elapsed)
	}
	if r.header[HeaderServiceMS] != "45" {
		t.Errorf("%s = %q, want the planned 45", HeaderServiceMS, r.header[HeaderServiceMS])
	}
}

func TestStream_WithoutTimingHeader_NoComment(t *testing.T) {
	m := startMock(t, Config{})
	for _, v := range []string{"", "0"} {
		var h []string
		if v != "" {
			h = []string{HeaderTiming, v}
		}
		r := m.mustDo(t, "POST", "/v1/chat/completions", streamBody, h...)
		if strings.Contains(string(r.body), TimingComment) {
			t.Errorf("x-mock-timing %q: the stream has a timing comment", v)
		}
	}
	if r := m.mustDo(t, "POST", "/v1/chat/completions", streamBody, HeaderTiming, "yes"); r.status != 400 {
		t.Errorf("x-mock-timing yes: status %d, want 400", r.status)
	}
}
