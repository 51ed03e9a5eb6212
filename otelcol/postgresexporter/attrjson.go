package postgresexporter

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The JSON written here goes into jsonb columns. It is hand-rolled because it
// is the exporter's hot path and because pcommon values need choices
// encoding/json would not make: NaN and ±Inf (valid attribute values, not
// JSON numbers) become strings, bytes become base64 strings. Strings must
// have passed check first: valid UTF-8, no NUL (jsonb rejects \u0000).

// appendValue appends v as JSON.
func appendValue(dst []byte, v pcommon.Value) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return appendString(dst, v.Str())
	case pcommon.ValueTypeInt:
		return strconv.AppendInt(dst, v.Int(), 10)
	case pcommon.ValueTypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendString(dst, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case pcommon.ValueTypeBool:
		return strconv.AppendBool(dst, v.Bool())
	case pcommon.ValueTypeBytes:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v.Bytes().AsRaw())
		return append(dst, '"')
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		dst = append(dst, '[')
		for i := range s.Len() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, s.At(i))
		}
		return append(dst, ']')
	case pcommon.ValueTypeMap:
		return appendMap(dst, v.Map(), nil)
	default:
		return append(dst, "null"...)
	}
}

// appendMap appends m as a JSON object, leaving out the keys skip says to.
func appendMap(dst []byte, m pcommon.Map, skip func(string) bool) []byte {
	dst = append(dst, '{')
	first := true
	for k, v := range m.All() {
		if skip != nil && skip(k) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendValue(dst, v)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. s is valid UTF-8 (checked before),
// so only quotes, backslashes and control characters need escaping.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
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
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// checker finds what makes a span impossible to insert: Postgres rejects
// invalid UTF-8 and NUL in text and jsonb, and a single huge value is a bug
// upstream that must not stall the pipeline. Each check returns "" when all
// is well, else the problem; the happy path allocates nothing, the context
// is added to the reason only on the way out of a failure.
type checker struct {
	maxBytes int
}

func (c checker) str(s string) string {
	switch {
	case len(s) > c.maxBytes:
		return c.tooBig(len(s))
	case !utf8.ValidString(s):
		return "invalid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	}
	return ""
}

func (c checker) tooBig(n int) string {
	return fmt.Sprintf("value of %d bytes exceeds max_attribute_bytes (%d)", n, c.maxBytes)
}

func (c checker) value(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return c.str(v.Str())
	case pcommon.ValueTypeBytes:
		if n := v.Bytes().Len(); n > c.maxBytes {
			return c.tooBig(n)
		}
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		for i := range s.Len() {
			if r := c.value(s.At(i)); r != "" {
				return r
			}
		}
	case pcommon.ValueTypeMap:
		return c.attrs(v.Map())
	}
	return ""
}

// attrs checks every key and value of m.
func (c checker) attrs(m pcommon.Map) string {
	for k, v := range m.All() {
		if r := c.str(k); r != "" {
			return "attribute key " + quote(k) + ": " + r
		}
		if r := c.value(v); r != "" {
			return "attribute " + quote(k) + ": " + r
		}
	}
	return ""
}

// origin checks a span's resource and scope, once for all their spans.
func (c checker) origin(res pcommon.Resource, scope pcommon.InstrumentationScope) string {
	checks := [...]struct{ what, problem string }{
		{"resource ", c.attrs(res.Attributes())},
		{"scope name: ", c.str(scope.Name())},
		{"scope version: ", c.str(scope.Version())},
		{"scope ", c.attrs(scope.Attributes())},
	}
	for _, ch := range checks {
		if ch.problem != "" {
			return ch.what + ch.problem
		}
	}
	return ""
}

// span checks everything of the span itself that becomes a row: its name,
// status, attributes, events and links.
func (c checker) span(s ptrace.Span) string {
	checks := [...]struct{ what, problem string }{
		{"span name: ", c.str(s.Name())},
		{"status message: ", c.str(s.Status().Message())},
		{"trace state: ", c.str(s.TraceState().AsRaw())},
		{"span ", c.attrs(s.Attributes())},
	}
	for _, ch := range checks {
		if ch.problem != "" {
			return ch.what + ch.problem
		}
	}
	for i, e := range s.Events().All() {
		if r := c.str(e.Name()); r != "" {
			return "event " + strconv.Itoa(i) + " name: " + r
		}
		if r := c.attrs(e.Attributes()); r != "" {
			return "event " + strconv.Itoa(i) + " " + r
		}
	}
	for i, l := range s.Links().All() {
		if r := c.str(l.TraceState().AsRaw()); r != "" {
			return "link " + strconv.Itoa(i) + " trace state: " + r
		}
		if r := c.attrs(l.Attributes()); r != "" {
			return "link " + strconv.Itoa(i) + " " + r
		}
	}
	return ""
}

// quote renders a key for a reason: quoted, invalid bytes escaped, and cut
// short, so that the reason itself is always storable.
func quote(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	return strconv.Quote(s)
}

// sanitize makes s storable as text, for the dead-letter columns that help
// find a span: the payload keeps the original bytes.
func sanitize(s string, max int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}
