package tracing

import (
	"strings"
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/call"
)

// Every string that reaches a span comes from someone Loom does not trust:
// a client (path, model, captured prompt), an upstream (response id, model,
// finish reasons, error text) or an admin (names). OTLP's protobuf strings
// must be valid UTF-8 and a collector refuses an export over its receive
// limit, so one bad string could otherwise make a whole batch unsendable.
// These caps hold at span creation; the queue's split on a permanent refusal
// is the second line.
const (
	// maxShort caps names, ids, models, routes and other one-line values.
	maxShort = 1 << 10
	// maxStatus caps a span's status message.
	maxStatus = 512
	// maxReason caps one finish reason, maxReasons their number (the
	// request's n is at most 128 at OpenAI).
	maxReason  = 64
	maxReasons = 256
)

// cleanSlice cleans each string of ss, and keeps at most maxReasons of
// them. It returns ss itself when nothing needs changing.
func cleanSlice(ss []string, max int) []string {
	dirty := len(ss) > maxReasons
	for _, s := range ss[:min(len(ss), maxReasons)] {
		if len(s) > max || !utf8.ValidString(s) {
			dirty = true
			break
		}
	}
	if !dirty {
		return ss
	}
	out := make([]string, min(len(ss), maxReasons))
	for i := range out {
		out[i] = call.Clean(ss[i], max)
	}
	return out
}

// scrubAddrs replaces every IP address (with its port) in s by "<addr>":
// error texts such as "write tcp 10.0.0.1:443->10.0.0.2:5000: broken
// pipe" must not put a client's socket address on a span.
func scrubAddrs(s string) string {
	if !strings.ContainsAny(s, ".:") {
		return s
	}
	var b []byte // nil until the first replacement
	last := 0
	for i := 0; i < len(s); {
		n := addrLen(s[i:])
		if n == 0 || (i > 0 && isAddrByte(s[i-1])) {
			i++
			continue
		}
		if b == nil {
			b = make([]byte, 0, len(s))
		}
		b = append(append(b, s[last:i]...), "<addr>"...)
		i += n
		last = i
	}
	if b == nil {
		return s
	}
	return string(append(b, s[last:]...))
}

func isAddrByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':' || c == '[' || c == ']'
}

// addrLen is the length of an IPv4 address (with an optional :port), or a
// bracketed IPv6 address (with an optional :port), at the start of s; 0 if
// none is there.
func addrLen(s string) int {
	n := 0
	if s != "" && s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 3 || strings.Count(s[:end], ":") < 2 {
			return 0
		}
		for _, c := range []byte(s[1:end]) {
			if !isAddrByte(c) {
				return 0
			}
		}
		n = end + 1
	} else {
		dots := 0
		for n < len(s) {
			d := digits(s[n:])
			if d == 0 || d > 3 {
				return 0
			}
			n += d
			if dots == 3 {
				break
			}
			if n >= len(s) || s[n] != '.' {
				return 0
			}
			n++
			dots++
		}
		if dots != 3 {
			return 0
		}
	}
	if n < len(s) && s[n] == ':' {
		if d := digits(s[n+1:]); d > 0 {
			n += 1 + d
		}
	}
	return n
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
