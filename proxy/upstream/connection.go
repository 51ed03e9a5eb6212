package upstream

import "bytes"

// NamedByConnection reports whether name is one of the comma-separated
// tokens of connection, a message's Connection header: a header named there
// is hop-by-hop for that one message (RFC 9110 7.6.1), so it never passes
// the gateway, whatever forward_headers or forward_response_headers allow.
// It does not allocate.
func NamedByConnection(connection, name []byte) bool {
	for len(connection) > 0 {
		var token []byte
		token, connection, _ = bytes.Cut(connection, []byte{','})
		if bytes.EqualFold(bytes.TrimSpace(token), name) {
			return true
		}
	}
	return false
}
