package call

import (
	"strings"
	"unicode/utf8"
)

// Clean returns s as valid UTF-8 of at most max bytes: invalid bytes become
// U+FFFD and the cut never splits a character. Every string a client or an
// upstream sent passes through it before it reaches a span: one that is not
// UTF-8 makes the whole OTLP batch unmarshalable. A short valid string
// (every call's ordinary case) is returned as it is, without allocating.
func Clean(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) {
		return s
	}
	return cleanSlow(s, max)
}

// CleanBytes is Clean for a byte slice; the result never aliases b.
func CleanBytes(b []byte, max int) string {
	if len(b) <= max && utf8.Valid(b) {
		return string(b)
	}
	return cleanSlow(string(b[:min(len(b), 4*max+16)]), max)
}

func cleanSlow(s string, max int) string {
	if len(s) > 4*max+16 {
		// Work on a bounded prefix: what is cut would be thrown away anyway
		// (U+FFFD is 3 bytes, so the prefix still fills max).
		s = s[:4*max+16]
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s[:RuneBoundary(s, max)]
}
