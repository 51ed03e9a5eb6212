package server_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/limit"
)

// concurrentCalls sends body n times at once and returns how many got 200
// and the tokens the upstream reported for all of them.
func concurrentCalls(t *testing.T, st *stack, n int, body string, header map[string]string) (admitted int, used int64) {
	t.Helper()
	before := len(st.mock.Requests())
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", st.url+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+st.keyA)
			for k, v := range header {
				req.Header.Set(k, v)
			}
			resp, err := st.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				mu.Lock()
				admitted++
				mu.Unlock()
			case http.StatusTooManyRequests:
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	for _, r := range st.mock.Requests()[before:] {
		if r.UsageSent != nil {
			used += int64(r.UsageSent.TotalTokens)
		}
	}
	return admitted, used
}

// Five concurrent calls without max_tokens under a TPM of 1,000, each
// generating about 900 tokens: reserving only the prompt let all five in
// (4,500 tokens). Each now reserves the default output budget (capped at
// the TPM), so together they use at most the limit plus one reservation.
func TestServer_FiveConcurrentCallsUnderTPM1000_UseAtMostTheLimitPlusOneReservation(t *testing.T) {
	st := startStack(t, stackOptions{keyLimits: "{tokens_per_minute: 1000}", limiter: limit.New(limit.NewMemory(), frozen())})
	admitted, used := concurrentCalls(t, st, 5, chat, map[string]string{"x-mock-chunks": "890", "x-mock-latency-ms": "300"})
	const reservation = 1000 // the default 4096, capped at the TPM
	if admitted == 0 || used > 1000+reservation {
		t.Fatalf("%d of 5 calls admitted, using %d tokens under a TPM of 1000", admitted, used)
	}
}

// n choices generate n times the output: without max_tokens each of them
// reserves default_output_tokens.
func TestServer_NWithoutMaxTokens_ReservesTheDefaultForEachChoice(t *testing.T) {
	st := startStack(t, stackOptions{keyLimits: "{tokens_per_minute: 1000}", defaultOutput: 200, limiter: limit.New(limit.NewMemory(), frozen())})
	body := `{"model":"gpt-4o-mini","n":2,"messages":[{"role":"user","content":"hi"}]}`
	reservation := int(call.EstimateTokens(len(body))) + 2*200
	admitted, used := concurrentCalls(t, st, 5, body, map[string]string{"x-mock-chunks": "200", "x-mock-latency-ms": "300"})
	if admitted != 1000/reservation || used > int64(1000+reservation) {
		t.Fatalf("%d of 5 calls admitted (want %d), using %d tokens under a TPM of 1000", admitted, 1000/reservation, used)
	}
}

// stepClock is a limiter clock a test moves on.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// A call admitted in one minute that ends in the next, having used more
// than it reserved, spends the next minute's allowance: before, the
// overage went to the minute it was admitted in, which was over.
func TestServer_CallEndingInTheNextMinute_ChargesItsOverageThere(t *testing.T) {
	clk := &stepClock{t: time.Date(2026, 11, 25, 12, 0, 58, 0, time.UTC)}
	st := startStack(t, stackOptions{keyLimits: "{tokens_per_minute: 1000}", limiter: limit.New(limit.NewMemory(), clk.now)})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if status, _, body := st.do("POST", "/v1/chat/completions", st.keyA, chatMax100,
			map[string]string{"x-mock-chunks": "600", "x-mock-latency-ms": "300"}); status != 200 {
			t.Errorf("status %d: %s", status, body)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(st.mock.Requests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the call never reached the upstream")
		}
		time.Sleep(5 * time.Millisecond)
	}
	clk.set(time.Date(2026, 11, 25, 12, 1, 5, 0, time.UTC))
	<-done
	st.waitRecords(1)
	used := int64(st.mock.Requests()[0].UsageSent.TotalTokens)
	overage := used - (call.EstimateTokens(len(chatMax100)) + 100)
	_, h, _ := st.do("POST", "/v1/chat/completions", st.keyA, chatMax100, nil)
	want := 1000 - overage - (call.EstimateTokens(len(chatMax100)) + 100)
	if rem, _ := strconv.ParseInt(h.Get("x-ratelimit-remaining-tokens"), 10, 64); overage <= 0 || rem != want {
		t.Fatalf("remaining %d in the next minute, want %d (the first call's %d over its reservation counted)", rem, want, overage)
	}
}

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
