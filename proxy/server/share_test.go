package server_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
)

type answer struct {
	status int
	header http.Header
	body   []byte
}

// flood starts n slow calls of key one after the other, each once the mock
// has it or it was answered, so that the earlier ones hold their upstream
// connections when the later ones ask.
func flood(t *testing.T, st *stack, key, model string, n int, header map[string]string) []chan answer {
	t.Helper()
	var out []chan answer
	for range n {
		seen := len(st.mock.Requests())
		ch := make(chan answer, 1)
		go func() {
			status, h, b := st.do("POST", "/v1/chat/completions", key, `{"model":"`+model+`","messages":[{"role":"user","content":"x"}]}`, header)
			ch <- answer{status, h, b}
		}()
		out = append(out, ch)
		for deadline := time.Now().Add(5 * time.Second); len(st.mock.Requests()) == seen && len(ch) == 0; {
			if time.Now().After(deadline) {
				t.Fatal("call neither reached the mock nor was answered")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return out
}

// A tenant that floods a deployment gets 429s past its share, and the other
// tenants' calls go on being served. Before, the flood took every pooled
// connection and the other tenant's call failed at once with a 502
// (fasthttp's ErrNoFreeConns).
func TestServer_TenantFloodsDeployment_OthersStillServed(t *testing.T) {
	st := startStack(t, stackOptions{deployment: "max_conns: 4, tenant_share: 0.5", timeouts: "pool_wait: 300ms"})
	slow := map[string]string{"x-mock-latency-ms": "1500"}
	acme := flood(t, st, st.keyA, "gpt-4o", 4, slow)
	status, _, body := st.do("POST", "/v1/chat/completions", st.keyB, `{"model":"globex-model","messages":[{"role":"user","content":"x"}]}`, nil)
	if status != 200 {
		t.Fatalf("globex while acme floods: %d %s", status, body)
	}
	var ok, limited int
	for _, ch := range acme {
		a := <-ch
		switch a.status {
		case 200:
			ok++
		case 429:
			limited++
			assertError(t, a.status, a.body, 429, "deployment_share_exceeded")
			if a.header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		default:
			t.Errorf("acme got %d: %s", a.status, a.body)
		}
	}
	if ok != 2 || limited != 2 {
		t.Fatalf("acme: %d served, %d limited; want its share (2) served and 2 limited", ok, limited)
	}
	recs := st.waitRecords(5)
	shareRecs := 0
	for _, r := range recs {
		if r.ErrorType == "deployment_share_exceeded" {
			shareRecs++
			if r.Outcome != call.OutcomeRateLimited || r.Status != 429 || r.UpstreamStatus != 0 {
				t.Errorf("share record: outcome %s status %d upstream %d", r.Outcome, r.Status, r.UpstreamStatus)
			}
		}
	}
	if shareRecs != 2 {
		t.Errorf("%d records say deployment_share_exceeded, want 2", shareRecs)
	}
}

// When every connection is in use (here one tenant may hold them all), a
// call waits timeouts.pool_wait and gets an OpenAI-shaped 503, not a 502.
func TestServer_DeploymentSaturated_503AfterPoolWait(t *testing.T) {
	st := startStack(t, stackOptions{deployment: "max_conns: 2, tenant_share: 1", timeouts: "pool_wait: 200ms"})
	acme := flood(t, st, st.keyA, "gpt-4o", 2, map[string]string{"x-mock-latency-ms": "1500"})
	start := time.Now()
	status, h, body := st.do("POST", "/v1/chat/completions", st.keyB, `{"model":"globex-model","messages":[{"role":"user","content":"x"}]}`, nil)
	assertError(t, status, body, 503, "deployment_saturated")
	if h.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("answered after %v, before pool_wait", waited)
	}
	for _, ch := range acme {
		if a := <-ch; a.status != 200 {
			t.Errorf("acme: %d %s", a.status, a.body)
		}
	}
}

// Every way a call can end gives its place back exactly once: after unary
// calls, streams run to the end, streams whose client left, upstream errors
// and resets, the tenant can again hold exactly its share at once.
func TestServer_CallsEndEveryWay_PlacesReleasedOnce(t *testing.T) {
	st := startStack(t, stackOptions{deployment: "max_conns: 4, tenant_share: 0.5", timeouts: "pool_wait: 2s", drain: 200 * time.Millisecond})
	chat := func(extra string) string {
		return `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]` + extra + `}`
	}
	var wg sync.WaitGroup
	calls := []struct {
		body   string
		header map[string]string
	}{
		{chat(""), nil},
		{chat(`,"stream":true`), nil},
		{chat(""), map[string]string{"x-mock-status": "500"}},
		{chat(`,"stream":true`), map[string]string{"x-mock-reset-after": "2"}},
		{chat(""), map[string]string{"x-mock-reset-after": "0"}},
	}
	for range 4 {
		for _, c := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", st.url+"/v1/chat/completions", stringsReader(c.body))
				req.Header.Set("Authorization", "Bearer "+st.keyA)
				for k, v := range c.header {
					req.Header.Set(k, v)
				}
				if resp, err := st.client.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
	}
	// And streams whose client leaves after the head.
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", st.url+"/v1/chat/completions", stringsReader(chat(`,"stream":true`)))
			req.Header.Set("Authorization", "Bearer "+st.keyA)
			req.Header.Set("x-mock-chunks", "50")
			req.Header.Set("x-mock-chunk-delay-ms", "20")
			if resp, err := st.client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	st.waitRecords(4*len(calls) + 4)
	// Exactly the share again: two slow calls are served at once, a third
	// is refused. A leaked place would refuse the second; a place given back
	// twice would serve the third.
	acme := flood(t, st, st.keyA, "gpt-4o", 3, map[string]string{"x-mock-latency-ms": "2500"})
	var got []int
	for _, ch := range acme {
		got = append(got, (<-ch).status)
	}
	if got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Fatalf("after every kind of ending, three calls at once got %v; want [200 200 429]", got)
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
