package sse

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// splitReader hands out its input in pieces whose sizes come from cuts, as
// a network would: the scanner must not care where reads end.
type splitReader struct {
	b    []byte
	cuts []byte
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := len(r.b)
	if len(r.cuts) > 0 {
		n = int(r.cuts[0])%len(r.b) + 1
		r.cuts = r.cuts[1:]
	}
	n = copy(p, r.b[:min(n, len(r.b))])
	r.b = r.b[n:]
	return n, nil
}

// refEvent is what the SSE spec says one event holds.
type refEvent struct {
	raw, data, name  string
	hasData, hasName bool
}

// reference splits a whole stream into events the slow, obvious way: the
// oracle for the scanner.
func reference(in []byte) (events []refEvent, rest []byte) {
	var cur refEvent
	var dataLines []string
	start := 0
	for i := 0; i < len(in); {
		end := bytes.IndexAny(in[i:], "\r\n")
		if end < 0 {
			break // an unterminated line: the rest
		}
		lineEnd := i + end
		next := lineEnd + 1
		if in[lineEnd] == '\r' && next < len(in) && in[next] == '\n' {
			next++
		}
		line := in[i:lineEnd]
		i = next
		if len(line) == 0 {
			cur.raw = string(in[start:next])
			if len(dataLines) > 0 {
				cur.hasData = true
				cur.data = string(bytes.Join(toBytes(dataLines), []byte("\n")))
			}
			events = append(events, cur)
			cur, dataLines, start = refEvent{}, nil, next
			continue
		}
		name, value := line, []byte(nil)
		if c := bytes.IndexByte(line, ':'); c >= 0 {
			name, value = line[:c], line[c+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(name) {
		case "data":
			dataLines = append(dataLines, string(value))
		case "event":
			cur.name, cur.hasName = string(value), true
		}
	}
	return events, in[start:]
}

func toBytes(s []string) [][]byte {
	out := make([][]byte, len(s))
	for i := range s {
		out[i] = []byte(s[i])
	}
	return out
}

// FuzzScanner holds the scanner to the reference on any bytes, cut into
// reads anywhere: the same events with the same data and names, Raw
// re-concatenating to the input byte for byte (what the relay forwards),
// and an event larger than the limit ending the scan with
// ErrEventTooLarge after a prefix of the input, never a panic or a lost
// byte before it.
func FuzzScanner(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("..", "..", "bench", "fixtures", "wire", "*", "*.sse"))
	if len(paths) == 0 {
		f.Fatal("no recorded streams")
	}
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{byte(i), 3, 200, 1, 17}, uint16(0))
	}
	for _, s := range []string{
		"data: a\n\n", "data: a\r\n\r\n", "data: a\r\rdata: b\r", "data: a\r", "data:a\ndata:b\ndata\n\n",
		": ping\n\nevent: x\ndata: {}\n\n", "data: [DONE]\n\n", "data: partial", "\n\n\r\r\r\n\r\n", "event\nid: 1\n\n",
	} {
		f.Add([]byte(s), []byte{0, 1, 0}, uint16(0))
		f.Add([]byte(s), []byte(nil), uint16(5))
	}
	f.Fuzz(func(t *testing.T, in, cuts []byte, limit uint16) {
		// A limit below the scanner's 512-byte minimum buffer still bounds
		// events: events up to the buffer fit, larger ones hit the limit.
		maxEvent := 1 << 20
		if limit != 0 {
			maxEvent = int(limit)
		}
		want, wantRest := reference(in)
		sc := NewScanner(&splitReader{b: in, cuts: cuts}, make([]byte, 512), maxEvent)
		var raw []byte
		n := 0
		for sc.Next() {
			ev := sc.Event()
			if n >= len(want) {
				t.Fatalf("extra event %q", ev.Raw)
			}
			w := want[n]
			if string(ev.Raw) != w.raw || ev.HasData != w.hasData || string(ev.Data) != w.data ||
				(ev.Name != nil) != w.hasName || string(ev.Name) != w.name {
				t.Fatalf("event %d: raw %q data %v %q name %q; want %+v", n, ev.Raw, ev.HasData, ev.Data, ev.Name, w)
			}
			if ev.DataOffset >= 0 && string(ev.Raw[ev.DataOffset:ev.DataOffset+len(ev.Data)]) != w.data {
				t.Fatalf("event %d: DataOffset %d does not point at the data", n, ev.DataOffset)
			}
			if ev.IsDone() != (w.hasData && w.data == "[DONE]") {
				t.Fatalf("event %d: IsDone wrong", n)
			}
			raw = append(raw, ev.Raw...)
			n++
		}
		raw = append(raw, sc.Rest()...)
		switch err := sc.Err(); {
		case err == nil:
			if n != len(want) || !bytes.Equal(raw, in) || !bytes.Equal(sc.Rest(), wantRest) {
				t.Fatalf("%d of %d events; pass-through %q, want %q (rest %q)", n, len(want), raw, in, sc.Rest())
			}
		case errors.Is(err, ErrEventTooLarge):
			if !bytes.HasPrefix(in, raw) {
				t.Fatalf("before the too-large event, pass-through %q is not a prefix of %q", raw, in)
			}
			// The buffer starts at 512 bytes and grows to the limit; an
			// event shorter than that always fits.
			if n < len(want) && len(want[n].raw) < max(512, maxEvent) {
				t.Fatalf("event %d of %d bytes refused as too large (limit %d)", n, len(want[n].raw), maxEvent)
			}
		default:
			t.Fatalf("scan: %v", err)
		}
	})
}
