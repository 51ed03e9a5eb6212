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

	"github.com/valyala/fasthttp"
)

// endpointCase is one endpoint of each dialect, for tests that must hold on all of them.
type endpointCase struct {
	name, path, body string
	headers          []string
	stream           string // the same request, streaming; "" where the endpoint does not stream
}

func allEndpoints() []endpointCase {
	return []endpointCase{
		{name: "chat", path: "/v1/chat/completions", body: chatBody, stream: streamBody},
		{name: "completions", path: "/v1/completions", body: `{"model":"gpt-3.5-turbo-instruct","prompt":"hi"}`,
			stream: `{"model":"gpt-3.5-turbo-instruct","prompt":"hi","stream":true}`},
		{name: "embeddings", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":"hi"}`},
		{name: "azure chat", path: azureChat, body: chatBody, stream: streamBody},
		{name: "messages", path: "/v1/messages", body: messagesBody, headers: anthropicHeaders(),
			stream: strings.Replace(messagesBody, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)},
		{name: "responses", path: "/v1/responses", body: responsesBody,
			stream: `{"model":"gpt-4.1","input":"hi","stream":true}`},
	}
}

func TestFail_Header_FailsFirstNAttemptsPerKey(t *testing.T) {
	m := startMock(t, Config{})
	for _, ep := range allEndpoints() {
		t.Run(ep.name, func(t *testing.T) {
			key := "key-" + ep.name
			for attempt := 1; attempt <= 3; attempt++ {
				r := m.mustDo(t, "POST", ep.path, ep.body, append(ep.headers, HeaderFail, "500",
					HeaderFailCount, "2", HeaderFailKey, key)...)
				rec, _ := m.srv.Last()
				wantFailed := "500"
				if attempt == 3 {
					wantFailed = ""
				}
				if rec.Attempt != attempt || rec.Failed != wantFailed || rec.FailKey != key {
					t.Errorf("attempt %d logged as %d %q %q", attempt, rec.Attempt, rec.Failed, rec.FailKey)
				}
				if attempt < 3 {
					checkDialectError(t, ep, r, 500)
				} else if r.status != 200 {
					t.Errorf("attempt 3: %d %s", r.status, r.body)
				}
			}
			// Another key starts its own count.
			r := m.mustDo(t, "POST", ep.path, ep.body, append(ep.headers, HeaderFail, "500",
				HeaderFailCount, "2", HeaderFailKey, key+"-other")...)
			checkDialectError(t, ep, r, 500)
		})
	}
}

// checkDialectError checks an injected error has the status and the error shape of the endpoint's dialect.
func checkDialectError(t *testing.T, ep endpointCase, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ep.path == "/v1/messages" {
		if got := decode(t, string(r.body)); got["type"] != "error" {
			t.Errorf("not Anthropic-shaped: %s", r.body)
		}
		return
	}
	if e := errorKeys(t, r.body); e["message"] == "" {
		t.Errorf("no message: %s", r.body)
	}
}

func TestFail_429_RetryAfterIsControllable(t *testing.T) {
	m := startMock(t, Config{})
	for _, ep := range allEndpoints() {
		t.Run(ep.name, func(t *testing.T) {
			r := m.mustDo(t, "POST", ep.path, ep.body, append(ep.headers, HeaderFail, "429", HeaderRetryAfter, "7")...)
			checkDialectError(t, ep, r, 429)
			if r.header["retry-after"] != "7" {
				t.Errorf("retry-after %q", r.header["retry-after"])
			}
			if ep.path == "/v1/messages" {
				if r.header["x-should-retry"] != "true" {
					t.Errorf("x-should-retry %q", r.header["x-should-retry"])
				}
			} else if !strings.HasPrefix(ep.path, "/openai/") && r.header["retry-after-ms"] != "7000" {
				t.Errorf("retry-after-ms %q", r.header["retry-after-ms"])
			}
		})
	}
	// x-mock-retry-after also sets the value of a 429 asked for with x-mock-status, and may be 0 or a date.
	r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody, HeaderStatus, "429", HeaderRetryAfter, "0")
	if r.status != 429 || r.header["retry-after"] != "0" {
		t.Errorf("status %d retry-after %q", r.status, r.header["retry-after"])
	}
	date := "Wed, 21 Oct 2015 07:28:00 GMT"
	r = m.mustDo(t, "POST", "/v1/chat/completions", chatBody, HeaderFail, "429", HeaderRetryAfter, date)
	if r.header["retry-after"] != date || r.header["retry-after-ms"] != "" {
		t.Errorf("retry-after %q, retry-after-ms %q", r.header["retry-after"], r.header["retry-after-ms"])
	}
}

func TestFail_BadHeaders_Rejected(t *testing.T) {
	m := startMock(t, Config{})
	for _, h := range [][]string{{HeaderFail, "explode"}, {HeaderFailCount, "-1"}, {HeaderRetryAfter, "soon"},
		{HeaderFailDelayMS, "x"}} {
		r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody, h...)
		if e := errorKeys(t, r.body); r.status != 400 || e["code"] != "invalid_mock_header" || e["param"] != h[0] {
			t.Errorf("%s: %d %s", h[0], r.status, r.body)
		}
	}
}

// rawTCP sends one request over real TCP to a new mock and returns the mock, what arrived and how reading
// ended, so a reset shows as ECONNRESET rather than the EOF an in-memory pipe gives.
func rawTCP(t *testing.T, path, body string, headers ...string) (*Server, []byte, error) {
	t.Helper()
	srv, base := startTCPMock(t, Config{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "POST " + path + " HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n"
	for i := 0; i+1 < len(headers); i += 2 {
		req += headers[i] + ": " + headers[i+1] + "\r\n"
	}
	req += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	return srv, got, err
}

func TestFail_Reset_BeforeFirstByte(t *testing.T) {
	for _, ep := range allEndpoints() {
		t.Run(ep.name, func(t *testing.T) {
			srv, got, err := rawTCP(t, ep.path, ep.body, append(ep.headers, HeaderFail, "reset")...)
			if !errors.Is(err, syscall.ECONNRESET) || len(got) != 0 {
				t.Fatalf("read %q then %v, want nothing then ECONNRESET", got, err)
			}
			if rec, _ := srv.Last(); rec.Failed != "reset" || rec.Done.IsZero() {
				t.Errorf("log %+v", rec)
			}
		})
	}
}

func TestFail_ResetAfterFirst_StreamGetsOneEvent(t *testing.T) {
	firstEvent := map[string]string{"chat": `"role":"assistant"`, "completions": `"text":"tok1 "`,
		"azure chat": `"role":"assistant"`, "messages": "event: message_start\n", "responses": "event: response.created\n"}
	for _, ep := range allEndpoints() {
		if ep.stream == "" {
			continue
		}
		t.Run(ep.name, func(t *testing.T) {
			srv, got, err := rawTCP(t, ep.path, ep.stream, append(ep.headers, HeaderFail, "reset-after-first")...)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read ended with %v, want ECONNRESET", err)
			}
			head, body, _ := strings.Cut(string(got), "\r\n\r\n")
			if !strings.HasPrefix(head, "HTTP/1.1 200") || !strings.Contains(body, firstEvent[ep.name]) ||
				strings.Count(body, "\n\n") != 1 {
				t.Errorf("got %q", got)
			}
			rec := waitDone(t, srv)
			if len(rec.ChunkSentAt) != 1 || rec.Failed != "reset-after-first" {
				t.Errorf("%d events sent, failed %q", len(rec.ChunkSentAt), rec.Failed)
			}
		})
	}
}

func TestFail_ResetAfterFirst_NonStreamCutsTheBody(t *testing.T) {
	_, got, err := rawTCP(t, "/v1/chat/completions", chatBody, HeaderFail, "reset-after-first")
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read ended with %v, want ECONNRESET", err)
	}
	head, body, _ := strings.Cut(string(got), "\r\n\r\n")
	cl := 0
	for line := range strings.Lines(head) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Content-Length: "); ok {
			cl, _ = strconv.Atoi(v)
		}
	}
	if !strings.HasPrefix(head, "HTTP/1.1 200") || len(body) == 0 || len(body) >= cl {
		t.Errorf("head %q, %d of %d body bytes", head, len(body), cl)
	}
}

func TestFail_Timeout_HoldsTheHead(t *testing.T) {
	m := startMock(t, Config{})
	hdr := []string{HeaderFail, "timeout", HeaderFailDelayMS, "300", HeaderFailCount, "1", HeaderFailKey, "t1"}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://mock/v1/chat/completions")
	req.SetBodyString(streamBody)
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// A gateway's first-byte timeout shorter than the hold fires: no head arrives.
	if err := m.client.DoTimeout(req, resp, 50*time.Millisecond); !errors.Is(err, fasthttp.ErrTimeout) {
		t.Fatalf("err %v, want a timeout", err)
	}
	// The retry is attempt 2 under the same key and is served at once.
	start := time.Now()
	r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody, hdr...)
	if r.status != 200 || time.Since(start) >= 300*time.Millisecond {
		t.Errorf("retry: %d after %v", r.status, time.Since(start))
	}
	reqs := m.srv.Requests()
	if len(reqs) != 2 || reqs[0].Failed != "timeout" || reqs[1].Attempt != 2 || reqs[1].Failed != "" {
		t.Errorf("log %+v", reqs)
	}
	// A client patient enough gets the held answer; the hold counts as service time.
	r = m.mustDo(t, "POST", "/v1/chat/completions", chatBody, HeaderFail, "timeout", HeaderFailDelayMS, "30")
	if r.status != 200 || r.header[HeaderServiceMS] != "30" {
		t.Errorf("held answer %d, %s %q", r.status, HeaderServiceMS, r.header[HeaderServiceMS])
	}
}

func TestFail_Timeout_ShutdownEndsTheHold(t *testing.T) {
	srv := New(Config{Fail: Failure{Mode: FailTimeout, Delay: time.Hour}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nContent-Length: " + strconv.Itoa(len(chatBody)) +
		"\r\n\r\n" + chatBody
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rec, ok := srv.Last(); !ok || rec.Failed != "timeout"; rec, ok = srv.Last() {
		if time.Now().After(deadline) {
			t.Fatal("request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown waited out the hold: %v", err)
	}
	if status, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Errorf("held request: %q %v", status, err)
	}
	if err := <-served; err != nil {
		t.Error(err)
	}
}

// TestFail_Config_TwoMocksFirstFailing is the failover set-up: the first deployment's mock fails, the
// second serves; each counts the attempts it saw.
func TestFail_Config_TwoMocksFirstFailing(t *testing.T) {
	first := startMock(t, Config{Fail: Failure{Mode: Fail429, RetryAfter: "2"}})
	second := startMock(t, Config{})
	for range 3 {
		r := first.mustDo(t, "POST", "/v1/chat/completions", chatBody)
		if r.status != 429 || r.header["retry-after"] != "2" {
			t.Fatalf("first: %d retry-after %q", r.status, r.header["retry-after"])
		}
		if r := second.mustDo(t, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
			t.Fatalf("second: %d", r.status)
		}
	}
	if reqs := first.srv.Requests(); len(reqs) != 3 || reqs[2].Attempt != 3 || reqs[2].Failed != "429" {
		t.Errorf("first log %+v", reqs[len(reqs)-1])
	}
	if r := first.mustDo(t, "POST", "/v1/chat/completions", chatBody, HeaderFail, "none"); r.status != 200 {
		t.Errorf("x-mock-fail: none did not lift Config.Fail: %d", r.status)
	}

	// Count limits a configured failure too: only the first attempt per key fails.
	once := startMock(t, Config{Fail: Failure{Mode: Fail500, Count: 1}})
	if r := once.mustDo(t, "POST", "/v1/messages", messagesBody, anthropicHeaders()...); r.status != 500 {
		t.Errorf("first attempt %d", r.status)
	}
	if r := once.mustDo(t, "POST", "/v1/messages", messagesBody, anthropicHeaders()...); r.status != 200 {
		t.Errorf("second attempt %d", r.status)
	}
}

func TestStreamErrorAfter_EndsWithTheDialectsErrorEvent(t *testing.T) {
	m := startMock(t, Config{})
	wantLast := map[string]string{
		"chat":        `data: {"error":{"message":`,
		"completions": `data: {"error":{"message":`,
		"azure chat":  `data: {"error":{"message":`,
		"messages":    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"",
		"responses":   "event: error\ndata: {\"type\":\"error\",\"sequence_number\":2,",
	}
	for _, ep := range allEndpoints() {
		if ep.stream == "" {
			continue
		}
		t.Run(ep.name, func(t *testing.T) {
			r := m.mustDo(t, "POST", ep.path, ep.stream, append(ep.headers, HeaderStreamErrorAfter, "2")...)
			evs := strings.Split(strings.TrimSuffix(string(r.body), "\n\n"), "\n\n")
			if r.status != 200 || len(evs) != 3 || !strings.HasPrefix(evs[2], wantLast[ep.name]) {
				t.Errorf("status %d, events %q", r.status, evs)
			}
			if rec := waitDone(t, m.srv); rec.ClientGone || len(rec.ChunkSentAt) != 3 {
				t.Errorf("log %+v", rec)
			}
		})
	}
}

func TestSetFail_FailsThenHeals(t *testing.T) {
	m := startMock(t, Config{})
	if r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
		t.Fatalf("healthy: %d", r.status)
	}
	m.srv.SetFail(Failure{Mode: Fail500})
	for range 3 {
		if r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody); r.status != 500 {
			t.Fatalf("failing: %d", r.status)
		}
	}
	m.srv.SetFail(Failure{})
	if r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
		t.Errorf("healed: %d", r.status)
	}
	reqs := m.srv.Requests()
	if reqs[3].Attempt != 3 || reqs[3].Failed != "500" || reqs[4].Failed != "" {
		t.Errorf("log %+v / %+v", reqs[3], reqs[4])
	}
}
