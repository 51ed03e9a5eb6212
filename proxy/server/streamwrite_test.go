package server_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
)

// A client that stops reading a stream is cut off timeouts.stream_write
// after its socket buffers fill, and its call still gets a complete record
// (a client that left, the upstream drained). Before, nothing bounded the
// write: the stream, its worker and its upstream connection hung as long
// as the client kept the socket open.
func TestStream_ClientStopsReading_CutOffAndRecorded(t *testing.T) {
	// An upstream of endless 64 KiB events fills the socket buffers in a
	// few dozen writes (small events take seconds under -race).
	event := []byte(`data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"` +
		strings.Repeat("a", 64<<10) + `"}}]}` + "\n\n")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for r.Context().Err() == nil {
			if _, err := w.Write(event); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	defer up.Close()
	st := startStack(t, stackOptions{drain: 200 * time.Millisecond, timeouts: "stream_write: 300ms", upstreamURL: up.URL + "/v1"})
	c, err := net.Dial("tcp", strings.TrimPrefix(st.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	seen := st.count()
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}`
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: loom\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", st.keyA, len(body), body)
	// The client reads nothing from here on.
	rec := st.lastRecord(seen)
	if rec.Outcome != call.OutcomeClientGone || !rec.ClientDisconnected || !rec.Drained {
		t.Fatalf("record: outcome %s disconnected %v drained %v (%s)", rec.Outcome, rec.ClientDisconnected, rec.Drained, rec.ErrorMessage)
	}
	if rec.Status != 200 || rec.ChunksSent == 0 || rec.ClientBytes == 0 {
		t.Fatalf("record: status %d chunks sent %d client bytes %d", rec.Status, rec.ChunksSent, rec.ClientBytes)
	}
}

// A long stream that the client keeps reading is never cut, however short
// stream_write and client_write are: the deadline moves with every event.
func TestStream_LongStreamReadSlowlyEnough_NotCut(t *testing.T) {
	st := startStack(t, stackOptions{timeouts: "stream_write: 200ms, client_write: 200ms"})
	seen := st.count()
	status, _, got := st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}`,
		map[string]string{"x-mock-chunks": "12", "x-mock-chunk-delay-ms": "100"})
	if status != 200 || !bytes.HasSuffix(got, []byte("data: [DONE]\n\n")) {
		t.Fatalf("stream of 1.2s with 200ms write timeouts: %d %q", status, got)
	}
	if rec := st.lastRecord(seen); rec.Outcome != call.OutcomeOK || rec.ClientDisconnected {
		t.Fatalf("record: outcome %s disconnected %v", rec.Outcome, rec.ClientDisconnected)
	}
}
