package json

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is the type of a JSON value, read from its first byte.
type Kind uint8

// The kinds of JSON values.
const (
	Invalid Kind = iota
	Null
	False
	True
	Number
	String
	Object
	Array
)

var kindNames = [...]string{"invalid", "null", "boolean", "boolean", "number", "string", "object", "array"}

// String names the kind the way OpenAI's errors do ("expected a boolean, but
// got a string instead").
func (k Kind) String() string { return kindNames[k] }

// ErrSyntax means the walker met bytes that cannot be JSON. The walkers check
// structure only as far as they need to skip values; call Valid first where
// untrusted input must be rejected as a whole.
var ErrSyntax = errors.New("json: syntax error")

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the closing quote of the string whose
// opening quote is at i, or -1. It steps through every byte, and is small
// enough to be inlined: it is for keys, which are short. Values, which may
// be long, are skipped by valueEnd.
func stringEnd(b []byte, i int) int {
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

// shortString is how far valueEnd steps through a string before it jumps
// (stringEndLong): a call to IndexByte costs more than stepping through an
// id or a word.
const shortString = 128

// stringEndLong goes on from j (not inside an escape) in the string that
// opens at i, jumping from quote to quote (IndexByte is vectorised):
// walking past long strings (a prompt, a tool result) is most of what the
// walkers do on large bodies. A quote ends the string unless an odd run of
// backslashes stands before it.
func stringEndLong(b []byte, i, j int) int {
	for j < len(b) {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return -1
}

// valueEnd returns the kind of the value starting at i and the index just past
// it, or Invalid.
func valueEnd(b []byte, i int) (Kind, int) {
	if i >= len(b) {
		return Invalid, -1
	}
	switch c := b[i]; {
	case c == '"':
		// An unterminated string is no value: returning String with end -1
		// would hand the caller a slice bound of -1 (a chunk cut off
		// mid-string, `{"id":"ab`, panicked the tap).
		j, lim := i+1, min(len(b), i+1+shortString)
		for ; j < lim; j++ {
			switch b[j] {
			case '"':
				return String, j + 1
			case '\\':
				j++
			}
		}
		if end := stringEndLong(b, i, j); end >= 0 {
			return String, end
		}
		return Invalid, -1
	case c == '{' || c == '[':
		kind := Object
		if c == '[' {
			kind = Array
		}
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				// Stepped through for shortString bytes, as stringEnd
				// does; a longer string is jumped through.
				k, lim := j+1, min(len(b), j+1+shortString)
				for ; k < lim; k++ {
					if b[k] == '"' {
						break
					}
					if b[k] == '\\' {
						k++
					}
				}
				if k < lim && b[k] == '"' {
					j = k
					continue
				}
				j = stringEndLong(b, j, k)
				if j < 0 {
					return Invalid, -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return kind, j + 1
				}
			}
		}
		return Invalid, -1
	case c == 'n':
		return literal(b, i, "null", Null)
	case c == 't':
		return literal(b, i, "true", True)
	case c == 'f':
		return literal(b, i, "false", False)
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) && isNumberByte(b[j]) {
			j++
		}
		return Number, j
	}
	return Invalid, -1
}

func isNumberByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

func literal(b []byte, i int, word string, kind Kind) (Kind, int) {
	if len(b)-i >= len(word) && string(b[i:i+len(word)]) == word {
		return kind, i + len(word)
	}
	return Invalid, -1
}

// Members walks the members of one JSON object in place. The zero value is
// unusable: call Reset. It never allocates; the slices it returns alias the
// input and are valid as long as the input is.
type Members struct {
	b        []byte
	pos      int // where the next member (or the closing brace) is looked for
	prevEnd  int // end of the previous value, or just past '{' for the first member
	keyStart int
	valStart int
	valEnd   int
	kind     Kind
	err      error
}

// Reset points the walker at b, which must hold an object (surrounding space
// allowed). It reports false, and Err says why, if b does not start one.
func (m *Members) Reset(b []byte) bool {
	*m = Members{b: b}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		m.err = ErrSyntax
		return false
	}
	m.pos = i + 1
	m.prevEnd = i + 1
	return true
}

// Next advances to the next member and reports whether there is one.
func (m *Members) Next() bool {
	if m.err != nil || m.b == nil {
		return false
	}
	i := skipSpace(m.b, m.pos)
	if i < len(m.b) && m.b[i] == ',' && m.keyStart > 0 {
		i = skipSpace(m.b, i+1)
	}
	if i >= len(m.b) {
		m.err = ErrSyntax
		return false
	}
	if m.b[i] == '}' {
		m.b = nil
		return false
	}
	if m.b[i] != '"' {
		m.err = ErrSyntax
		return false
	}
	if m.keyStart > 0 {
		m.prevEnd = m.valEnd
	}
	m.keyStart = i
	end := stringEnd(m.b, i)
	if end < 0 {
		m.err = ErrSyntax
		return false
	}
	i = skipSpace(m.b, end)
	if i >= len(m.b) || m.b[i] != ':' {
		m.err = ErrSyntax
		return false
	}
	i = skipSpace(m.b, i+1)
	kind, vend := valueEnd(m.b, i)
	if kind == Invalid {
		m.err = ErrSyntax
		return false
	}
	m.valStart, m.valEnd, m.kind = i, vend, kind
	m.pos = vend
	return true
}

// Key is the current member's key without its quotes (escapes left as sent).
func (m *Members) Key() []byte {
	end := stringEnd(m.b, m.keyStart)
	return m.b[m.keyStart+1 : end-1]
}

// QuotedKey is the current member's key with its quotes, as sent.
func (m *Members) QuotedKey() []byte {
	return m.b[m.keyStart:stringEnd(m.b, m.keyStart)]
}

// Value is the current member's raw value.
func (m *Members) Value() []byte { return m.b[m.valStart:m.valEnd] }

// Kind is the type of the current member's value.
func (m *Members) Kind() Kind { return m.kind }

// ValueSpan is where the current value sits in the input.
func (m *Members) ValueSpan() (start, end int) { return m.valStart, m.valEnd }

// MemberSpan is the range to cut to remove the current member and one
// separating comma, leaving valid JSON behind.
func (m *Members) MemberSpan() (start, end int) {
	if m.prevEnd != m.valEnd && m.b[skipSpace(m.b, m.prevEnd)] == ',' {
		// Not the first member: cut from the end of the previous value.
		return m.prevEnd, m.valEnd
	}
	// The first member: cut through the comma that follows, if any.
	j := skipSpace(m.b, m.valEnd)
	if j < len(m.b) && m.b[j] == ',' {
		return m.keyStart, skipSpace(m.b, j+1)
	}
	return m.keyStart, m.valEnd
}

// Err is the syntax error that stopped the walk, if any.
func (m *Members) Err() error { return m.err }

// Elements walks the elements of one JSON array in place, without allocating.
type Elements struct {
	b        []byte
	pos      int
	valStart int
	valEnd   int
	kind     Kind
	started  bool
	err      error
}

// Reset points the walker at b, which must hold an array.
func (e *Elements) Reset(b []byte) bool {
	*e = Elements{b: b}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		e.err = ErrSyntax
		return false
	}
	e.pos = i + 1
	return true
}

// Next advances to the next element and reports whether there is one.
func (e *Elements) Next() bool {
	if e.err != nil || e.b == nil {
		return false
	}
	i := skipSpace(e.b, e.pos)
	if i < len(e.b) && e.b[i] == ',' && e.started {
		i = skipSpace(e.b, i+1)
	}
	if i >= len(e.b) {
		e.err = ErrSyntax
		return false
	}
	if e.b[i] == ']' {
		e.b = nil
		return false
	}
	kind, end := valueEnd(e.b, i)
	if kind == Invalid {
		e.err = ErrSyntax
		return false
	}
	e.started = true
	e.valStart, e.valEnd, e.kind, e.pos = i, end, kind, end
	return true
}

// Value is the current element's raw value.
func (e *Elements) Value() []byte { return e.b[e.valStart:e.valEnd] }

// Kind is the type of the current element.
func (e *Elements) Kind() Kind { return e.kind }

// Err is the syntax error that stopped the walk, if any.
func (e *Elements) Err() error { return e.err }

// IsEmptyArray reports whether v is `[]` (with any inner space).
func IsEmptyArray(v []byte) bool {
	if len(v) < 2 || v[0] != '[' {
		return false
	}
	return skipSpace(v, 1) == len(v)-1
}

// IsEmptyObject reports whether v is `{}` (with any inner space).
func IsEmptyObject(v []byte) bool {
	if len(v) < 2 || v[0] != '{' {
		return false
	}
	return skipSpace(v, 1) == len(v)-1
}

// Int parses a JSON number that must be an integer, without allocating.
func Int(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	neg := v[0] == '-'
	if neg {
		v = v[1:]
		if len(v) == 0 {
			return 0, false
		}
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// Float parses a JSON number.
func Float(v []byte) (float64, bool) {
	f, err := strconv.ParseFloat(string(v), 64)
	return f, err == nil
}

// AppendString appends the decoded contents of the JSON string v (quotes
// included) to dst. It reports false if v is not a well-formed string.
func AppendString(dst, v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return dst, false
	}
	s := v[1 : len(v)-1]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i >= len(s) {
			return dst, false
		}
		switch s[i] {
		case '"', '\\', '/':
			dst = append(dst, s[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s, i+1)
			if !ok {
				return dst, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(s, i+3); ok && i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					}
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, false
		}
	}
	return dst, true
}

func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// AppendQuote appends s (a string or bytes) as a JSON string to dst.
func AppendQuote[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	dst = AppendEscaped(dst, s)
	return append(dst, '"')
}

// AppendEscaped appends s escaped for the inside of a JSON string: quotes,
// backslashes and control characters escaped, invalid UTF-8 as U+FFFD, so
// whatever a client or an upstream sent, the result is valid JSON of valid
// UTF-8. It allocates nothing beyond dst's growth.
func AppendEscaped[T ~string | ~[]byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			// Copy the run of plain bytes at once.
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' && s[j] < utf8.RuneSelf {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		// At most one rune's bytes are converted: short enough never to
		// allocate for a []byte.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}
