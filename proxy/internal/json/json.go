// Package json is Loom's one door to JSON. Everything in the proxy that reads or
// writes JSON goes through it, so the codec (sonic) can be swapped or tuned in
// one place.
//
// It has two halves. Valid, Marshal and Unmarshal wrap sonic for whole
// documents off the hot path (config, error bodies, model lists). Members and
// Elements walk the top level of an object or array in place, without
// allocating, for the hot path: the relay's tap reads a few fields of every
// streamed chunk and must never build a tree to do it.
package json

import (
	"bytes"

	"github.com/bytedance/sonic"
)

// api is sonic's standard-compatible configuration: map keys sorted and HTML
// escaped like encoding/json, so what Loom writes is predictable in tests.
var api = sonic.ConfigStd

// Valid reports whether b is one well-formed JSON value. sonic's Valid
// checks structure but not what follows a backslash in a string, so a body
// like {"model":"gpt-4o\q"} passed it while no decoder (sonic's own
// Unmarshal included) reads it: the escapes are checked here. Raw control
// characters inside strings still pass (encoding/json refuses them); every
// reader sees the same bytes there, so nothing is misread.
//
// A document that is one literal (null, true, false) is checked here too:
// sonic's Valid reads past the end of the slice for one, so "nu" passed
// when the bytes after it in memory happened to spell "ll" (a pooled
// buffer's last body, say). A document that is one string has its end
// found here for a like reason (see below).
func Valid(b []byte) bool {
	if i := skipSpace(b, 0); i < len(b) && (b[i] == 'n' || b[i] == 't' || b[i] == 'f') {
		_, end := valueEnd(b, i)
		return end > 0 && skipSpace(b, end) == len(b)
	}
	if i := skipSpace(b, 0); i < len(b) && b[i] == '"' {
		// sonic's Valid accepts a document that is one unterminated string
		// when the string's bytes fill whole 32-byte blocks ("\"" and 32
		// zeros): the end is found here first, and sonic still checks the
		// string's contents.
		if _, end := valueEnd(b, i); end < 0 || skipSpace(b, end) != len(b) {
			return false
		}
	}
	return api.Valid(b) && validEscapes(b)
}

// validEscapes reports whether every backslash in b, a structurally valid
// document (so every backslash is inside a string), starts a JSON escape.
// Bodies without one, nearly all, cost one IndexByte.
func validEscapes(b []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return true
		}
		i += j + 1
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i++
		case 'u':
			if _, ok := hex4(b, i+1); !ok {
				return false
			}
			i += 5
		default:
			return false
		}
	}
}

// Marshal encodes v.
func Marshal(v any) ([]byte, error) { return api.Marshal(v) }

// Unmarshal decodes b into v.
func Unmarshal(b []byte, v any) error { return api.Unmarshal(b, v) }
