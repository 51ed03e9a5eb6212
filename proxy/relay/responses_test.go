package relay

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/tap"
)

var responsesOptions = Options{Observe: tap.ObserveResponseEvent, ObserveContent: tap.ObserveResponseContent}

func responsesFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", "openai-responses", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// The Responses API frames each event with "event:" and "data:" and ends
// without [DONE]: the relay passes every byte, and its Observe hook reads
// the usage of response.completed.
func TestStream_ResponsesEvents_PassedByteForByte_UsageFromCompleted(t *testing.T) {
	src := responsesFixture(t, "stream-text-cached-tokens.sse")
	var s Stream
	var rec call.Record
	rec.Content = call.Content{Capture: true, Max: 1 << 10}
	body := &memBody{}
	body.Reset(src)
	got := relayAll(&s, body, &rec, responsesOptions, nil, make([]byte, 4096))
	if !bytes.Equal(got, src) {
		t.Fatal("bytes changed")
	}
	u := rec.Usage
	if u.InputTokens != 1515 || u.CachedInputTokens != 1390 || u.OutputTokens != 8 || rec.Chunks != 15 || rec.ChunksSent != 15 {
		t.Fatalf("record %+v", rec)
	}
	if len(rec.Content.Choices) != 1 || len(rec.Content.Choices[0]) == 0 {
		t.Fatalf("content %q", rec.Content.Choices)
	}
}

// A Responses stream's lifecycle events carry the whole response object
// (2 KiB and more): the scanner's 1 KiB buffer grows once for that stream
// (see scanBuf), and nothing else allocates, per event or per stream.
func TestStream_ResponsesEvents_ZeroAllocsPerEvent(t *testing.T) {
	src := responsesFixture(t, "stream-reasoning-summary.sse")
	var s Stream
	var rec call.Record
	body := &memBody{}
	p := make([]byte, 4096)
	out := make([]byte, 0, len(src)+1024)
	opts := Options{Observe: tap.ObserveResponseEvent}
	allocs := testing.AllocsPerRun(50, func() {
		rec.Reset()
		body.Reset(src)
		out = relayAll(&s, body, &rec, opts, out[:0], p)
	})
	if allocs > 1 {
		t.Fatalf("%v allocs per stream of 144 events, want at most the scanner's one growth", allocs)
	}
}

func BenchmarkStream_Responses(b *testing.B) {
	src := responsesFixture(b, "stream-reasoning-summary.sse")
	events := bytes.Count(src, []byte("\n\n"))
	var s Stream
	var rec call.Record
	body := &memBody{}
	p := make([]byte, 4096)
	out := make([]byte, 0, len(src)+1024)
	opts := Options{Observe: tap.ObserveResponseEvent}
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		rec.Reset()
		body.Reset(src)
		out = relayAll(&s, body, &rec, opts, out[:0], p)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}
