package json

import (
	"bytes"
	stdjson "encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// fixtureDocs are the JSON documents of the recorded wire traffic (bodies
// and every SSE data payload), the walkers' real diet.
func fixtureDocs(tb testing.TB) [][]byte {
	tb.Helper()
	root := filepath.Join("..", "..", "..", "bench", "fixtures", "wire")
	paths, _ := filepath.Glob(filepath.Join(root, "*", "*"))
	var docs [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		switch {
		case strings.HasSuffix(p, ".json"):
			docs = append(docs, b)
		case strings.HasSuffix(p, ".sse") || strings.HasSuffix(p, ".jsonl"):
			docs = append(docs, streamSample(b)...)
		}
	}
	if len(docs) == 0 {
		tb.Fatalf("no fixtures under %s", root)
	}
	return docs
}

// streamSample is a few data payloads of a recorded stream: the first two
// (role, first delta) and the last three (finish, usage, the end). Every
// chunk of every stream would make a seed corpus of a thousand near
// duplicates, and CI's few seconds per target would go to replaying them.
func streamSample(b []byte) [][]byte {
	var all [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimPrefix(line, []byte("data: "))
		if len(line) > 0 && (line[0] == '{' || line[0] == '[') {
			all = append(all, line)
		}
	}
	if len(all) <= 5 {
		return all
	}
	return append(all[:2:2], all[len(all)-3:]...)
}

// member is one member of an object (Key empty for array elements) as the
// standard library reads it: the oracle the walkers are held to.
type member struct {
	Key string
	Raw string
}

// stdMembers lists the top-level members (or elements) of the object (or
// array) b with encoding/json, in order, each value's bytes as sent.
func stdMembers(tb testing.TB, b []byte) []member {
	tb.Helper()
	dec := stdjson.NewDecoder(bytes.NewReader(b))
	open, err := dec.Token()
	if err != nil {
		tb.Fatalf("std token: %v", err)
	}
	var out []member
	for dec.More() {
		var m member
		if open == stdjson.Delim('{') {
			k, err := dec.Token()
			if err != nil {
				tb.Fatalf("std key: %v", err)
			}
			m.Key = k.(string)
		}
		var raw stdjson.RawMessage
		if err := dec.Decode(&raw); err != nil {
			tb.Fatalf("std value: %v", err)
		}
		m.Raw = string(raw)
		out = append(out, m)
	}
	return out
}

func kindOfStd(raw string) Kind {
	switch raw[0] {
	case '{':
		return Object
	case '[':
		return Array
	case '"':
		return String
	case 'n':
		return Null
	case 't':
		return True
	case 'f':
		return False
	}
	return Number
}

// FuzzWalk holds Members, Elements, MemberSpan, AppendString, Int and Float
// to the standard library on every valid document: the same members in the
// same order, each value's bytes exactly as sent and of the right kind,
// keys and strings decoded alike, and a cut member leaving valid JSON with
// exactly the others. On invalid input they may stop early but never panic
// or run past the input.
func FuzzWalk(f *testing.F) {
	for _, d := range fixtureDocs(f) {
		f.Add(d)
	}
	for _, s := range []string{
		`{}`, `[]`, ` { "a" : 1 , "b" : [ ] } `, `{"a\"b":"\u00e9\ud83d\ude00","c":-0.5e+10}`, `{"usage":null}`,
		`{"a":"\ud800"}`, `[1,"x",{"y":[null,true,false]}]`, `{"a":12345678901234567890}`, `{"a":`, `{"a" 1}`,
		`{"a":1,}`, `{"\u0075sage":{}}`, "{\"a\":\"\xff\"}", `{"a":tru}`, `[,1]`, `{"a":{"b":{"c":{"d":[[[[]]]]}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		valid, std := Valid(b), stdjson.Valid(b)
		// sonic's Valid lets raw control characters through inside strings
		// (encoding/json, like OpenAI's own parser, refuses them): a body
		// with one passes Loom and gets the upstream's 400. Any other
		// disagreement is a bug.
		if valid != std && !(valid && stdjson.Valid(blankControls(b))) {
			t.Fatalf("Valid says %v, encoding/json says %v for %q", valid, std, b)
		}
		walk(t, b, valid && std, 0)
		if !bytes.Equal(b, orig) {
			t.Fatal("the walkers changed their input")
		}
	})
}

func blankControls(b []byte) []byte {
	out := append([]byte(nil), b...)
	for i, c := range out {
		if c < 0x20 {
			out[i] = ' '
		}
	}
	return out
}

// walk checks b (a whole document when valid) and recurses into its
// objects and arrays.
func walk(t *testing.T, b []byte, valid bool, depth int) {
	var m Members
	isObj := m.Reset(b)
	var e Elements
	isArr := e.Reset(b)
	if !valid {
		// Only safety: bounded, in-range results.
		for n := 0; m.Next() && n <= len(b); n++ {
			_, _ = m.Key(), m.QuotedKey()
			s, end := m.MemberSpan()
			if s < 0 || end > len(b) || s > end {
				t.Fatalf("member span [%d,%d) outside %d bytes", s, end, len(b))
			}
		}
		for n := 0; e.Next() && n <= len(b); n++ {
			_ = e.Value()
		}
		return
	}
	trimmed := bytes.TrimSpace(b)
	if isObj != (trimmed[0] == '{') || isArr != (trimmed[0] == '[') {
		t.Fatalf("Reset: object %v array %v for %q", isObj, isArr, b)
	}
	switch {
	case isObj:
		want := stdMembers(t, b)
		i := 0
		for ; m.Next(); i++ {
			if i >= len(want) {
				t.Fatalf("walker found more members than the %d in %q", len(want), b)
			}
			key, ok := AppendString(nil, m.QuotedKey())
			if !ok {
				t.Fatalf("key %q not decodable", m.QuotedKey())
			}
			if utf8.Valid(key) && string(key) != want[i].Key {
				t.Fatalf("member %d: key %q, encoding/json %q", i, key, want[i].Key)
			}
			if string(m.Value()) != want[i].Raw {
				t.Fatalf("member %d (%q): value %q, encoding/json %q", i, want[i].Key, m.Value(), want[i].Raw)
			}
			if m.Kind() != kindOfStd(want[i].Raw) && !(m.Kind() == False && want[i].Raw == "false") {
				t.Fatalf("member %d: kind %v for %q", i, m.Kind(), want[i].Raw)
			}
			if s, end := m.ValueSpan(); string(b[s:end]) != want[i].Raw {
				t.Fatalf("member %d: value span %q", i, b[s:end])
			}
			if depth == 0 && len(b) <= 8<<10 {
				// Re-decoding the document once per member is quadratic:
				// held to the top level of small documents, as the relay
				// cuts usage from a chunk.
				checkCut(t, b, &m, want, i)
			}
			checkScalar(t, m.Kind(), m.Value())
			if depth < 8 && (m.Kind() == Object || m.Kind() == Array) {
				walk(t, m.Value(), true, depth+1)
			}
		}
		if m.Err() != nil || i != len(want) {
			t.Fatalf("walked %d of %d members, err %v, in %q", i, len(want), m.Err(), b)
		}
		if IsEmptyObject(trimmed) != (len(want) == 0) {
			t.Fatalf("IsEmptyObject(%q) wrong", trimmed)
		}
	case isArr:
		want := stdMembers(t, b)
		i := 0
		for ; e.Next(); i++ {
			if i >= len(want) || string(e.Value()) != want[i].Raw {
				t.Fatalf("element %d: %q, encoding/json %v", i, e.Value(), want)
			}
			checkScalar(t, e.Kind(), e.Value())
			if depth < 8 && (e.Kind() == Object || e.Kind() == Array) {
				walk(t, e.Value(), true, depth+1)
			}
		}
		if e.Err() != nil || i != len(want) {
			t.Fatalf("walked %d of %d elements, err %v, in %q", i, len(want), e.Err(), b)
		}
		if IsEmptyArray(trimmed) != (len(want) == 0) {
			t.Fatalf("IsEmptyArray(%q) wrong", trimmed)
		}
	default:
		checkScalar(t, kindOfStd(string(trimmed)), trimmed)
	}
}

// checkCut removes member i with MemberSpan, as the relay removes usage:
// the rest must be valid JSON holding exactly the other members, bytes
// unchanged.
func checkCut(t *testing.T, b []byte, m *Members, want []member, i int) {
	s, end := m.MemberSpan()
	cut := append(append([]byte(nil), b[:s]...), b[end:]...)
	if !stdjson.Valid(cut) {
		t.Fatalf("cutting member %d (%q) of %q leaves invalid JSON %q", i, want[i].Key, b, cut)
	}
	got := stdMembers(t, cut)
	rest := append(append([]member(nil), want[:i]...), want[i+1:]...)
	if len(got) != len(rest) {
		t.Fatalf("cutting member %d of %q leaves %v", i, b, got)
	}
	for j := range got {
		if got[j] != rest[j] {
			t.Fatalf("cutting member %d of %q changed member %v into %v", i, b, rest[j], got[j])
		}
	}
}

// checkScalar holds AppendString, Int and Float to encoding/json and
// strconv for one valid value.
func checkScalar(t *testing.T, k Kind, v []byte) {
	switch k {
	case String:
		got, ok := AppendString(nil, v)
		if !ok {
			t.Fatalf("AppendString refused the valid string %q", v)
		}
		var want string
		if err := stdjson.Unmarshal(v, &want); err != nil {
			t.Fatal(err)
		}
		// encoding/json turns invalid UTF-8 into U+FFFD; the walker keeps
		// the bytes as sent (a model name reaches the upstream unchanged).
		if utf8.Valid(v) && string(got) != want {
			t.Fatalf("AppendString(%q) = %q, encoding/json %q", v, got, want)
		}
	case Number:
		n, ok := Int(v)
		want, err := strconv.ParseInt(string(v), 10, 64)
		if ok && (err != nil || n != want) {
			t.Fatalf("Int(%q) = %d, strconv %d (%v)", v, n, want, err)
		}
		if !ok && err == nil && len(v) <= 18 {
			t.Fatalf("Int refused the integer %q", v)
		}
		x, ok := Float(v)
		wantF, err := strconv.ParseFloat(string(v), 64)
		if ok != (err == nil) || (ok && x != wantF) {
			t.Fatalf("Float(%q) = %v %v, strconv %v %v", v, x, ok, wantF, err)
		}
	}
}

// FuzzAppendQuote: whatever the string, the quoted form is valid JSON that
// decodes (by encoding/json and by AppendString) to the string, with each
// invalid UTF-8 byte as U+FFFD.
func FuzzAppendQuote(f *testing.F) {
	for _, s := range []string{"", "gpt-4o", "a\"b\\c\n\r\t\x00\x1f", "é😀", "\xff\xfe", "\xed\xa0\x80", "\u2028\u2029", "</script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := AppendQuote([]byte("prefix"), s)
		if !bytes.HasPrefix(q, []byte("prefix")) {
			t.Fatal("AppendQuote lost dst")
		}
		q = q[len("prefix"):]
		if !Valid(q) || !stdjson.Valid(q) {
			t.Fatalf("AppendQuote(%q) = %q: not valid JSON", s, q)
		}
		var want strings.Builder
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			want.WriteRune(r) // RuneError for an invalid byte
			i += size
		}
		var std string
		if err := stdjson.Unmarshal(q, &std); err != nil || std != want.String() {
			t.Fatalf("AppendQuote(%q) = %q decodes to %q (%v)", s, q, std, err)
		}
		if got, ok := AppendString(nil, q); !ok || string(got) != want.String() {
			t.Fatalf("AppendString(AppendQuote(%q)) = %q %v", s, got, ok)
		}
	})
}
