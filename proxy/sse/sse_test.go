package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// collect reads every event, returning the concatenated Raw bytes, the data
// fields and the trailing rest.
func collect(t *testing.T, r io.Reader) (raw []byte, data []string, rest []byte) {
	t.Helper()
	s := NewScanner(r, make([]byte, 512), 1<<20)
	for s.Next() {
		ev := s.Event()
		raw = append(raw, ev.Raw...)
		if ev.HasData {
			data = append(data, string(ev.Data))
			if ev.DataOffset >= 0 && !bytes.Equal(ev.Raw[ev.DataOffset:ev.DataOffset+len(ev.Data)], ev.Data) {
				t.Fatalf("DataOffset %d does not point at data %q in %q", ev.DataOffset, ev.Data, ev.Raw)
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return raw, data, append([]byte(nil), s.Rest()...)
}

func TestScanner_SplitsEventsAndKeepsBytes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		data []string
		rest string
	}{
		{name: "lf", in: "data: a\n\ndata: b\n\n", data: []string{"a", "b"}},
		{name: "crlf", in: "data: a\r\n\r\ndata: b\r\n\r\n", data: []string{"a", "b"}},
		{name: "cr", in: "data: a\r\rdata: b\r\r", data: []string{"a", "b"}},
		{name: "no space after colon", in: "data:a\n\n", data: []string{"a"}},
		{name: "multi-line data joined", in: "data: a\ndata: b\n\n", data: []string{"a\nb"}},
		{name: "comments and event names", in: ": ping\n\nevent: x\ndata: {}\n\n", data: []string{"{}"}},
		{name: "unterminated tail kept", in: "data: a\n\ndata: partial", data: []string{"a"}, rest: "data: partial"},
		{name: "done", in: "data: [DONE]\n\n", data: []string{"[DONE]"}},
		{name: "empty", in: "", data: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, reader := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tt.in)},
				{"byte by byte", iotest.OneByteReader(strings.NewReader(tt.in))},
			} {
				raw, data, rest := collect(t, reader.r)
				if got := string(raw) + string(rest); got != tt.in {
					t.Errorf("%s: bytes changed: got %q want %q", reader.name, got, tt.in)
				}
				if strings.Join(data, "|") != strings.Join(tt.data, "|") {
					t.Errorf("%s: data %q want %q", reader.name, data, tt.data)
				}
				if string(rest) != tt.rest {
					t.Errorf("%s: rest %q want %q", reader.name, rest, tt.rest)
				}
			}
		})
	}
}

func TestScanner_GrowsForLargeEventsUpToLimit(t *testing.T) {
	big := "data: " + strings.Repeat("x", 5000) + "\n\n"
	raw, data, _ := collect(t, strings.NewReader(big))
	if string(raw) != big || len(data) != 1 {
		t.Fatalf("large event not returned whole")
	}
	s := NewScanner(strings.NewReader(big), make([]byte, 512), 1024)
	if s.Next() {
		t.Fatal("event over the limit was returned")
	}
	if !errors.Is(s.Err(), ErrEventTooLarge) {
		t.Fatalf("err = %v, want ErrEventTooLarge", s.Err())
	}
}

func TestScanner_ReadErrorIsReported(t *testing.T) {
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(io.ErrUnexpectedEOF))
	s := NewScanner(r, nil, 0)
	if !s.Next() || string(s.Event().Data) != "a" {
		t.Fatal("first event lost")
	}
	if s.Next() {
		t.Fatal("truncated event returned as complete")
	}
	if !errors.Is(s.Err(), io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", s.Err())
	}
}

// TestScanner_AnySplitOfTheStream_SameEvents feeds tricky streams in reads
// of every size: resuming a pending event must give the same events, bytes
// and fields as reading it whole (CR at the end of a read, multi-line data,
// event names split across reads).
func TestScanner_AnySplitOfTheStream_SameEvents(t *testing.T) {
	in := "event: a\r\ndata: one\r\n\r\n: c\rdata: x\rdata: y\r\rdata:z\n\nevent: e\ndata\n\ndata: [DONE]\n\ndata: tail"
	type ev struct{ raw, data, name string }
	scan := func(r io.Reader) (evs []ev, rest string) {
		s := NewScanner(r, make([]byte, 512), 1<<20)
		for s.Next() {
			e := s.Event()
			evs = append(evs, ev{string(e.Raw), string(e.Data), string(e.Name)})
			if e.DataOffset >= 0 && string(e.Raw[e.DataOffset:e.DataOffset+len(e.Data)]) != string(e.Data) {
				t.Fatalf("DataOffset %d does not point at %q in %q", e.DataOffset, e.Data, e.Raw)
			}
		}
		if s.Err() != nil {
			t.Fatal(s.Err())
		}
		return evs, string(s.Rest())
	}
	want, wantRest := scan(strings.NewReader(in))
	if len(want) != 5 || wantRest != "data: tail" {
		t.Fatalf("whole read: %q rest %q", want, wantRest)
	}
	for n := 1; n <= len(in); n++ {
		got, rest := scan(&chunkReader{s: in, n: n})
		if fmt.Sprint(got) != fmt.Sprint(want) || rest != wantRest {
			t.Fatalf("reads of %d bytes: %q rest %q, want %q rest %q", n, got, rest, want, wantRest)
		}
	}
}

// TestScanner_LargeEventInSmallReads_ScannedOnce is the regression test for
// re-scanning a pending event from its start on every read: 4 MiB of short
// data lines in 1 KiB reads took ~5 s that way (quadratic, ~500x the time
// of one whole read); scanned once it costs a few times a whole read. The
// two are timed in the same process, so the bound holds on slow machines
// and under -race.
func TestScanner_LargeEventInSmallReads_ScannedOnce(t *testing.T) {
	in := "data: " + strings.Repeat(strings.Repeat("x", 58)+"\ndata: ", (4<<20)/64) + "end\n\n"
	s := NewScanner(nil, nil, DefaultMaxEvent)
	best := func(readSize int) time.Duration {
		d := time.Duration(1 << 62)
		for range 3 {
			s.Reset(&chunkReader{s: in, n: readSize}, nil, DefaultMaxEvent)
			start := time.Now()
			if !s.Next() || len(s.Event().Raw) != len(in) {
				t.Fatalf("event not returned whole: %v", s.Err())
			}
			d = min(d, time.Since(start))
		}
		return d
	}
	whole, small := best(len(in)), best(1<<10)
	if small > 50*whole {
		t.Fatalf("a 4 MiB event in 1 KiB reads took %v, %.0fx one whole read (%v): the pending event is re-scanned on every read",
			small, float64(small)/float64(whole), whole)
	}
	t.Logf("1 KiB reads %v, whole %v", small, whole)
}
