package json

import (
	"strings"
	"testing"
)

func TestMembers_WalksTopLevelOnly(t *testing.T) {
	doc := []byte(` { "a" : 1, "b":{"a":2,"c":[1,{"x":"}"}]}, "c":"s\"}", "d":null ,"e":[true,false] } `)
	var m Members
	if !m.Reset(doc) {
		t.Fatal("reset failed")
	}
	var keys []string
	var kinds []Kind
	for m.Next() {
		keys = append(keys, string(m.Key()))
		kinds = append(kinds, m.Kind())
	}
	if m.Err() != nil {
		t.Fatal(m.Err())
	}
	want := []string{"a", "b", "c", "d", "e"}
	wantKinds := []Kind{Number, Object, String, Null, Array}
	for i := range want {
		if i >= len(keys) || keys[i] != want[i] || kinds[i] != wantKinds[i] {
			t.Fatalf("keys %v kinds %v", keys, kinds)
		}
	}
}

func TestMembers_MemberSpanRemovesCleanly(t *testing.T) {
	tests := []struct {
		name, in, key, want string
	}{
		{"middle", `{"a":1,"usage":null,"b":2}`, "usage", `{"a":1,"b":2}`},
		{"last", `{"a":1,"usage":{"x":1}}`, "usage", `{"a":1}`},
		{"first", `{"usage":null,"a":1}`, "usage", `{"a":1}`},
		{"only", `{"usage":null}`, "usage", `{}`},
		{"spaces", `{"a":1 , "usage" : null }`, "usage", `{"a":1 }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Members
			m.Reset([]byte(tt.in))
			for m.Next() {
				if string(m.Key()) == tt.key {
					s, e := m.MemberSpan()
					got := tt.in[:s] + tt.in[e:]
					if got != tt.want {
						t.Fatalf("got %s want %s", got, tt.want)
					}
					if !Valid([]byte(got)) {
						t.Fatalf("result is not JSON: %s", got)
					}
					return
				}
			}
			t.Fatal("key not found")
		})
	}
}

func TestAppendString_DecodesEscapes(t *testing.T) {
	got, ok := AppendString(nil, []byte(`"a\"b\\c\u00e9\ud83d\ude00\n"`))
	if !ok || string(got) != "a\"b\\cé😀\n" {
		t.Fatalf("got %q ok=%v", got, ok)
	}
}

func TestAppendQuote_RoundTrips(t *testing.T) {
	for _, s := range []string{"plain", "quote\"back\\slash", "ctl\x01\r\n\t", "é😀", "bad\xffutf8"} {
		q := AppendQuote(nil, s)
		if !Valid(q) {
			t.Fatalf("%q quoted to invalid JSON %s", s, q)
		}
		var back string
		if err := Unmarshal(q, &back); err != nil {
			t.Fatal(err)
		}
		if back != s && s != "bad\xffutf8" {
			t.Fatalf("round trip %q -> %q", s, back)
		}
	}
}

// Bytes quote exactly as the same string does, and with room in dst they
// cost nothing: the translators quote upstream bytes on every event.
func TestAppendQuote_BytesAsTheString_NoAllocation(t *testing.T) {
	in := "long plain run of text, then quote\"back\\slash ctl\x01\r\n\t é😀 bad\xffutf8 cut\xe2\x82"
	if s, b := AppendQuote(nil, in), AppendQuote(nil, []byte(in)); string(s) != string(b) || !Valid(b) {
		t.Fatalf("string %s, bytes %s", s, b)
	}
	src, dst := []byte(in), make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { dst = AppendQuote(dst[:0], src) }); n != 0 {
		t.Fatalf("AppendQuote of bytes: %v allocations, want 0", n)
	}
}

func TestInt(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "42": 42, "-7": -7} {
		if n, ok := Int([]byte(in)); !ok || n != want {
			t.Errorf("Int(%s) = %d %v", in, n, ok)
		}
	}
	for _, in := range []string{"1.5", "1e3", "", "-", "99999999999999999999"} {
		if _, ok := Int([]byte(in)); ok {
			t.Errorf("Int(%q) accepted", in)
		}
	}
}

// Found by FuzzWalk: an unterminated string value was reported as a String
// ending at -1, and Value() panicked (a stream chunk cut mid-string reached
// the tap that way).
func TestMembers_UnterminatedStringValue_StopsWithSyntaxError(t *testing.T) {
	for _, doc := range []string{`{"id":"abc`, `{"00":"0`, `{"a":["x`, `["x`} {
		var m Members
		if m.Reset([]byte(doc)) {
			for m.Next() {
				_ = m.Value()
			}
			if m.Err() == nil {
				t.Errorf("%q: no syntax error", doc)
			}
		}
		var e Elements
		if e.Reset([]byte(doc)) {
			for e.Next() {
				_ = e.Value()
			}
			if e.Err() == nil {
				t.Errorf("%q: no syntax error", doc)
			}
		}
	}
}

// Found by FuzzWalk: sonic's Valid does not look behind a backslash, so a
// model like "gpt-4o\q" passed as JSON while Loom read the model as the
// prefix before the bad escape.
func TestValid_RefusesInvalidEscapes(t *testing.T) {
	for _, doc := range []string{`"\0"`, `"\q"`, `{"model":"gpt-4o\q"}`, `"\u12"`, `"\u12g4"`, `["\`} {
		if Valid([]byte(doc)) {
			t.Errorf("Valid(%q) = true", doc)
		}
	}
	for _, doc := range []string{`"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`, `{"a\\":"\\"}`, "\"\x01\""} {
		if !Valid([]byte(doc)) {
			t.Errorf("Valid(%q) = false", doc)
		}
	}
}

// BenchmarkValid prices the escape check Valid adds to sonic's: one
// IndexByte on a body without backslashes, a hop per escape on one with.
func BenchmarkValid(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"plain", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Explain the difference between TCP and UDP in two sentences, with one example each."}],"temperature":0.2,"max_tokens":200,"stream":true}`},
		{"escapes", `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant.\nAnswer \"briefly\".\n"},{"role":"user","content":"Line one\nLine two\tTabbed \u00e9 and a path C:\\temp\\x"}],"stream":true}`},
	} {
		body := []byte(bc.body)
		b.Run(bc.name+"/sonic", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_ = api.Valid(body)
			}
		})
		b.Run(bc.name+"/escapes", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_ = validEscapes(body)
			}
		})
	}
}

// Found by FuzzWalk: sonic's Valid reads past the end of the slice for a
// document that is one literal, so a prefix of "null" was valid when the
// rest of it lay in memory after the slice.
func TestValid_LiteralPrefix_RefusedWhateverFollowsInMemory(t *testing.T) {
	for _, full := range []string{"null", "true", "false", " null ", "nullx"} {
		for n := 1; n <= len(full); n++ {
			b := []byte(full)[:n]
			want := stdValid(string(b))
			if got := Valid(b); got != want {
				t.Errorf("Valid(%q) with %q in memory = %v, want %v", b, full, got, want)
			}
		}
	}
}

func stdValid(s string) bool {
	switch strings.TrimSpace(s) {
	case "null", "true", "false":
		return true
	}
	return false
}

// stringEndByByte is the byte-at-a-time definition stringEnd must agree with.
func stringEndByByte(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j + 1
		case '\\':
			j++
		}
	}
	return -1
}

// containerEndByByte is the byte-at-a-time definition of where a container
// opening at 0 ends, as valueEnd found it before it jumped through long
// strings.
func containerEndByByte(b []byte) int {
	depth := 0
	for j := 0; j < len(b); j++ {
		switch b[j] {
		case '"':
			j = stringEndByByte(b, j)
			if j < 0 {
				return -1
			}
			j--
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1
			}
		}
	}
	return -1
}

// FuzzStringEnd_AgreesWithByteAtATime holds valueEnd's string skipping
// (stepped, then jumped from quote to quote) to the byte-at-a-time
// definition, for a string value and for strings inside a container.
func FuzzStringEnd_AgreesWithByteAtATime(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `"a\\\\"b"`, `"a\\\"b"c"`, `"\\`, `"abc`, `""`, `"\u0022"x"`, `"x\\\\\\\\"`,
		`"` + strings.Repeat("a", 126) + `\\\"x\\"`, `"` + strings.Repeat("b", 127) + `\\"x"`, `"` + strings.Repeat("c", 135) + `\"` + strings.Repeat("d", 70) + `"`,
		`"` + strings.Repeat(`\\`, 70) + `"`, `"` + strings.Repeat("e", 128) + `"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != '"' {
			return
		}
		want := stringEndByByte(b, 0)
		if got := stringEnd(b, 0); got != want {
			t.Fatalf("stringEnd %q: got %d, want %d", b, got, want)
		}
		kind, got := valueEnd(b, 0)
		if want < 0 && (kind != Invalid || got != -1) || want >= 0 && (kind != String || got != want) {
			t.Fatalf("valueEnd %q: got %v %d, want %d", b, kind, got, want)
		}
		arr := append(append([]byte("[1,"), b...), ",2]"...)
		wantArr := containerEndByByte(arr)
		if kind, got := valueEnd(arr, 0); wantArr < 0 && kind != Invalid || wantArr >= 0 && got != wantArr {
			t.Fatalf("valueEnd %q: got %v %d, want %d", arr, kind, got, wantArr)
		}
	})
}

// BenchmarkStringEnd is how valueEnd skips a long string value (code, with
// a quote every 20 bytes); its twin below is the byte-at-a-time definition.
func BenchmarkStringEnd(b *testing.B) {
	long := []byte(`"` + strings.Repeat(`func main() { fmt.Println(\"hi\") }\n`, 1<<10) + `"`)
	b.SetBytes(int64(len(long)))
	for b.Loop() {
		if _, end := valueEnd(long, 0); end != len(long) {
			b.Fatal("wrong end")
		}
	}
}

func BenchmarkStringEndByByte(b *testing.B) {
	long := []byte(`"` + strings.Repeat(`func main() { fmt.Println(\"hi\") }\n`, 1<<10) + `"`)
	b.SetBytes(int64(len(long)))
	for b.Loop() {
		if stringEndByByte(long, 0) != len(long) {
			b.Fatal("wrong end")
		}
	}
}
