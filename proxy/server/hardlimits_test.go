package server_test

import (
	"bytes"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

// The escaped spelling of include_usage is include_usage to the upstream's
// decoder, so it is to Loom: a client cannot turn off the usage Loom asks
// for, and the call's tokens are the provider's, not an estimate.
func TestServer_EscapedIncludeUsageFalse_UsageStillFromProvider(t *testing.T) {
	st := startStack(t, stackOptions{})
	seen := st.count()
	status, _, body := st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_\u0075sage":false},"messages":[{"role":"user","content":"hi"}]}`, nil)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	up, _ := st.mock.Last()
	if !up.IncludeUsage || up.UsageSent == nil {
		t.Fatalf("upstream got include_usage %v (usage sent %v): %s", up.IncludeUsage, up.UsageSent, up.Body)
	}
	rec := st.lastRecord(seen)
	if rec.UsageSource != call.UsageProvider || rec.Usage.TotalTokens != int64(up.UsageSent.TotalTokens) {
		t.Fatalf("usage %+v from %q, want the provider's %+v", rec.Usage, rec.UsageSource, *up.UsageSent)
	}
	// The client did not ask for usage, so it gets none.
	if bytes.Contains(body, []byte(`"usage":{`)) {
		t.Fatalf("the client got the usage chunk it did not ask for:\n%s", body)
	}
}

// Two include_usage keys, one escaped, would let Loom read one and the
// upstream obey the other: refused before anything goes upstream.
func TestServer_DuplicateIncludeUsage_Refused400(t *testing.T) {
	st := startStack(t, stackOptions{})
	before := len(st.mock.Requests())
	for _, so := range []string{`{"include_usage":true,"include_usage":false}`, `{"include_usage":true,"include_\u0075sage":false}`} {
		status, _, body := st.do("POST", "/v1/chat/completions", st.keyA,
			`{"model":"gpt-4o-mini","stream":true,"stream_options":`+so+`,"messages":[{"role":"user","content":"hi"}]}`, nil)
		assertError(t, status, body, 400, "duplicate_parameter")
	}
	if n := len(st.mock.Requests()) - before; n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}
}
