package relay

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
)

// memBody is an upstream body held in memory.
type memBody struct {
	bytes.Reader
	closedWith error
	closed     bool
}

func (b *memBody) CloseWithError(err error) error {
	b.closed, b.closedWith = true, err
	return nil
}

func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", "openai", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// relayAll runs one stream through s the way fasthttp does: Read into a
// small buffer until EOF, then close.
func relayAll(s *Stream, body *memBody, rec *call.Record, opts Options, out []byte, p []byte) []byte {
	s.Reset(body, rec, opts)
	for {
		n, err := s.Read(p)
		out = append(out, p[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
	}
	_ = s.CloseWithError(nil)
	return out
}

func TestStream_PassesBytesAndDropsOnlyTheAddedUsage(t *testing.T) {
	src := fixture(t, "chat-stream-text-include-usage.sse")
	var s Stream
	var rec call.Record
	p := make([]byte, 4096)

	body := &memBody{}
	body.Reset(src)
	got := relayAll(&s, body, &rec, Options{}, nil, p)
	if !bytes.Equal(got, src) || !body.closed || body.closedWith != nil {
		t.Fatalf("pass-through changed bytes or did not close the upstream cleanly")
	}
	if rec.Usage.TotalTokens != 44 || rec.ChunksSent != 34 || rec.Chunks != 33 {
		t.Fatalf("record %+v", rec)
	}

	rec.Reset()
	body.Reset(src)
	got = relayAll(&s, body, &rec, Options{DropUsage: true}, nil, p)
	if bytes.Contains(got, []byte(`"usage"`)) || len(src)-len(got) < 100 {
		t.Fatalf("usage chunk not removed")
	}
	if rec.Usage.TotalTokens != 44 || rec.ChunksSent != 33 {
		t.Fatalf("record after drop %+v", rec)
	}
}

func TestStream_SmallReadBuffersStillCarryEveryByte(t *testing.T) {
	src := fixture(t, "chat-stream-logprobs-content.sse")
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset(src)
	got := relayAll(&s, body, &rec, Options{}, nil, make([]byte, 7))
	if !bytes.Equal(got, src) {
		t.Fatal("bytes changed with a 7-byte read buffer")
	}
}

func TestStream_ClientGoneBeforeEnd_DrainsAndRecords(t *testing.T) {
	src := fixture(t, "chat-stream-text-include-usage.sse")
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset(src)
	done := false
	s.Reset(body, &rec, Options{DropUsage: true, Drain: time.Second, Done: func() { done = true }})
	p := make([]byte, 64)
	_, _ = s.Read(p)
	_ = s.CloseWithError(io.ErrClosedPipe)
	if !done || !rec.ClientDisconnected || !rec.Drained || !rec.DrainComplete || rec.Usage.TotalTokens != 44 {
		t.Fatalf("record %+v", rec)
	}
	if rec.Outcome != call.OutcomeClientGone || !body.closed {
		t.Fatalf("outcome %s closed %v", rec.Outcome, body.closed)
	}
}

// TestStream_ZeroAllocsPerEvent pins the hot path: scanning, tapping and
// relaying a whole 34-event stream allocates nothing once buffers are warm.
func TestStream_ZeroAllocsPerEvent(t *testing.T) {
	for _, name := range []string{"chat-stream-text-include-usage.sse", "chat-stream-n3-choices.sse", "chat-stream-parallel-tool-calls.sse"} {
		t.Run(name, func(t *testing.T) {
			src := fixture(t, name)
			var s Stream
			var rec call.Record
			body := &memBody{}
			p := make([]byte, 4096)
			out := make([]byte, 0, len(src)+1024)
			for _, drop := range []bool{false, true} {
				allocs := testing.AllocsPerRun(50, func() {
					rec.Reset()
					body.Reset(src)
					out = relayAll(&s, body, &rec, Options{DropUsage: drop}, out[:0], p)
				})
				if allocs != 0 {
					t.Fatalf("drop=%v: %v allocs per stream, want 0", drop, allocs)
				}
			}
		})
	}
}

func BenchmarkStream_ScanTapRelay(b *testing.B) {
	for _, name := range []string{"chat-stream-text-include-usage.sse", "chat-stream-json-object-long.sse"} {
		for _, drop := range []bool{false, true} {
			label := name
			if drop {
				label += "/drop-usage"
			}
			b.Run(label, func(b *testing.B) {
				src := fixture(b, name)
				events := bytes.Count(src, []byte("\n\n"))
				var s Stream
				var rec call.Record
				body := &memBody{}
				p := make([]byte, 4096)
				out := make([]byte, 0, len(src)+1024)
				b.ReportAllocs()
				b.SetBytes(int64(len(src)))
				for b.Loop() {
					rec.Reset()
					body.Reset(src)
					out = relayAll(&s, body, &rec, Options{DropUsage: drop}, out[:0], p)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
			})
		}
	}
}

// deadlines records the write deadlines a stream sets.
type deadlines struct{ set []time.Time }

func (d *deadlines) SetWriteDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

// TestStream_PushesClientWriteDeadlinePerWrite: every Read that hands
// fasthttp bytes to write (and the final EOF, after which it writes the
// stream's end) moves the client's write deadline WriteTimeout ahead, so a
// stalled client is cut off while a long, read stream never is.
func TestStream_PushesClientWriteDeadlinePerWrite(t *testing.T) {
	src := fixture(t, "chat-stream-text-include-usage.sse")
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset(src)
	d := &deadlines{}
	start := time.Now()
	reads := 0
	s.Reset(body, &rec, Options{Client: d, WriteTimeout: time.Minute})
	p := make([]byte, 4096)
	for {
		n, err := s.Read(p)
		if n > 0 {
			reads++
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	_ = s.CloseWithError(nil)
	if len(d.set) != reads+1 {
		t.Fatalf("%d deadlines set for %d writes and the end, want %d", len(d.set), reads, reads+1)
	}
	for _, at := range d.set {
		if at.Before(start.Add(time.Minute)) || at.After(time.Now().Add(time.Minute)) {
			t.Fatalf("deadline %v is not WriteTimeout after the write", at)
		}
	}
}

func TestStream_WithClientDeadline_ZeroAllocsPerEvent(t *testing.T) {
	src := fixture(t, "chat-stream-text-include-usage.sse")
	var s Stream
	var rec call.Record
	body := &memBody{}
	p := make([]byte, 4096)
	out := make([]byte, 0, len(src)+1024)
	d := &deadlines{set: make([]time.Time, 0, 1024)}
	allocs := testing.AllocsPerRun(50, func() {
		rec.Reset()
		body.Reset(src)
		d.set = d.set[:0]
		out = relayAll(&s, body, &rec, Options{Client: d, WriteTimeout: time.Second}, out[:0], p)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per stream, want 0", allocs)
	}
}
