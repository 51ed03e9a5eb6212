package tap

import (
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// EstimateUsage fills in r's usage when a stream ended without the
// provider's count: the client left and the drain ran out first, or the
// upstream broke off. Input is the prompt's text counted by
// call.EstimateTokens, output one token per delta that carried output. The
// record says UsageEstimated, so nobody mistakes it for the provider's figure; it is
// what Loom can still bill and audit when the provider said nothing.
func EstimateUsage(r *call.Record, request []byte) {
	in := call.EstimateTokens(promptBytes(request))
	out := int64(r.OutputPieces)
	r.Usage = call.Usage{InputTokens: in, OutputTokens: out, TotalTokens: in + out}
	r.UsageSource = call.UsageEstimated
}

// promptBytes is the length of the text in a chat request's messages or a
// completion request's prompt (JSON-escaped, which is close enough).
func promptBytes(body []byte) int {
	var m json.Members
	if !m.Reset(body) {
		return 0
	}
	n := 0
	for m.Next() {
		switch string(m.Key()) {
		case "messages":
			var e json.Elements
			e.Reset(m.Value())
			for e.Next() {
				var msg json.Members
				msg.Reset(e.Value())
				for msg.Next() {
					if string(msg.Key()) == "content" {
						n += textBytes(msg.Value(), msg.Kind())
					}
				}
			}
		case "prompt":
			n += textBytes(m.Value(), m.Kind())
		}
	}
	return n
}

// textBytes measures a content: a string, or an array of strings or of
// parts with "text".
func textBytes(v []byte, k json.Kind) int {
	switch k {
	case json.String:
		return len(v) - 2
	case json.Array:
		n := 0
		var e json.Elements
		e.Reset(v)
		for e.Next() {
			if e.Kind() == json.String {
				n += len(e.Value()) - 2
				continue
			}
			var part json.Members
			part.Reset(e.Value())
			for part.Next() {
				if string(part.Key()) == "text" && part.Kind() == json.String {
					n += len(part.Value()) - 2
				}
			}
		}
		return n
	}
	return 0
}
