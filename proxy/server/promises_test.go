package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
)

const rawChat = `{"model":"m","messages":[{"role":"user","content":"x"}]}`
const rawChatStream = `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}`

// An upstream that sends a stream's head and first event and then falls
// silent is cut off after stream_idle (first_byte is long, so only
// stream_idle can end it): the client gets the event, then one error event,
// and the record says timeout.
func TestServer_UpstreamSilentMidStream_StreamIdleEndsItWithErrorEvent(t *testing.T) {
	up := startRawUpstream(t, func(conn net.Conn, _ *http.Request, _ int) bool {
		ev := "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(ev), ev)
		holdUntilClosed(conn)
		return false
	})
	st := startRawStack(t, up.url(), "", "connect: 1s, first_byte: 30s, stream_idle: 300ms")
	status, _, body := st.do("POST", "/v1/chat/completions", st.keyA, rawChatStream, nil)
	events := sseEvents(body)
	if status != 200 || len(events) != 2 || !bytes.Contains(events[0], []byte(`"id":"c1"`)) ||
		!bytes.Contains(events[1], []byte(`"code":"timeout"`)) {
		t.Fatalf("want the event and a timeout error event, got %d:\n%s", status, body)
	}
	if rec := st.waitRecords(1)[0]; rec.Outcome != call.OutcomeUpstreamFailed || rec.ErrorType != "timeout" || rec.Chunks != 1 {
		t.Fatalf("record: outcome %s type %q chunks %d", rec.Outcome, rec.ErrorType, rec.Chunks)
	}
}

// stream_idle bounds each silence of a non-streamed body, not the whole
// body: one that trickles in with short gaps, for longer in all than
// stream_idle, is relayed; one that stops half-way is Loom's 504.
func TestServer_UpstreamTricklesBody_StreamIdleBoundsEachSilence(t *testing.T) {
	const pieces, gap, idle = 10, 75 * time.Millisecond, 500 * time.Millisecond
	up := startRawUpstream(t, func(conn net.Conn, req *http.Request, _ int) bool {
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(rawAnswer))
		send := pieces
		if req.Header.Get("X-Test-Stall") != "" {
			send = pieces / 2 // half the body, then nothing
		}
		step := len(rawAnswer)/pieces + 1
		for i := range send {
			// Each gap is well under stream_idle (the margin is for a busy
			// two-core machine under -race); all of them are over it.
			time.Sleep(gap)
			_, _ = io.WriteString(conn, rawAnswer[min(i*step, len(rawAnswer)):min((i+1)*step, len(rawAnswer))])
		}
		if send < pieces {
			holdUntilClosed(conn)
			return false
		}
		return true
	})
	st := startRawStack(t, up.url(), `forward_headers: ["x-test-*"]`, "connect: 1s, first_byte: 30s, stream_idle: "+idle.String())
	start := time.Now()
	status, _, body := st.do("POST", "/v1/chat/completions", st.keyA, rawChat, nil)
	if status != 200 || string(body) != rawAnswer {
		t.Fatalf("trickled answer: %d %s", status, body)
	}
	if took := time.Since(start); took <= idle {
		t.Fatalf("the trickle took %v, not longer than stream_idle %v: it proves nothing", took, idle)
	}
	status, _, body = st.do("POST", "/v1/chat/completions", st.keyA, rawChat, map[string]string{"X-Test-Stall": "1"})
	assertError(t, status, body, 504, "upstream_timeout")
	if rec := st.waitRecords(2)[1]; rec.Outcome != call.OutcomeUpstreamFailed || rec.ErrorType != "timeout" {
		t.Fatalf("record: outcome %s type %q", rec.Outcome, rec.ErrorType)
	}
}

// An upstream that reads a non-streamed request and closes the connection
// (with a FIN or a reset) without answering is Loom's 502 upstream_reset.
func TestServer_UpstreamClosesWithoutAnswer_NonStreamed502UpstreamReset(t *testing.T) {
	for _, rst := range []bool{false, true} {
		t.Run(fmt.Sprintf("rst=%t", rst), func(t *testing.T) {
			up := startRawUpstream(t, func(conn net.Conn, _ *http.Request, _ int) bool {
				if tc, ok := conn.(*net.TCPConn); ok && rst {
					_ = tc.SetLinger(0)
				}
				return false
			})
			st := startRawStack(t, up.url(), "", "")
			status, h, body := st.do("POST", "/v1/chat/completions", st.keyA, rawChat, nil)
			assertError(t, status, body, 502, "upstream_reset")
			if h.Get("X-Loom-Overhead-Ms") != "" {
				t.Errorf("Loom's own error carries X-Loom-Overhead-Ms: %s", h.Get("X-Loom-Overhead-Ms"))
			}
			if rec := st.waitRecords(1)[0]; rec.Outcome != call.OutcomeUpstreamFailed || rec.ErrorType != "upstream_reset" {
				t.Fatalf("record: outcome %s type %q", rec.Outcome, rec.ErrorType)
			}
			if n := len(up.seen()); n != 1 {
				t.Fatalf("the upstream got the POST %d times", n)
			}
		})
	}
}

// When the upstream closes a kept-alive connection that sits in Loom's pool,
// the next call on it fails: Loom must not send the POST again on a fresh
// connection, since the upstream may already have started (and billed) it.
func TestServer_StalePooledConnection_PostNeverResent(t *testing.T) {
	closed := make(chan struct{})
	up := startRawUpstream(t, func(conn net.Conn, _ *http.Request, n int) bool {
		if n > 1 {
			writeAnswer(conn, "")
			return true
		}
		// The first answer keeps the connection alive, then the upstream
		// drops it, as an idle timeout on its side would.
		writeAnswer(conn, "")
		_ = conn.Close()
		close(closed)
		return false
	})
	st := startRawStack(t, up.url(), "", "")
	if status, _, body := st.do("POST", "/v1/chat/completions", st.keyA, rawChat, nil); status != 200 {
		t.Fatalf("first call: %d %s", status, body)
	}
	<-closed
	status, _, body := st.do("POST", "/v1/chat/completions", st.keyA, rawChat, nil)
	if n := len(up.seen()); n != 1 {
		t.Fatalf("the upstream read %d requests: the second call's POST was resent on a new connection (client got %d %s)", n, status, body)
	}
	assertError(t, status, body, 502, "upstream_reset")
}

// forward_headers: ["*"] lets a client's own headers through, but never its
// credentials (the deployment's replace them), cookies, hop-by-hop headers,
// nor a header its Connection header names.
func TestServer_ForwardAllHeaders_NeverCredentialsOrHopByHop(t *testing.T) {
	up := startRawUpstream(t, func(conn net.Conn, _ *http.Request, _ int) bool {
		writeAnswer(conn, "")
		return true
	})
	st := startRawStack(t, up.url(), `forward_headers: ["*"]`, "")
	conn, err := net.Dial("tcp", strings.TrimPrefix(st.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: loom\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer %s\r\napi-key: client-api-key\r\nConnection: keep-alive, X-Hop-Named\r\n"+
		"X-Hop-Named: must-not-pass\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\n"+
		"Cookie: session=client\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Client-Own: passes\r\nContent-Length: %d\r\n\r\n%s",
		st.keyA, len(rawChat), rawChat)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	seen := up.seen()
	if len(seen) != 1 {
		t.Fatalf("upstream saw %d requests", len(seen))
	}
	h := seen[0].Header
	if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+upstreamSecret {
		t.Errorf("upstream Authorization %q, want only the deployment's", got)
	}
	for _, name := range []string{"Api-Key", "X-Hop-Named", "Keep-Alive", "Proxy-Authorization", "Cookie", "Te", "Upgrade"} {
		if v := h.Values(name); len(v) > 0 {
			t.Errorf("client header %s: %q went upstream", name, v)
		}
	}
	if c := h.Get("Connection"); strings.Contains(strings.ToLower(c), "x-hop-named") {
		t.Errorf("client's Connection header went upstream: %q", c)
	}
	if h.Get("X-Client-Own") != "passes" {
		t.Errorf("forward_headers [\"*\"] dropped the client's own header: %v", h)
	}
}

// An upstream's Set-Cookie never reaches a tenant, even with
// forward_response_headers: ["*"]: it would be the provider's cookie for the
// gateway's account, handed to whoever called. Nor does a header the
// upstream's Connection header names (hop-by-hop for that message).
func TestServer_UpstreamSetCookieAndConnectionNamed_NeverReachClient(t *testing.T) {
	up := startRawUpstream(t, func(conn net.Conn, _ *http.Request, _ int) bool {
		writeAnswer(conn, "Set-Cookie: __cf_bm=provider; Path=/\r\nX-Upstream-Own: passes\r\n"+
			"Connection: keep-alive, X-Upstream-Hop\r\nX-Upstream-Hop: must-not-pass\r\n")
		return true
	})
	for _, forward := range []string{"", `forward_response_headers: ["*"]`} {
		st := startRawStack(t, up.url(), forward, "")
		status, h, body := st.do("POST", "/v1/chat/completions", st.keyA, rawChat, nil)
		if status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		if v := h.Values("Set-Cookie"); len(v) > 0 {
			t.Errorf("%q: the upstream's Set-Cookie reached the client: %q", forward, v)
		}
		if v := h.Values("X-Upstream-Hop"); len(v) > 0 {
			t.Errorf("%q: a header the upstream's Connection names reached the client: %q", forward, v)
		}
		if got, want := h.Get("X-Upstream-Own"), map[string]string{"": "", `forward_response_headers: ["*"]`: "passes"}[forward]; got != want {
			t.Errorf("%q: X-Upstream-Own %q, want %q", forward, got, want)
		}
	}
}

var overheadFormat = regexp.MustCompile(`^[0-9]+\.[0-9]{3}$`)

// X-Loom-Overhead-Ms is on every answer the upstream gave (success or its
// own error, streamed or not), in milliseconds with three decimals, and
// never on an error Loom made itself: there was no upstream time to take
// out of it.
func TestServer_OverheadHeader_OnRelayedAnswersOnlyThreeDecimals(t *testing.T) {
	st := startStack(t, stackOptions{})
	chat := func(model, stream string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"x"}],"stream":` + stream + `}`
	}
	relayed := []struct {
		name, body string
		header     map[string]string
		status     int
	}{
		{"success", chat("gpt-4o", "false"), nil, 200},
		{"success streamed", chat("gpt-4o", "true"), nil, 200},
		{"upstream 500", chat("gpt-4o", "false"), map[string]string{"x-mock-status": "500"}, 500},
		{"upstream 429 streamed", chat("gpt-4o", "true"), map[string]string{"x-mock-status": "429"}, 429},
		{"upstream 400", chat("gpt-4o", "false"), map[string]string{"x-mock-status": "400"}, 400},
	}
	for _, c := range relayed {
		status, h, body := st.do("POST", "/v1/chat/completions", st.keyA, c.body, c.header)
		if status != c.status {
			t.Fatalf("%s: %d %s", c.name, status, body)
		}
		if v := h.Get("X-Loom-Overhead-Ms"); !overheadFormat.MatchString(v) {
			t.Errorf("%s: X-Loom-Overhead-Ms %q, want milliseconds with three decimals", c.name, v)
		}
	}
	own := []struct {
		name, key, path, body string
		header                map[string]string
		status                int
	}{
		{"no key", "", "/v1/chat/completions", chat("gpt-4o", "false"), nil, 401},
		{"unknown model", st.keyA, "/v1/chat/completions", chat("nope", "false"), nil, 404},
		{"bad body", st.keyA, "/v1/chat/completions", `{`, nil, 400},
		{"unknown url", st.keyA, "/v1/nothing", `{}`, nil, 404},
		{"upstream credential refused", st.keyA, "/v1/chat/completions", chat("gpt-4o", "false"), map[string]string{"x-mock-status": "401"}, 502},
	}
	for _, c := range own {
		status, h, body := st.do("POST", c.path, c.key, c.body, c.header)
		if status != c.status {
			t.Fatalf("%s: %d %s", c.name, status, body)
		}
		if v := h.Get("X-Loom-Overhead-Ms"); v != "" {
			t.Errorf("%s: Loom's own error carries X-Loom-Overhead-Ms %q", c.name, v)
		}
	}
}

// A successful /v1/completions call is relayed unchanged, non-streamed and
// streamed; when the client did not ask for usage in a stream, Loom asked
// for it, records it, and removes the usage chunk from what the client gets.
func TestServer_TextCompletions_SucceedStreamedAndNot(t *testing.T) {
	st := startStack(t, stackOptions{})
	seen := st.count()
	status, _, body := st.do("POST", "/v1/completions", st.keyA, `{"model":"gpt-4o","prompt":"Say this is a test"}`, nil)
	if status != 200 || !bytes.Contains(body, []byte(`"object":"text_completion"`)) || !bytes.Contains(body, []byte(`"usage"`)) {
		t.Fatalf("non-streamed: %d %s", status, body)
	}
	rec := st.lastRecord(seen)
	if rec.Operation != call.OpTextCompletion || rec.HTTPRoute != "/v1/completions" || rec.Status != 200 ||
		rec.UsageSource != call.UsageProvider || rec.Usage.TotalTokens == 0 {
		t.Fatalf("non-streamed record: op %s route %s status %d usage %+v from %q", rec.Operation, rec.HTTPRoute, rec.Status, rec.Usage, rec.UsageSource)
	}

	for _, asked := range []bool{false, true} {
		req := `{"model":"gpt-4o","prompt":"Say this is a test","stream":true}`
		if asked {
			req = `{"model":"gpt-4o","prompt":"Say this is a test","stream":true,"stream_options":{"include_usage":true}}`
		}
		seen := st.count()
		status, _, body := st.do("POST", "/v1/completions", st.keyA, req, nil)
		events := sseEvents(body)
		if status != 200 || len(events) < 2 || string(events[len(events)-1]) != "data: [DONE]\n\n" {
			t.Fatalf("streamed (usage asked %t): %d %s", asked, status, body)
		}
		usageChunks := 0
		for _, ev := range events {
			if bytes.Contains(ev, []byte(`"usage":{`)) {
				usageChunks++
			}
			if !asked && bytes.Contains(ev, []byte(`"usage":null`)) {
				t.Errorf("usage not asked for, yet the client got %q", ev)
			}
		}
		if want := map[bool]int{false: 0, true: 1}[asked]; usageChunks != want {
			t.Errorf("usage asked %t: %d usage chunks reached the client, want %d:\n%s", asked, usageChunks, want, body)
		}
		rec := st.lastRecord(seen)
		if rec.Operation != call.OpTextCompletion || !rec.Stream || rec.UsageRequested == asked ||
			rec.UsageSource != call.UsageProvider || rec.Usage.TotalTokens == 0 {
			t.Fatalf("streamed record (asked %t): op %s stream %t added %t usage %+v from %q",
				asked, rec.Operation, rec.Stream, rec.UsageRequested, rec.Usage, rec.UsageSource)
		}
	}
}
