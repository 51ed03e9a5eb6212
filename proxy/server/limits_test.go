package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loom-gateway/loom/deploy/redisserver/redistest"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/limit"
	"github.com/loom-gateway/loom/proxy/server"
)

// frozen is a clock held in the middle of a minute, so a test's calls all
// fall in one rate-limit window.
func frozen() func() time.Time {
	t := time.Date(2026, 11, 25, 12, 0, 30, 0, time.UTC)
	return func() time.Time { return t }
}

const chat = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

// chatMax100 reserves its prompt and 100 tokens of output: without
// max_tokens a call reserves default_output_tokens, capped at the TPM.
const chatMax100 = `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`

// At twice the RPM limit, exactly the limit gets through; the rest get the
// 429 OpenAI sends, with its headers, and never reach the upstream.
func TestLimits_TwiceTheRPM_ExcessGets429WithHeaders(t *testing.T) {
	st := startStack(t, stackOptions{acmeLimits: "{requests_per_minute: 5}", limiter: limit.New(limit.NewMemory(), frozen())})
	before := len(st.mock.Requests())
	var ok, limited int
	for i := range 10 {
		status, h, body := st.do("POST", "/v1/chat/completions", st.keyA, chat, nil)
		if h.Get("x-ratelimit-limit-requests") != "5" || h.Get("x-ratelimit-reset-requests") != "30s" || h.Get("x-ratelimit-limit-tokens") != "" {
			t.Fatalf("call %d: rate headers %v", i, h)
		}
		switch status {
		case http.StatusOK:
			ok++
			if want := strconv.Itoa(5 - ok); h.Get("x-ratelimit-remaining-requests") != want {
				t.Errorf("call %d: remaining %q, want %s", i, h.Get("x-ratelimit-remaining-requests"), want)
			}
		case http.StatusTooManyRequests:
			limited++
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Type != "requests" || e.Error.Code != "rate_limit_exceeded" ||
				!strings.Contains(e.Error.Message, "tenant acme") {
				t.Fatalf("429 body %s", body)
			}
			if h.Get("Retry-After") != "30" || h.Get("x-ratelimit-remaining-requests") != "0" {
				t.Fatalf("429 headers %v", h)
			}
		default:
			t.Fatalf("call %d: status %d %s", i, status, body)
		}
	}
	if ok != 5 || limited != 5 {
		t.Fatalf("%d admitted, %d limited; want 5 and 5", ok, limited)
	}
	if got := len(st.mock.Requests()) - before; got != 5 {
		t.Fatalf("%d calls reached the upstream, want 5", got)
	}
	// The other tenant has no limits and is not affected: it sees the
	// provider's own headers, as without Loom.
	if status, h, _ := st.do("POST", "/v1/chat/completions", st.keyB, `{"model":"globex-model","messages":[{"role":"user","content":"hi"}]}`, nil); status != 200 || h.Get("x-ratelimit-limit-requests") == "5" {
		t.Fatalf("globex: %d %v", status, h)
	}
}

// Tokens are reserved before the call and settled with what the upstream
// reported, so the window counts real usage, not estimates.
func TestLimits_TPM_SettlesWithRealUsage(t *testing.T) {
	st := startStack(t, stackOptions{keyLimits: "{tokens_per_minute: 1000}", limiter: limit.New(limit.NewMemory(), frozen())})
	status, h, _ := st.do("POST", "/v1/chat/completions", st.keyA, `{"model":"gpt-4o-mini","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if status != 200 {
		t.Fatal(status)
	}
	// While the call ran, its reservation (500 + prompt) counted.
	if rem, _ := strconv.Atoi(h.Get("x-ratelimit-remaining-tokens")); rem > 500 {
		t.Fatalf("remaining tokens %d during the call: the reservation was not counted", rem)
	}
	used := st.mock.Requests()[0].UsageSent.TotalTokens
	st.waitRecords(1)
	_, h, _ = st.do("POST", "/v1/chat/completions", st.keyA, chatMax100, nil)
	// The second call reserved its own estimate; what is left after it
	// includes the first call's real usage, not its 500-token reservation.
	est := int(call.EstimateTokens(len(chatMax100))) + 100
	if rem, _ := strconv.Atoi(h.Get("x-ratelimit-remaining-tokens")); rem != 1000-used-est {
		t.Fatalf("remaining %d, want 1000 - %d used - %d reserved", rem, used, est)
	}
}

// A tenant's concurrent streams are capped; a finished stream frees its
// slot.
func TestLimits_ConcurrentStreams(t *testing.T) {
	st := startStack(t, stackOptions{acmeLimits: "{concurrent_streams: 1}", limiter: limit.New(limit.NewMemory(), frozen())})
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	resp := openStream(t, st, body, map[string]string{"x-mock-chunks": "50", "x-mock-chunk-delay-ms": "20"})
	if _, err := bufio.NewReader(resp.Body).ReadBytes('\n'); err != nil {
		t.Fatal(err)
	}
	status, _, got := st.do("POST", "/v1/chat/completions", st.keyA, body, nil)
	if status != http.StatusTooManyRequests || !strings.Contains(string(got), "concurrent streams") {
		t.Fatalf("second stream: %d %s", status, got)
	}
	resp.Body.Close()
	st.client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, _, _ = st.do("POST", "/v1/chat/completions", st.keyA, body, nil)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot was never freed: %d", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two Loom instances sharing one Redis enforce one limit between them: at
// twice the RPM, together they admit exactly the limit. The clock is frozen
// inside one minute, so there is no window edge to race at, and each
// admission is one atomic script in Redis: one call more is a bug.
func TestLimits_TwoInstancesShareRedis(t *testing.T) {
	rs := redistest.Start(t)
	newLimiter := func() *limit.Limiter {
		o, err := redis.ParseURL(rs.URL())
		if err != nil {
			t.Fatal(err)
		}
		client := redis.NewClient(o)
		t.Cleanup(func() { client.Close() })
		r := limit.NewRedis(client, "loom-test:")
		t.Cleanup(func() { _ = r.Close(context.Background()) })
		return limit.New(r, frozen())
	}
	st := startStack(t, stackOptions{acmeLimits: "{requests_per_minute: 20}", limiter: newLimiter()})
	second, err := server.New(st.cfg, server.Options{Limiter: newLimiter()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = second.Serve(ln) }()
	t.Cleanup(func() { _ = second.Shutdown(context.Background()) })
	urls := []string{st.url, "http://" + ln.Addr().String()}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5 {
				req, _ := http.NewRequest("POST", urls[(w+i)%2]+"/v1/chat/completions", strings.NewReader(chat))
				req.Header.Set("Authorization", "Bearer "+st.keyA)
				resp, err := st.client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 20 {
		t.Fatalf("two instances admitted %d of 40 calls against a shared limit of 20", n)
	}
}

// A call the upstream refused used nothing: its reservation is given back.
func TestLimits_TPM_RefusedCallGivesTheReservationBack(t *testing.T) {
	st := startStack(t, stackOptions{keyLimits: "{tokens_per_minute: 1000}", limiter: limit.New(limit.NewMemory(), frozen())})
	status, _, _ := st.do("POST", "/v1/chat/completions", st.keyA, `{"model":"gpt-4o-mini","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"x-mock-status": "500"})
	if status != 500 {
		t.Fatal(status)
	}
	st.waitRecords(1)
	_, h, _ := st.do("POST", "/v1/chat/completions", st.keyA, chatMax100, nil)
	if rem, _ := strconv.Atoi(h.Get("x-ratelimit-remaining-tokens")); rem != 1000-int(call.EstimateTokens(len(chatMax100)))-100 {
		t.Fatalf("remaining %d: the failed call's reservation was kept", rem)
	}
}
