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

// An SSE comment after the stream's last event (the mock's x-mock-timing report, which the k6 stream
// scenario reads through Loom) reaches the client byte for byte, also when Loom cuts the usage chunk it
// asked for, and is not counted as a chunk.
func TestStream_CommentAfterDone_ReachesClientUnchanged(t *testing.T) {
	comment := []byte(": x-mock-timing head-ms=0.041 first-event-ms=20.113 service-ms=128.920\n\n")
	src := append(fixture(t, "chat-stream-text-include-usage.sse"), comment...)
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset(src)
	got := relayAll(&s, body, &rec, Options{DropUsage: true}, nil, make([]byte, 4096))
	if !bytes.HasSuffix(got, comment) || bytes.Count(got, []byte("x-mock-timing")) != 1 {
		t.Fatalf("the comment did not reach the client unchanged; the stream ends %q", got[max(0, len(got)-120):])
	}
	if rec.Chunks != 33 || rec.Usage.TotalTokens != 44 {
		t.Fatalf("record %+v: the comment changed what the tap read", rec)
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

// A stream the client reads as fast as it comes sets the client's write
// deadline once, not per event (each move is a timer operation), and every
// write still has at least WriteTimeout: a stalled client is cut off while
// a long, read stream never is.
func TestStream_ClientWriteDeadline_AtLeastWriteTimeout_MovedRarely(t *testing.T) {
	src := fixture(t, "chat-stream-text-include-usage.sse")
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset(src)
	d := &deadlines{}
	start := time.Now()
	s.Reset(body, &rec, Options{Client: d, WriteTimeout: time.Minute})
	p := make([]byte, 4096)
	reads := 0
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
	if reads < 3 || len(d.set) != 1 {
		t.Fatalf("%d deadlines set for %d writes and the end, want 1", len(d.set), reads)
	}
	if at := d.set[0]; at.Before(start.Add(time.Minute)) || at.After(time.Now().Add(time.Minute+time.Minute/8)) {
		t.Fatalf("deadline %v is not between WriteTimeout and 9/8 of it after the write", at)
	}
}

// Once less than WriteTimeout is left (the upstream was silent a while),
// the next write moves the deadline: the wait for the upstream never
// counts against the client.
func TestStream_ClientWriteDeadline_MovedOnceLessThanWriteTimeoutLeft(t *testing.T) {
	const wt = 40 * time.Millisecond
	src := fixture(t, "chat-stream-text-include-usage.sse")
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset(src)
	d := &deadlines{}
	s.Reset(body, &rec, Options{Client: d, WriteTimeout: wt})
	p := make([]byte, 4096)
	if _, err := s.Read(p); err != nil {
		t.Fatal(err)
	}
	// Longer than the eighth of slack: less than wt is left now.
	for at := time.Now(); time.Since(at) <= wt/8; {
		time.Sleep(wt / 8)
	}
	start := time.Now()
	if _, err := s.Read(p); err != nil {
		t.Fatal(err)
	}
	if len(d.set) != 2 || d.set[1].Before(start.Add(wt)) {
		t.Fatalf("deadlines %v: the second write, begun %v, needs one at least %v after it", d.set, start, wt)
	}
}

// countingWriter records each Write as fasthttp's chunked writer would
// frame it: one chunk per call.
type countingWriter struct {
	out    []byte
	writes int
	err    error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.writes++
	w.out = append(w.out, p...)
	return len(p), nil
}

// fasthttp writes a stream with WriteTo: the bytes are Read's, one Write
// per event, and the record's accounting is the same.
func TestStream_WriteTo_SameBytesAndRecordAsRead_OneWritePerEvent(t *testing.T) {
	for _, name := range []string{"chat-stream-text-include-usage.sse", "chat-stream-logprobs-content.sse"} {
		src := fixture(t, name)
		for _, drop := range []bool{false, true} {
			var viaRead, viaWriteTo call.Record
			var s Stream
			body := &memBody{}
			body.Reset(src)
			want := relayAll(&s, body, &viaRead, Options{DropUsage: drop}, nil, make([]byte, 4096))

			body.Reset(src)
			s.Reset(body, &viaWriteTo, Options{DropUsage: drop})
			w := &countingWriter{}
			n, err := s.WriteTo(w)
			_ = s.CloseWithError(nil)
			if err != nil || n != int64(len(w.out)) || !bytes.Equal(w.out, want) {
				t.Fatalf("%s drop=%v: WriteTo wrote %d (%v) bytes %q, Read gave %q", name, drop, n, err, w.out, want)
			}
			if w.writes != int(viaWriteTo.ChunksSent) || viaWriteTo.ChunksSent != viaRead.ChunksSent ||
				viaWriteTo.ClientBytes != viaRead.ClientBytes || viaWriteTo.Chunks != viaRead.Chunks ||
				viaWriteTo.Usage != viaRead.Usage || viaWriteTo.ClientDisconnected || viaWriteTo.Outcome != viaRead.Outcome {
				t.Fatalf("%s drop=%v: %d writes; record via WriteTo %+v, via Read %+v", name, drop, w.writes, viaWriteTo, viaRead)
			}
		}
	}
}

// A write that fails (the client left) ends WriteTo with its error, and the
// close that follows records the client as gone and drains the upstream.
func TestStream_WriteTo_ClientGone_RecordedAndDrained(t *testing.T) {
	src := fixture(t, "chat-stream-text-include-usage.sse")
	var s Stream
	var rec call.Record
	body := &memBody{}
	body.Reset(src)
	s.Reset(body, &rec, Options{Drain: time.Second})
	gone := errors.New("broken pipe")
	_, err := s.WriteTo(&countingWriter{err: gone})
	_ = s.CloseWithError(err)
	if !errors.Is(err, gone) || !rec.ClientDisconnected || rec.Outcome != call.OutcomeClientGone || !rec.DrainComplete || !body.closed {
		t.Fatalf("err %v; record %+v; upstream closed %v", err, rec, body.closed)
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
