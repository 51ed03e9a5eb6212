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
	"github.com/bytedance/sonic"
)

// api is sonic's standard-compatible configuration: map keys sorted and HTML
// escaped like encoding/json, so what Loom writes is predictable in tests.
var api = sonic.ConfigStd

// Valid reports whether b is one well-formed JSON value.
func Valid(b []byte) bool { return api.Valid(b) }

// Marshal encodes v.
func Marshal(v any) ([]byte, error) { return api.Marshal(v) }

// Unmarshal decodes b into v.
func Unmarshal(b []byte, v any) error { return api.Unmarshal(b, v) }
