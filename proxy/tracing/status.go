package tracing

import (
	"github.com/loom-gateway/loom/proxy/call"
)

// upstreamFailed says whether the upstream call itself failed: the CLIENT
// span's status describes the upstream, so a client that hung up while the
// provider answered normally is not an upstream error (that would inflate
// provider error rates); loom.client.disconnected says what happened.
func upstreamFailed(r *call.Record) bool {
	return r.Outcome == call.OutcomeUpstreamError || r.Outcome == call.OutcomeUpstreamFailed || r.UpstreamStatus >= 400
}

// statusMessage is r's error message fit for a span status: a client that
// left gets a fixed text (the write error names its socket), any IP
// address is replaced, and the text is valid UTF-8 within maxStatus.
func statusMessage(r *call.Record) string {
	if r.Outcome == call.OutcomeClientGone {
		return "client disconnected"
	}
	return scrubAddrs(call.Clean(r.ErrorMessage, maxStatus))
}
