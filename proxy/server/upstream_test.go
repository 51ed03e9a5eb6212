package server_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

// An upstream 401 or 403 means the deployment's credential failed: the
// tenant gets Loom's own 502 saying so, never the upstream's body (which
// can echo the credential, masked), and the record keeps the upstream's
// status.
func TestServer_UpstreamRefusesCredential_Loom502WithoutItsBody(t *testing.T) {
	st := startStack(t, stackOptions{})
	for _, code := range []int{401, 403} {
		for _, stream := range []string{"false", "true"} {
			seen := st.count()
			status, h, body := st.do("POST", "/v1/chat/completions", st.keyA,
				`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":`+stream+`}`,
				map[string]string{"x-mock-status": strconv.Itoa(code)})
			assertError(t, status, body, 502, "upstream_auth_failed")
			for _, leak := range []string{"****", "sk-m", "Incorrect API key", "Country, region"} {
				if bytes.Contains(body, []byte(leak)) {
					t.Fatalf("upstream %d body reached the tenant (%q): %s", code, leak, body)
				}
			}
			for k := range h {
				if strings.HasPrefix(strings.ToLower(k), "x-mock-") || strings.EqualFold(k, "x-request-id") {
					t.Errorf("upstream %d header %s reached the tenant", code, k)
				}
			}
			rec := st.lastRecord(seen)
			if rec.UpstreamStatus != code || rec.Status != 502 || rec.ErrorType != "upstream_auth_failed" ||
				rec.Outcome != call.OutcomeUpstreamError || strings.Contains(rec.ErrorMessage, "****") {
				t.Fatalf("record: upstream %d status %d type %q outcome %s message %q",
					rec.UpstreamStatus, rec.Status, rec.ErrorType, rec.Outcome, rec.ErrorMessage)
			}
		}
	}
}

// The provider's x-ratelimit-* headers describe the gateway's provider
// account, shared by every tenant: they never reach a tenant, also when
// Loom has no limit of its own for the key (they used to pass then).
func TestServer_ProviderRateLimitHeaders_NeverReachTenant(t *testing.T) {
	st := startStack(t, stackOptions{keyLimits: "{requests_per_minute: 100}"})
	for _, stream := range []string{"false", "true"} {
		body := `{"model":"globex-model","messages":[{"role":"user","content":"x"}],"stream":` + stream + `}`
		status, h, b := st.do("POST", "/v1/chat/completions", st.keyB, body, nil)
		if status != 200 {
			t.Fatalf("%d %s", status, b)
		}
		for k := range h {
			if strings.HasPrefix(strings.ToLower(k), "x-ratelimit-") {
				t.Errorf("stream=%s: provider header %s: %s reached a tenant without limits", stream, k, h.Get(k))
			}
		}
		// Loom's own, where it limits the key, are still sent.
		body = `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":` + stream + `}`
		status, h, b = st.do("POST", "/v1/chat/completions", st.keyA, body, nil)
		if status != 200 || h.Get("x-ratelimit-limit-requests") != "100" || h.Get("x-ratelimit-remaining-requests") == "9999" {
			t.Errorf("stream=%s: Loom's own rate headers: %d %v %s", stream, status, h, b)
		}
	}
}

// max_response_bytes bounds an upstream's non-streamed answer (and the
// non-event-stream answer to a streamed request): past it the tenant gets
// Loom's own 502 and the record says why.
func TestServer_UpstreamAnswerOverMaxResponseBytes_Loom502(t *testing.T) {
	st := startStack(t, stackOptions{extra: "max_response_bytes: 4096"})
	for _, stream := range []string{"false", "true"} {
		seen := st.count()
		status, _, body := st.do("POST", "/v1/chat/completions", st.keyA,
			`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":`+stream+`}`,
			map[string]string{"x-mock-replay": "openai/embeddings-base64.json"}) // 8 KiB
		assertError(t, status, body, 502, "upstream_response_too_large")
		if rec := st.lastRecord(seen); rec.ErrorType != "response_too_large" || rec.Outcome != call.OutcomeUpstreamFailed || rec.Status != 502 {
			t.Fatalf("stream=%s record: type %q outcome %s status %d", stream, rec.ErrorType, rec.Outcome, rec.Status)
		}
		// An answer within the bound passes, on the same deployment.
		status, _, body = st.do("POST", "/v1/chat/completions", st.keyA,
			`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":`+stream+`}`,
			map[string]string{"x-mock-replay": "openai/chat-completion-basic.json"})
		if status != 200 {
			t.Fatalf("stream=%s: answer within the bound: %d %s", stream, status, body)
		}
	}
}
