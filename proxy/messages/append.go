package messages

import (
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// appendCleanString appends the JSON string quoted (quotes included, as
// sent by an untrusted party) re-quoted as valid UTF-8 of at most max
// decoded bytes. It allocates; it is for error paths.
func appendCleanString(dst, quoted []byte, max int) []byte {
	s, ok := json.AppendString(nil, quoted)
	if !ok {
		return append(dst, `""`...)
	}
	return json.AppendQuote(dst, call.Clean(string(s), max))
}

// appendQuoteBytes appends b as a JSON string, like json.AppendQuote, without
// converting it to a string (which would allocate for anything but short
// input). Invalid UTF-8 becomes U+FFFD.
func appendQuoteBytes(dst, b []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(b); {
		c := b[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			// Copy the run of plain bytes at once.
			j := i + 1
			for j < len(b) && b[j] >= 0x20 && b[j] != '"' && b[j] != '\\' && b[j] < utf8.RuneSelf {
				j++
			}
			dst = append(dst, b[i:j]...)
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
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, b[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// inner is a JSON string value without its quotes, escapes kept: what sits
// between the quotes of another JSON string built from several.
func inner(quoted []byte) []byte {
	if len(quoted) < 2 {
		return nil
	}
	return quoted[1 : len(quoted)-1]
}
