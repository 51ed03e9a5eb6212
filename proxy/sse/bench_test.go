package sse

import (
	"io"
	"strings"
	"testing"
)

// chunkReader hands out at most n bytes per Read, as a slow upstream (or a
// hostile one) delivers a large event in small TCP segments.
type chunkReader struct {
	s string
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.s) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.n, len(r.s))
	copy(p, r.s[:n])
	r.s = r.s[n:]
	return n, nil
}

// BenchmarkScanner_LargeEventSmallReads scans one large event that arrives
// in 1 KiB reads. A scanner that re-scans the pending event from its start
// on every read is quadratic in the event's size; one that resumes where it
// stopped is linear.
func BenchmarkScanner_LargeEventSmallReads(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}, {"4MiB", 4 << 20}} {
		// Many short data lines (a worst case for per-line work) and one
		// long line (a worst case for finding the end of a line).
		lines := "data: " + strings.Repeat(strings.Repeat("x", 58)+"\ndata: ", size.n/64) + "end\n\n"
		oneLine := "data: " + strings.Repeat("y", size.n) + "\n\n"
		for _, in := range []struct{ name, s string }{{"lines", lines}, {"one-line", oneLine}} {
			b.Run(size.name+"/"+in.name, func(b *testing.B) {
				s := NewScanner(nil, make([]byte, 16<<10), DefaultMaxEvent)
				b.SetBytes(int64(len(in.s)))
				b.ReportAllocs()
				for b.Loop() {
					s.Reset(&chunkReader{s: in.s, n: 1 << 10}, nil, DefaultMaxEvent)
					if !s.Next() || len(s.Event().Raw) != len(in.s) {
						b.Fatalf("event not returned whole: %v", s.Err())
					}
				}
			})
		}
	}
}
