package messages

import (
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

// inner is a JSON string value without its quotes, escapes kept: what sits
// between the quotes of another JSON string built from several.
func inner(quoted []byte) []byte {
	if len(quoted) < 2 {
		return nil
	}
	return quoted[1 : len(quoted)-1]
}
