package server_test

import (
	"strings"
	"sync/atomic"
	"testing"
)

// With the spool full and when_full: refuse, a call is answered 503 with an
// OpenAI-shaped error before it reaches the upstream, and serving resumes
// as soon as recording does.
func TestServer_CannotRecord_Refuses503BeforeTheUpstream(t *testing.T) {
	var recording atomic.Bool
	st := startStack(t, stackOptions{recording: recording.Load})
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

	status, h, b := st.do("POST", "/v1/chat/completions", st.keyA, body, nil)
	if status != 503 || h.Get("Retry-After") != "1" || !strings.Contains(string(b), `"code":"recording_unavailable"`) ||
		!strings.Contains(string(b), `"type":"server_error"`) {
		t.Fatalf("got %d %v %s, want a 503 recording_unavailable with Retry-After", status, h, b)
	}
	if n := len(st.mock.Requests()); n != 0 {
		t.Fatalf("the upstream got %d requests while Loom could not record", n)
	}
	if r := st.lastRecord(0); r.Status != 503 || r.ErrorType != "recording_unavailable" {
		t.Errorf("record: status %d error.type %q", r.Status, r.ErrorType)
	}

	recording.Store(true)
	if status, _, b := st.do("POST", "/v1/chat/completions", st.keyA, body, nil); status != 200 {
		t.Fatalf("recording again: got %d %s", status, b)
	}
}
