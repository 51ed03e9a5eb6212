package sse

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
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
	if s.Err() != ErrEventTooLarge {
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
	if s.Err() != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v", s.Err())
	}
}
