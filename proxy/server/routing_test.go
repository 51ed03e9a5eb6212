package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// behaviour is how a scripted upstream answers its n-th request (from 1).
type behaviour func(w http.ResponseWriter, r *http.Request, n int)

// scripted is a small OpenAI-compatible upstream whose behaviour a test
// switches at will; by default it answers well, saying its own name.
type scripted struct {
	name   string
	url    string
	calls  atomic.Int32
	behave atomic.Pointer[behaviour]
}

func startScripted(t *testing.T, name string) *scripted {
	t.Helper()
	u := &scripted{name: name}
	u.set(serveOK(name))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(u.calls.Add(1))
		(*u.behave.Load())(w, r, n)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL + "/v1"
	return u
}

func (u *scripted) set(b behaviour) { u.behave.Store(&b) }

// streamed reports whether r asks for a stream (and for usage).
func streamed(r *http.Request) (stream, usage bool) {
	var body struct {
		Stream        bool `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &body)
	return body.Stream, body.StreamOptions.IncludeUsage
}

func chunk(name, delta, finish string) string {
	fin := "null"
	if finish != "" {
		fin = `"` + finish + `"`
	}
	return fmt.Sprintf(`data: {"id":"chatcmpl-%s","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{%s},"finish_reason":%s}]}`+"\n\n",
		name, delta, fin)
}

// serveOK answers "from NAME", as one body or as a stream of three events
// (and the usage chunk when asked), with usage 5 + 2.
func serveOK(name string) behaviour {
	return func(w http.ResponseWriter, r *http.Request, _ int) {
		stream, usage := streamed(r)
		if !stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"chatcmpl-%s","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"from %s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`, name, name)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, ev := range []string{
			chunk(name, `"role":"assistant","content":"from "`, ""), chunk(name, `"content":"`+name+`"`, ""), chunk(name, "", "stop"),
		} {
			_, _ = io.WriteString(w, ev)
			f.Flush()
		}
		if usage {
			fmt.Fprintf(w, `data: {"id":"chatcmpl-%s","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`+"\n\n", name)
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}
}

func answerStatus(status int, header ...string) behaviour {
	return func(w http.ResponseWriter, r *http.Request, _ int) {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"scripted %d","type":"server_error","param":null,"code":null}}`, status)
	}
}

// resetBeforeHead closes the connection without an answer; for a stream
// it sends the head and a comment first, still before any real event.
func resetBeforeHead(w http.ResponseWriter, r *http.Request, _ int) {
	if stream, _ := streamed(r); stream {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, ": warming up\n\n")
		w.(http.Flusher).Flush()
	}
	panic(http.ErrAbortHandler)
}

// silent sends nothing (a stream: its head alone) until Loom gives up.
func silent(w http.ResponseWriter, r *http.Request, _ int) {
	if stream, _ := streamed(r); stream {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
	}
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
	}
}

// resetAfterFirstEvent streams one real event, then breaks off.
func resetAfterFirstEvent(w http.ResponseWriter, r *http.Request, _ int) {
	streamed(r)
	w.Header().Set("Content-Type", "text/event-stream")
	_, _ = io.WriteString(w, chunk("first", `"role":"assistant","content":"partial"`, ""))
	w.(http.Flusher).Flush()
	time.Sleep(20 * time.Millisecond)
	panic(http.ErrAbortHandler)
}

// routed is a gateway over three scripted upstreams, "first", "second"
// and "third", whose tenant has the models given.
type routed struct {
	*stack
	up map[string]*scripted
}

func startRouted(t *testing.T, models, routing string) *routed {
	t.Helper()
	r := &routed{up: map[string]*scripted{}}
	var deps strings.Builder
	for _, n := range []string{"first", "second", "third"} {
		r.up[n] = startScripted(t, n)
		fmt.Fprintf(&deps, "  - {name: %s, provider: openai, base_url: %q, api_key: %s}\n", n, r.up[n].url, upstreamSecret)
	}
	key, hash, _ := tenant.NewKey()
	cfg, err := config.Parse([]byte(`
listen: 127.0.0.1:0
timeouts: {connect: 1s, first_byte: 400ms, stream_idle: 5s, drain: 1s, shutdown: 2s}
routing: {` + routing + `}
deployments:
` + deps.String() + `
tenants:
  - id: acme
    keys: [{id: acme-key-1, sha256: ` + hash + `}]
    models:
` + models))
	if err != nil {
		t.Fatal(err)
	}
	r.stack = &stack{t: t, cfg: cfg, keyA: key, notify: make(chan struct{}, 1)}
	return r
}

func (r *routed) serve(sinks ...call.Sink) *routed {
	// The test's own sink goes last: once it has a record, the others
	// (a tracer) have had it too.
	r.stack.serve(server.Options{Sink: call.Sinks(append(sinks, call.SinkFunc(r.record))...)})
	return r
}

const twoTiers = "      - {name: gpt, deployments: [{name: first}, {name: second, priority: 1}]}\n"

// ask makes one chat call with openai-go, streamed or not, and returns
// the text it got.
func (r *routed) ask(model string, stream bool) (string, error) {
	c := sdkClient(r.stack, r.keyA)
	p := chatParams(model)
	if !stream {
		resp, err := c.Chat.Completions.New(context.Background(), p)
		if err != nil {
			return "", err
		}
		return resp.Choices[0].Message.Content, nil
	}
	s := c.Chat.Completions.NewStreaming(context.Background(), p)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	text := ""
	if len(acc.Choices) > 0 {
		text = acc.Choices[0].Message.Content
	}
	return text, s.Err()
}

// With the first deployment failing in each way that happens before
// anything reached the client, an openai-go client gets one clean answer
// from the second; the record keeps the failed attempt, and its spans are
// one CLIENT span per attempt.
func TestFailover_FirstDeploymentFails_ClientSeesOneCleanAnswerFromSecond(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      behaviour
		errorType string
		status    int
	}{
		{"500", answerStatus(500), "500", 500},
		{"429 with Retry-After", answerStatus(429, "Retry-After", "2"), "429", 429},
		{"reset before the first byte", resetBeforeHead, "upstream_reset", 0},
		{"first-byte timeout", silent, "timeout", 0},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tc.name, stream), func(t *testing.T) {
				tr, exp := newMemoryTracer(t)
				r := startRouted(t, twoTiers, "").serve(tr)
				r.up["first"].set(tc.fail)
				text, err := r.ask("gpt", stream)
				if err != nil || text != "from second" {
					t.Fatalf("client got %q, %v; want one clean answer from second", text, err)
				}
				rec := r.lastRecord(0)
				if rec.Deployment != "second" || rec.Status != 200 || rec.Outcome != call.OutcomeOK || len(rec.Attempts) != 1 ||
					rec.Usage.TotalTokens != 7 {
					t.Fatalf("record: deployment %s status %d outcome %s attempts %+v usage %+v",
						rec.Deployment, rec.Status, rec.Outcome, rec.Attempts, rec.Usage)
				}
				a := rec.Attempts[0]
				wantStatus := tc.status
				if stream && wantStatus == 0 {
					wantStatus = 200 // the head came; no event did
				}
				if a.Deployment != "first" || a.ErrorType != tc.errorType || a.Status != wantStatus || a.Reason == "" ||
					a.End.Before(a.Start) || rec.UpstreamStart.Before(a.End) {
					t.Fatalf("failed attempt %+v", a)
				}
				if stream && rec.ChunksSent != 4 { // 3 chunks and [DONE]: nothing of the first upstream
					t.Fatalf("%d events sent to the client", rec.ChunksSent)
				}
				spans := clientSpans(t, tr, exp)
				if len(spans) != 2 {
					t.Fatalf("%d CLIENT spans, want 2", len(spans))
				}
				for i, s := range spans {
					if s[sa.UpstreamAttempt].AsInt64() != int64(i+1) {
						t.Errorf("span %d: attempt %d", i, s[sa.UpstreamAttempt].AsInt64())
					}
				}
				if spans[0][sa.Deployment].AsString() != "first" || spans[0][sa.ErrorType].AsString() != tc.errorType ||
					spans[0][sa.UpstreamFailureReason].AsString() == "" || spans[0][sa.GenAIUsageInputTokens].Type() != 0 {
					t.Errorf("failed attempt's span %v", spans[0])
				}
				if spans[1][sa.Deployment].AsString() != "second" || spans[1][sa.GenAIUsageInputTokens].AsInt64() != 5 {
					t.Errorf("serving attempt's span %v", spans[1])
				}
			})
		}
	}
}

// Once a stream's first event reached the client, a failure ends it with
// one error event: the second deployment is never asked, and the record
// has one attempt.
func TestFailover_ResetAfterFirstEvent_StreamEndsInOneErrorEvent_OneAttempt(t *testing.T) {
	r := startRouted(t, twoTiers, "").serve()
	r.up["first"].set(resetAfterFirstEvent)
	text, err := r.ask("gpt", true)
	if err == nil || text != "partial" {
		t.Fatalf("openai-go got %q, %v; want the partial text, then an error", text, err)
	}
	status, _, body := r.do("POST", "/v1/chat/completions", r.keyA, `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	events := sseEvents(body)
	if status != 200 || len(events) != 2 || !strings.Contains(string(events[0]), `"content":"partial"`) ||
		!strings.HasPrefix(string(events[1]), `data: {"error":`) {
		t.Fatalf("status %d, events %q", status, events)
	}
	if n := r.up["second"].calls.Load(); n != 0 {
		t.Fatalf("the second deployment got %d calls: two upstreams in one stream", n)
	}
	for _, rec := range r.waitRecords(2) {
		if rec.Deployment != "first" || len(rec.Attempts) != 0 || rec.Outcome != call.OutcomeUpstreamFailed {
			t.Fatalf("record: deployment %s, attempts %+v, outcome %s", rec.Deployment, rec.Attempts, rec.Outcome)
		}
	}
}

// A 400 is the request's fault, the same everywhere: relayed at once.
func TestFailover_400IsNotRetried(t *testing.T) {
	r := startRouted(t, twoTiers, "").serve()
	r.up["first"].set(answerStatus(400))
	status, _, body := r.do("POST", "/v1/chat/completions", r.keyA, `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`, nil)
	if status != 400 || !strings.Contains(string(body), "scripted 400") || r.up["second"].calls.Load() != 0 {
		t.Fatalf("status %d body %s, second called %d times", status, body, r.up["second"].calls.Load())
	}
	if rec := r.lastRecord(0); len(rec.Attempts) != 0 || rec.Deployment != "first" {
		t.Fatalf("record %+v", rec.Attempts)
	}
}

// When every attempt fails, the client gets the last one's own answer; at
// most max_attempts deployments are asked.
func TestFailover_AllFail_LastAnswerRelayed_WithinMaxAttempts(t *testing.T) {
	r := startRouted(t, "      - {name: gpt, deployments: [{name: first}, {name: second, priority: 1}, {name: third, priority: 2}]}\n",
		"max_attempts: 2").serve()
	r.up["first"].set(answerStatus(503))
	r.up["second"].set(answerStatus(502))
	status, _, body := r.do("POST", "/v1/chat/completions", r.keyA, `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`, nil)
	if status != 502 || !strings.Contains(string(body), "scripted 502") || r.up["third"].calls.Load() != 0 {
		t.Fatalf("status %d body %s; third called %d times", status, body, r.up["third"].calls.Load())
	}
	rec := r.lastRecord(0)
	if len(rec.Attempts) != 1 || rec.Attempts[0].Status != 503 || rec.Deployment != "second" || rec.UpstreamStatus != 502 ||
		rec.Outcome != call.OutcomeUpstreamError {
		t.Fatalf("record: deployment %s status %d outcome %s attempts %+v", rec.Deployment, rec.UpstreamStatus, rec.Outcome, rec.Attempts)
	}
}

// Retry-After is honoured: a deployment that asked for a pause is skipped
// until then, and when every candidate is paused Loom answers 429 with
// Retry-After itself, without asking any.
func TestFailover_EveryCandidatePaused_429WithRetryAfter(t *testing.T) {
	r := startRouted(t, twoTiers, "").serve()
	for _, n := range []string{"first", "second"} {
		r.up[n].set(answerStatus(429, "Retry-After", "30"))
	}
	const chat = `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`
	if status, _, _ := r.do("POST", "/v1/chat/completions", r.keyA, chat, nil); status != 429 {
		t.Fatalf("first call: %d", status)
	}
	status, h, body := r.do("POST", "/v1/chat/completions", r.keyA, chat, nil)
	if wait, err := strconv.Atoi(h.Get("Retry-After")); status != 429 || !strings.Contains(string(body), "upstream_rate_limited") ||
		err != nil || wait < 1 || wait > 30 {
		t.Fatalf("second call: %d %s Retry-After %q", status, body, h.Get("Retry-After"))
	}
	if a, b := r.up["first"].calls.Load(), r.up["second"].calls.Load(); a != 1 || b != 1 {
		t.Fatalf("upstreams asked %d and %d times while paused", a, b)
	}
}

// A model with a single deployment is never skipped: its client gets the
// upstream's own answer each time, as before routing.
func TestFailover_LoneDeployment_NeverSkipped(t *testing.T) {
	r := startRouted(t, "      - {name: gpt, deployment: first}\n", "circuit_failures: 1").serve()
	r.up["first"].set(answerStatus(429, "Retry-After", "30"))
	for range 3 {
		if status, _, body := r.do("POST", "/v1/chat/completions", r.keyA, `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`, nil); status != 429 ||
			!strings.Contains(string(body), "scripted 429") {
			t.Fatalf("%d %s", status, body)
		}
	}
	if n := r.up["first"].calls.Load(); n != 3 {
		t.Fatalf("upstream asked %d times, want 3", n)
	}
}

// circuit_failures consecutive failures open a deployment's circuit:
// calls skip it (one attempt each, on the second). After the cooldown one
// probe goes; its success closes the circuit.
func TestCircuit_OpensAfterConfiguredFailures_ClosesAfterGoodProbe(t *testing.T) {
	r := startRouted(t, twoTiers, "circuit_failures: 2, circuit_cooldown: 300ms").serve()
	r.up["first"].set(answerStatus(500))
	for i := range 2 {
		if text, err := r.ask("gpt", false); err != nil || text != "from second" {
			t.Fatalf("call %d: %q %v", i, text, err)
		}
	}
	if n := r.up["first"].calls.Load(); n != 2 {
		t.Fatalf("first asked %d times", n)
	}
	if text, err := r.ask("gpt", true); err != nil || text != "from second" {
		t.Fatalf("with the circuit open: %q %v", text, err)
	}
	if n := r.up["first"].calls.Load(); n != 2 {
		t.Fatal("a call tried the deployment whose circuit is open")
	}
	if rec := r.lastRecord(2); len(rec.Attempts) != 0 || rec.Deployment != "second" {
		t.Fatalf("skipping an open circuit made an attempt: %+v", rec.Attempts)
	}
	if m := string(r.loom.AppendMetrics(nil)); !strings.Contains(m, "loom_upstream_circuits_opened_total 1\n") ||
		!strings.Contains(m, `loom_upstream_skipped_total{reason="circuit_open"} 1`) ||
		!strings.Contains(m, `loom_upstream_attempts_total{outcome="retried"} 2`) || !strings.Contains(m, "loom_upstream_failovers_total 2\n") {
		t.Fatalf("metrics:\n%s", m)
	}
	// Healthy again: once the cooldown is over, the probe closes it.
	r.up["first"].set(serveOK("first"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		text, err := r.ask("gpt", false)
		if err != nil {
			t.Fatal(err)
		}
		if text == "from first" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the circuit never closed")
		}
		time.Sleep(50 * time.Millisecond) // pacing the polls, not an assertion
	}
	for range 3 {
		if text, _ := r.ask("gpt", false); text != "from first" {
			t.Fatalf("after a good probe: %q", text)
		}
	}
}

// Within a tier, traffic splits by weight; a lower tier is used only when
// the tier above fails.
func TestRouting_WeightsSplitTraffic_PriorityTiersRespected(t *testing.T) {
	r := startRouted(t, "      - {name: gpt, deployments: [{name: first, weight: 3}, {name: second, weight: 1}, {name: third, priority: 1}]}\n", "").serve()
	const n = 200
	for range n {
		if _, err := r.ask("gpt", false); err != nil {
			t.Fatal(err)
		}
	}
	first, second, third := r.up["first"].calls.Load(), r.up["second"].calls.Load(), r.up["third"].calls.Load()
	if third != 0 || first+second != n || first < n*60/100 || first > n*90/100 {
		t.Fatalf("first %d, second %d, third %d of %d calls; want about 3:1 and none on the lower tier", first, second, third, n)
	}
}

// A model's fallbacks are tried after its own deployments, and the record
// names the fallback model that served.
func TestFallback_UsedAfterOwnDeploymentsFail_Recorded(t *testing.T) {
	r := startRouted(t, `      - {name: gpt, deployment: first, fallbacks: [backup]}
      - {name: backup, deployment: second, upstream_model: backup-upstream}
`, "").serve()
	r.up["first"].set(answerStatus(503))
	text, err := r.ask("gpt", true)
	if err != nil || text != "from second" {
		t.Fatalf("%q %v", text, err)
	}
	rec := r.lastRecord(0)
	if rec.Model != "gpt" || rec.FallbackModel != "backup" || rec.UpstreamModel != "backup-upstream" || len(rec.Attempts) != 1 ||
		rec.Attempts[0].FallbackModel != "" || rec.Attempts[0].Deployment != "first" {
		t.Fatalf("record: model %s fallback %s upstream %s attempts %+v", rec.Model, rec.FallbackModel, rec.UpstreamModel, rec.Attempts)
	}
}

// The call's budget bounds the attempts: once it is spent no other
// deployment is tried (and a stream's first event is waited for no longer
// than it allows). A model's own routing overrides the gateway's.
func TestFailover_BudgetSpent_NoFurtherAttempt(t *testing.T) {
	r := startRouted(t, `      - {name: gpt, deployments: [{name: first}, {name: second, priority: 1}], routing: {budget: 100ms}}
      - {name: patient, deployments: [{name: first}, {name: second, priority: 1}]}
`, "budget: 1m").serve()
	r.up["first"].set(silent)
	for _, stream := range []bool{false, true} {
		start := time.Now()
		body := fmt.Sprintf(`{"model":"gpt","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream)
		status, _, got := r.do("POST", "/v1/chat/completions", r.keyA, body, nil)
		if status != 504 || !strings.Contains(string(got), "upstream_timeout") || r.up["second"].calls.Load() != 0 {
			t.Fatalf("stream=%v: %d %s; second called %d times", stream, status, got, r.up["second"].calls.Load())
		}
		if took := time.Since(start); stream && took > 380*time.Millisecond {
			t.Errorf("the stream's first event was waited for %v: the 100ms budget, not first_byte (400ms), bounds it", took)
		}
	}
	if text, err := r.ask("patient", false); err != nil || text != "from second" {
		t.Fatalf("the gateway's budget: %q %v", text, err)
	}
}
