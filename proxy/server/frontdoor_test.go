package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// announce opens a connection and sends a chat request's headers announcing
// a body of length bytes, and the first bytes of that body.
func announce(t *testing.T, st *stack, length int, first string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(st.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: loom\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", st.keyA, length, first)
	return c
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// A body announced over max_body_bytes is refused from the headers alone:
// no body byte is awaited and no buffer of the announced size is made. It
// used to be read (up to 4x the limit) into a buffer of the announced size,
// allocated when the headers arrived and held while the body trickled in.
func TestServer_AnnouncedHugeBody_RefusedWithoutAllocating(t *testing.T) {
	st := startStack(t, stackOptions{maxBody: 1 << 20})
	before := totalAlloc()
	const conns = 10
	for range conns {
		c := announce(t, st, 3<<20, "")
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		status, body := readResponse(t, c)
		assertError(t, status, body, 413, "request_too_large")
	}
	if grew := totalAlloc() - before; grew > 2<<20 {
		t.Fatalf("%d refused requests allocated %d KiB; announced bodies must not be allocated", conns, grew>>10)
	}
	// A client that asks before sending (Expect: 100-continue, as curl
	// does for large bodies) is not invited to send it: the answer is 413.
	c, err := net.Dial("tcp", strings.TrimPrefix(st.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: loom\r\nAuthorization: Bearer %s\r\n"+
		"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n", st.keyA, 3<<20)
	status, body := readResponse(t, c)
	assertError(t, status, body, 413, "request_too_large")
	if status, _, body := st.do("GET", "/v1/models", st.keyA, "", nil); status != 200 {
		t.Fatalf("server broken: %d %s", status, body)
	}
}

// A body announced just under the limit that never comes costs what has
// arrived, not what was announced, and the client's read timeout ends it
// with an OpenAI-shaped 408. (fasthttp pre-reads up to 8 KiB of a body
// before the handler runs; the 9 KiB sent get past that.)
func TestServer_AnnouncedBodyNeverSent_CostsWhatArrivedAndTimesOut(t *testing.T) {
	st := startStack(t, stackOptions{maxBody: 4 << 20, timeouts: "client_read: 1s"})
	before := totalAlloc()
	const conns = 10
	var cs []net.Conn
	for range conns {
		cs = append(cs, announce(t, st, 4<<20-1, `{"model":"gpt-4o","messages":[`+strings.Repeat(" ", 9<<10)))
	}
	// Give the server time to read the headers and the first bytes, as
	// far as they go (there is nothing to poll for: it must be waiting).
	time.Sleep(300 * time.Millisecond)
	if grew := totalAlloc() - before; grew > 4<<20 {
		t.Fatalf("%d connections announcing 4 MiB each allocated %d KiB up front", conns, grew>>10)
	}
	start := time.Now()
	for _, c := range cs {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		status, body := readResponse(t, c)
		assertError(t, status, body, 408, "request_timeout")
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("read timeout of 1s ended the requests after %v", waited)
	}
}

// A client that sends a body over the limit (chunked, or with a
// Content-Length it keeps sending) reads the 413, not a connection reset.
func TestServer_BodyOverLimitWhileSending_ClientReads413(t *testing.T) {
	st := startStack(t, stackOptions{maxBody: 64 << 10})
	big := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("a", 8<<20) + `"}]}`
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%t", chunked), func(t *testing.T) {
			var body io.Reader = strings.NewReader(big)
			if chunked {
				body = io.MultiReader(body) // no length: net/http sends it chunked
			}
			req, _ := http.NewRequest("POST", st.url+"/v1/chat/completions", body)
			req.Header.Set("Authorization", "Bearer "+st.keyA)
			req.Header.Set("Content-Type", "application/json")
			resp, err := st.client.Do(req)
			if err != nil {
				t.Fatalf("client saw %v instead of a 413", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assertError(t, resp.StatusCode, b, 413, "request_too_large")
		})
	}
}

// Connections over connections.max_per_ip (or max_total) are answered with
// an OpenAI-shaped 429 (503) and closed; a closed one frees its place.
func TestServer_ConnectionCaps_RefuseOverTheCapWithOpenAIErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		caps   string
		status int
		code   string
	}{
		{"per ip", "connections: {max_per_ip: 3, max_total: 100}", 429, "too_many_connections_per_ip"},
		{"total", "connections: {max_per_ip: 100, max_total: 3}", 503, "too_many_connections"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := startStack(t, stackOptions{extra: tt.caps})
			addr := strings.TrimPrefix(st.url, "http://")
			var held []net.Conn
			for range 3 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				held = append(held, c)
			}
			// A held connection is served.
			_ = held[0].SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(held[0], "GET /healthz HTTP/1.1\r\nHost: loom\r\n\r\n")
			if status, body := readResponse(t, held[0]); status != 200 {
				t.Fatalf("held connection: %d %s", status, body)
			}
			over, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer over.Close()
			_ = over.SetDeadline(time.Now().Add(5 * time.Second))
			status, body := readResponse(t, over)
			assertError(t, status, body, tt.status, tt.code)

			held[1].Close()
			// The server counts the close when it sees it: poll.
			deadline := time.Now().Add(5 * time.Second)
			for {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: loom\r\n\r\n")
				status, body := readResponse(t, c)
				c.Close()
				if status == 200 {
					break
				}
				if time.Now().After(deadline) || !bytes.Contains(body, []byte(tt.code)) {
					t.Fatalf("after a close: %d %s", status, body)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// A connection that sends nothing before client_read is closed without an
// answer: it made no request. Seen in the soak: Go's HTTP client keeps
// spare connections, and each one that idled past the timeout got a 400
// ("Unsolicited response received on idle HTTP channel"), counted as a
// malformed request. Headers that start but never end get a 408.
func TestServer_ConnectionSilentPastClientRead_ClosedUnanswered(t *testing.T) {
	st := startStack(t, stackOptions{timeouts: "client_read: 300ms"})
	ops := serveOps(t, st)
	addr := strings.TrimPrefix(st.url, "http://")
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	partial, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	fmt.Fprintf(partial, "POST /v1/chat/completions HTTP/1.1\r\nHost: loom\r\nAuthorization: Bearer %s\r\n", st.keyA)

	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(silent)
	if len(got) != 0 || err != nil {
		t.Fatalf("silent connection read %q, %v; want a clean close with no bytes", got, err)
	}
	_ = partial.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, body := readResponse(t, partial)
	assertError(t, status, body, 408, "request_timeout")

	_, m := get(t, ops+"/metrics")
	for reason, want := range map[string]int64{"request_timeout": 1, "malformed_request": 0, "other": 0} {
		if got := metric(m, `loom_rejected_unauthenticated_total{reason="`+reason+`"}`); got != want {
			t.Errorf("reason %s counted %d, want %d", reason, got, want)
		}
	}
}
