package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

// errorEventFirst streams a head, a keep-alive comment and then, as its
// first real event, an OpenAI error object of this type and code.
func errorEventFirst(typ, code string) behaviour {
	return func(w http.ResponseWriter, r *http.Request, _ int) {
		streamed(r)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, ": keep-alive\n\n")
		_, _ = io.WriteString(w, errorEvent(typ, code))
		w.(http.Flusher).Flush()
	}
}

func errorEvent(typ, code string) string {
	c := "null"
	if code != "" {
		c = `"` + code + `"`
	}
	return fmt.Sprintf(`data: {"error":{"message":"scripted %s","type":"%s","param":null,"code":%s}}`+"\n\n", typ, typ, c)
}

const streamCall = `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`

// A stream whose first real event is an error the next deployment may not
// repeat (overloaded, a server error, a rate limit) has sent nothing to the
// client yet: the call moves on, and the client sees the second's answer
// alone. The failed attempt is recorded with the error's type.
func TestFailover_StreamBeginsWithRetryableErrorEvent_ClientSeesOneCleanAnswerFromSecond(t *testing.T) {
	for _, tc := range []struct{ typ, code string }{
		{"server_error", ""}, {"overloaded_error", ""}, {"requests", "rate_limit_exceeded"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			r := startRouted(t, twoTiers, "").serve()
			r.up["first"].set(errorEventFirst(tc.typ, tc.code))
			text, err := r.ask("gpt", true)
			if err != nil || text != "from second" {
				t.Fatalf("client got %q, %v; want one clean answer from second", text, err)
			}
			rec := r.lastRecord(0)
			want := tc.typ
			if tc.code != "" {
				want = tc.code
			}
			if rec.Deployment != "second" || rec.Outcome != call.OutcomeOK || rec.ChunksSent != 4 || len(rec.Attempts) != 1 ||
				rec.Attempts[0].Deployment != "first" || rec.Attempts[0].ErrorType != want || rec.Attempts[0].Reason == "" {
				t.Fatalf("record: deployment %s outcome %s chunks sent %d attempts %+v", rec.Deployment, rec.Outcome, rec.ChunksSent, rec.Attempts)
			}
		})
	}
}

// An error event that any deployment would repeat (the request is wrong)
// is the answer: relayed as the upstream sent it, the second never asked.
func TestFailover_StreamBeginsWithRequestErrorEvent_RelayedAsIs_NotRetried(t *testing.T) {
	r := startRouted(t, twoTiers, "").serve()
	r.up["first"].set(errorEventFirst("invalid_request_error", "context_length_exceeded"))
	status, _, body := r.do("POST", "/v1/chat/completions", r.keyA, streamCall, nil)
	if want := ": keep-alive\n\n" + errorEvent("invalid_request_error", "context_length_exceeded"); status != 200 || string(body) != want {
		t.Fatalf("status %d body %q; want the upstream's stream as it is, %q", status, body, want)
	}
	if n := r.up["second"].calls.Load(); n != 0 {
		t.Fatalf("the second deployment got %d calls", n)
	}
	if rec := r.lastRecord(0); rec.Deployment != "first" || len(rec.Attempts) != 0 || rec.ErrorType != "context_length_exceeded" ||
		rec.Outcome != call.OutcomeUpstreamError {
		t.Fatalf("record: deployment %s attempts %+v error %s outcome %s", rec.Deployment, rec.Attempts, rec.ErrorType, rec.Outcome)
	}
}

// When every deployment's stream begins with an error, the client gets the
// last one's stream as it is: one upstream's bytes, never two.
func TestFailover_EveryStreamBeginsWithErrorEvent_LastRelayedAsIs(t *testing.T) {
	r := startRouted(t, twoTiers, "").serve()
	r.up["first"].set(errorEventFirst("server_error", ""))
	r.up["second"].set(errorEventFirst("overloaded_error", ""))
	status, _, body := r.do("POST", "/v1/chat/completions", r.keyA, streamCall, nil)
	if want := ": keep-alive\n\n" + errorEvent("overloaded_error", ""); status != 200 || string(body) != want {
		t.Fatalf("status %d body %q; want the second's stream as it is, %q", status, body, want)
	}
	if strings.Contains(string(body), "server_error") {
		t.Fatal("the first upstream's event reached the client")
	}
	rec := r.lastRecord(0)
	if rec.Deployment != "second" || len(rec.Attempts) != 1 || rec.Attempts[0].ErrorType != "server_error" ||
		rec.ErrorType != "overloaded_error" || rec.Outcome != call.OutcomeUpstreamError {
		t.Fatalf("record: deployment %s attempts %+v error %s outcome %s", rec.Deployment, rec.Attempts, rec.ErrorType, rec.Outcome)
	}
}
