package relay

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/sse"
)

// renamer is a Translator that writes each data event as "event: n" with
// its data unchanged, counts them in the record, and fails on data "bad".
type renamer struct {
	rec *call.Record
	n   int
}

var errBad = errors.New("bad event")

func (r *renamer) Event(dst []byte, ev *sse.Event) ([]byte, error) {
	if !ev.HasData {
		return dst, nil
	}
	if string(ev.Data) == "bad" {
		return dst, errBad
	}
	r.n++
	r.rec.OutputPieces++
	dst = append(dst, "event: "...)
	dst = strconv.AppendInt(dst, int64(r.n), 10)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, ev.Data...)
	return append(dst, "\n\n"...), nil
}

func (r *renamer) End(dst, rest []byte) []byte {
	return append(append(dst, "event: end\ndata: "...), strconv.Itoa(len(rest))+"\n\n"...)
}

func (r *renamer) Error(dst []byte, message, code string) []byte {
	return append(dst, "event: error\ndata: "+code+"\n\n"...)
}

func TestStream_Translator_WritesWhatItReturns_EndsWithEnd(t *testing.T) {
	src := []byte("data: a\n\n: comment\n\ndata: b\n\ndata: [DONE]\n\n")
	var s Stream
	var rec call.Record
	tr := &renamer{rec: &rec}
	body := &memBody{}
	body.Reset(src)
	got := relayAll(&s, body, &rec, Options{Translator: tr, DropUsage: true}, nil, make([]byte, 4096))
	want := "event: 1\ndata: a\n\nevent: 2\ndata: b\n\nevent: 3\ndata: [DONE]\n\nevent: end\ndata: 0\n\n"
	if string(got) != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if rec.Chunks != 2 || rec.ChunksSent != 4 || rec.OutputPieces != 3 || rec.FirstChunk.IsZero() || !body.closed || body.closedWith != nil {
		t.Fatalf("record chunks %d sent %d pieces %d; upstream closed %v with %v", rec.Chunks, rec.ChunksSent, rec.OutputPieces, body.closed, body.closedWith)
	}
}

func TestStream_Translator_UnreadableEvent_EndsWithItsErrorEvent(t *testing.T) {
	src := []byte("data: a\n\ndata: bad\n\ndata: c\n\n")
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset(src)
	got := relayAll(&s, body, &rec, Options{Translator: &renamer{rec: &rec}}, nil, make([]byte, 4096))
	if want := "event: 1\ndata: a\n\nevent: error\ndata: upstream_malformed\n\n"; string(got) != want {
		t.Fatalf("got %q", got)
	}
	if rec.Outcome != call.OutcomeUpstreamFailed || rec.ErrorType != "upstream_malformed" || !errors.Is(body.closedWith, ErrTranslate) {
		t.Fatalf("outcome %s type %s closed with %v", rec.Outcome, rec.ErrorType, body.closedWith)
	}
}

// brokenBody breaks off after its bytes.
type brokenBody struct{ memBody }

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.memBody.Read(p)
	if errors.Is(err, io.EOF) {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func TestStream_Translator_UpstreamBreaksOff_ErrorInTheClientsDialect(t *testing.T) {
	var s Stream
	var rec call.Record
	body := &brokenBody{}
	body.Reset([]byte("data: a\n\n"))
	s.Reset(body, &rec, Options{Translator: &renamer{rec: &rec}, Drain: time.Second})
	out, err := io.ReadAll(&s)
	if err != nil {
		t.Fatal(err)
	}
	if want := "event: 1\ndata: a\n\nevent: error\ndata: upstream_reset\n\n"; string(out) != want {
		t.Fatalf("got %q", out)
	}
}

func TestStream_Translator_ZeroAllocsPerEvent(t *testing.T) {
	src := fixture(t, "chat-stream-text-include-usage.sse")
	var s Stream
	var rec call.Record
	tr := &renamer{rec: &rec}
	body := &memBody{}
	p := make([]byte, 4096)
	out := make([]byte, 0, 2*len(src))
	opts := Options{Translator: tr}
	out = relayAll(&s, body, &rec, opts, out[:0], p)
	allocs := testing.AllocsPerRun(50, func() {
		rec.Reset()
		tr.n = 0
		body.Reset(src)
		out = relayAll(&s, body, &rec, opts, out[:0], p)
	})
	if allocs != 0 || !bytes.Contains(out, []byte("event: 34\n")) {
		t.Fatalf("%v allocs per stream", allocs)
	}
}
