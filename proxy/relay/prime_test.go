package relay

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

// failingBody is an upstream that sends some bytes, then fails.
type failingBody struct {
	memBody
	err error
}

func (b *failingBody) Read(p []byte) (int, error) {
	n, err := b.memBody.Read(p)
	if errors.Is(err, io.EOF) {
		return n, b.err
	}
	return n, err
}

// writeAll runs a primed stream the way fasthttp does (WriteTo, then
// close) and returns what the client got.
func writeAll(s *Stream) []byte {
	var out bytes.Buffer
	_, err := s.WriteTo(&out)
	_ = s.CloseWithError(err)
	return out.Bytes()
}

// Priming reads up to the first real event and holds it: the client then
// gets the whole stream, byte for byte, comments before the first event
// included.
func TestPrime_HoldsTheFirstEvent_ClientGetsEveryByte(t *testing.T) {
	src := append([]byte(": keep-alive\n\n: still here\n\n"), fixture(t, "chat-stream-text-include-usage.sse")...)
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset(src)
	s.Reset(body, &rec, Options{})
	if err := s.Prime(); err != nil {
		t.Fatal(err)
	}
	if rec.Chunks != 1 || rec.FirstChunk.IsZero() {
		t.Fatalf("after Prime: %d chunks tapped, first chunk at %v", rec.Chunks, rec.FirstChunk)
	}
	if got := writeAll(&s); !bytes.Equal(got, src) || rec.Outcome == call.OutcomeUpstreamFailed {
		t.Fatalf("client got %d bytes of %d (outcome %s)", len(got), len(src), rec.Outcome)
	}
}

// An upstream that fails before its first real event fails Prime: nothing
// is held, the caller may try another upstream.
func TestPrime_UpstreamFailsBeforeFirstEvent_ReturnsTheError(t *testing.T) {
	reset := errors.New("connection reset")
	var s Stream
	var rec call.Record
	body := &failingBody{err: reset}
	body.Reset([]byte(": warming up\n\ndata: {\"choi"))
	s.Reset(body, &rec, Options{})
	if err := s.Prime(); !errors.Is(err, reset) {
		t.Fatalf("Prime = %v, want the upstream's error", err)
	}
	if rec.Chunks != 0 || !rec.FirstChunk.IsZero() || rec.Outcome != "" {
		t.Fatalf("a failed Prime left the record %+v", rec)
	}
	// The stream is reusable for the next upstream.
	src := fixture(t, "chat-stream-text-include-usage.sse")
	next := &memBody{}
	next.Reset(src)
	rec.Reset()
	s.Reset(next, &rec, Options{})
	if err := s.Prime(); err != nil {
		t.Fatal(err)
	}
	if got := writeAll(&s); !bytes.Equal(got, src) {
		t.Fatal("the next upstream's stream was not relayed whole")
	}
}

// A failure after the first real event is the relay's as before: the
// client gets what came, then one error event.
func TestPrime_FailureAfterFirstEvent_EndsWithOneErrorEvent(t *testing.T) {
	first := "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"
	var s Stream
	var rec call.Record
	body := &failingBody{err: errors.New("connection reset")}
	body.Reset([]byte(first))
	s.Reset(body, &rec, Options{})
	if err := s.Prime(); err != nil {
		t.Fatalf("Prime = %v, want the first event held", err)
	}
	got := writeAll(&s)
	rest, ok := bytes.CutPrefix(got, []byte(first))
	if !ok || !bytes.HasPrefix(rest, []byte(`data: {"error":`)) || bytes.Count(rest, []byte("\n\n")) != 1 ||
		rec.Outcome != call.OutcomeUpstreamFailed {
		t.Fatalf("client got %q (outcome %s)", got, rec.Outcome)
	}
}

// A clean end before any event is relayed as it is.
func TestPrime_CleanEndBeforeAnyEvent_NotAFailure(t *testing.T) {
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset([]byte(": only a comment\n\ntrailing"))
	s.Reset(body, &rec, Options{})
	if err := s.Prime(); err != nil {
		t.Fatal(err)
	}
	if got := string(writeAll(&s)); got != ": only a comment\n\ntrailing" {
		t.Fatalf("client got %q", got)
	}
}

// Priming costs no allocation: the held event is the scanner's own bytes.
func TestPrime_ZeroAllocsPerStream(t *testing.T) {
	src := fixture(t, "chat-stream-text-include-usage.sse")
	var s Stream
	var rec call.Record
	body := &memBody{}
	w := &countingWriter{}
	allocs := testing.AllocsPerRun(50, func() {
		rec.Reset()
		body.Reset(src)
		w.out = w.out[:0]
		s.Reset(body, &rec, Options{})
		if err := s.Prime(); err != nil {
			t.Fatal(err)
		}
		_, err := s.WriteTo(w)
		_ = s.CloseWithError(err)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per primed stream, want 0", allocs)
	}
}

// A stream whose first real event is an error another upstream may not
// repeat fails Prime with its type, and stays primed: relayed anyway, the
// client gets every byte. One that any upstream would repeat is the answer.
func TestPrime_FirstEventIsAnError_RetryableReported_RequestErrorRelayed(t *testing.T) {
	for _, tc := range []struct {
		name, event, wantType string
	}{
		{"server error", `{"error":{"message":"boom","type":"server_error","param":null,"code":null}}`, "server_error"},
		{"rate limit", `{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}`, "rate_limit_exceeded"},
		{"overloaded", `{"error":{"type":"overloaded_error","message":"Overloaded"}}`, "overloaded_error"},
		{"invalid request", `{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}`, ""},
		{"no type", `{"error":{"message":"?"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte(": keep-alive\n\ndata: " + tc.event + "\n\ndata: [DONE]\n\n")
			var s Stream
			var rec call.Record
			body := &memBody{}
			body.Reset(src)
			s.Reset(body, &rec, Options{})
			err := s.Prime()
			var fe *FirstEventError
			if tc.wantType == "" {
				if err != nil {
					t.Fatalf("Prime = %v; want nil, the error being the answer", err)
				}
			} else if !errors.As(err, &fe) || fe.Type != tc.wantType {
				t.Fatalf("Prime = %v; want a FirstEventError of type %s", err, tc.wantType)
			}
			if got := writeAll(&s); !bytes.Equal(got, src) {
				t.Fatalf("relayed anyway, the client got %q; want %q", got, src)
			}
		})
	}
}
