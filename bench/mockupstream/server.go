// Package mockupstream is a fake LLM provider that speaks the OpenAI, Azure OpenAI and Anthropic wire
// formats, for Loom's tests, benchmarks and k6 scenarios.
//
// It generates chat completions, legacy completions, embeddings, model lists, Responses API responses
// (kept for GET/DELETE by id) and Anthropic Messages, or replays recorded provider traffic byte for byte,
// with latency, time to first token, chunk cadence, error statuses, connection resets and failover
// failures ("fail the first N attempts") chosen per request by x-mock-* headers (see control.go) or per
// instance by Config. It records every request it receives, and what it sent back, so tests can check
// the gateway against ground truth.
//
// It must never be a bottleneck or a source of noise in a benchmark: waits are only the ones asked for, and
// the time it deliberately waited is reported in the x-mock-service-ms header.
package mockupstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Behaviour is how the mock answers when no control header says otherwise.
type Behaviour struct {
	Latency    time.Duration // non-stream: delay before responding; stream: extra delay before headers
	TTFT       time.Duration // stream: delay between headers sent and first chunk
	Chunks     int           // number of content chunks (= completion tokens) per choice; default 5
	ChunkDelay time.Duration // stream: delay between consecutive SSE events, [DONE] included
	Status     int           // if >=400, answer with that status and a real-shaped error body
	ResetAfter int           // stream: after this many SSE events, reset the TCP connection; <=0 never
}

// Config configures a Server. The zero value serves without auth and without replay.
type Config struct {
	// APIKey, if non-empty, is required as "Authorization: Bearer <APIKey>" on OpenAI paths and as
	// "api-key: <APIKey>" on Azure paths.
	APIKey string
	// ReplayDir is the directory x-mock-replay names are resolved against.
	ReplayDir string
	Defaults  Behaviour
	// ResponsesKept caps how many responses created by POST /v1/responses the mock keeps for GET, DELETE
	// and input_items by id, evicting the oldest. 0 means 4096.
	ResponsesKept int
	// Fail makes this instance's attempts fail, e.g. the first of two deployments in a failover test;
	// x-mock-fail* headers override it field by field, and SetFail replaces it while serving.
	Fail Failure
	// LogLimit caps how many requests Requests() keeps, dropping the oldest, so a long k6 run does not grow
	// the log without bound. 0 means 10000; negative means no limit.
	LogLimit int
	// EventGate, if set, is called before each SSE event but the first of
	// every stream, with the event's index; the event goes out once it
	// returns. A test uses it to prove causality (event i+1 leaves only
	// after event i reached the client) without timing a busy machine.
	EventGate func(i int)
}

// Server is the mock upstream. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	srv    *fasthttp.Server
	seq    atomic.Int64
	log    requestLog
	replay replayCache
	// instance is random per Server and part of every response id, so ids from two mocks never collide
	// and a GET that reaches the wrong mock is a 404.
	instance  string
	responses responseStore
	fails     failCounter
	fail      atomic.Pointer[Failure] // Config.Fail, then SetFail's
	stopping  chan struct{}           // closed by Shutdown, to end held heads (FailTimeout)
	stopOnce  sync.Once
}

// New returns a Server; it does not listen until Serve.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, log: requestLog{limit: cfg.LogLimit}, instance: newInstanceID(),
		responses: responseStore{limit: cfg.ResponsesKept}, stopping: make(chan struct{})}
	if s.log.limit == 0 {
		s.log.limit = defaultLogLimit
	}
	if s.responses.limit <= 0 {
		s.responses.limit = defaultResponsesKept
	}
	s.SetFail(cfg.Fail)
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		Name:                  "mockupstream",
		NoDefaultServerHeader: true,
		IdleTimeout:           90 * time.Second,
		MaxRequestBodySize:    64 << 20,
		// Clients that hang up mid-stream are a scenario here, not a fault; they show as ClientGone.
		Logger: discardLogger{},
	}
	return s
}

// Handler returns the request handler, for tests that run their own fasthttp.Server.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); err != nil {
		return fmt.Errorf("mock upstream serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight responses, streams included, until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopping) })
	if err := s.srv.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("mock upstream shutdown: %w", err)
	}
	return nil
}

type endpoint int

const (
	epChat endpoint = iota
	epCompletions
	epEmbeddings
	epModels
	epModel
	epMessages
	epCountTokens
	epResponses
	epResponseGet
	epResponseDelete
	epResponseInputItems
)

// call is what one request's handling needs, copied out of the RequestCtx so a stream may use it after the
// handler returns.
type call struct {
	seq     int64
	p       provider
	ep      endpoint
	target  string // Azure deployment, the model id of GET /v1/models/{id}, or a response id
	rec     *Received
	plan    plan
	created int64
	start   time.Time     // when the handler had the request: x-mock-timing counts from here
	waited  time.Duration // what x-mock-service-ms reports
	failed  FailMode      // the failure injected into this attempt, if any
}

// id gives the per-request ids a mock-looking but real-shaped form (chatcmpl-mock7, call_mock7_0).
func (c *call) id(prefix string) string { return prefix + "mock" + strconv.FormatInt(c.seq, 10) }

// modelFor is the model a response names: the request's, or on Azure the deployment, which is how Azure
// deployments are usually named after the model they serve.
func (c *call) modelFor(requested string) string {
	if c.p == providerAzure {
		return c.target
	}
	return requested
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	if string(ctx.Path()) == "/_mock/requests" {
		s.serveLog(ctx)
		return
	}
	c := &call{seq: s.seq.Add(1), created: start.Unix(), start: start}
	c.rec = newReceived(ctx, c.seq)
	probe := probeBody(c.rec.Body)
	c.rec.Stream, c.rec.IncludeUsage = probe.Stream, probe.includeUsage()
	s.log.add(c.rec)

	st, apiErr := s.serve(ctx, c, probe)
	if c.failed == FailReset {
		resetNow(ctx)
		s.log.update(c.rec, func(r *Received) { r.Done = time.Now() })
		return
	}
	if apiErr != nil {
		if ra := c.plan.fail.RetryAfter; ra != "" && (apiErr.retryAfter != "" || apiErr.status == fasthttp.StatusTooManyRequests) {
			apiErr.retryAfter = ra
		}
		writeError(ctx, c.p, apiErr)
	}
	s.setHeaders(ctx, c, probe, time.Since(start))
	if st != nil {
		s.launch(ctx, c, st)
		return
	}
	if c.failed == FailResetAfterFirst {
		resetMidBody(ctx)
	}
	s.log.update(c.rec, func(r *Received) { r.Done = time.Now() })
}

// serve answers the request, or returns the error to render, or a stream for handle to launch once the
// headers are final.
func (s *Server) serve(ctx *fasthttp.RequestCtx, c *call, probe bodyProbe) (*stream, *apiError) {
	if e := s.route(ctx, c); e != nil {
		return nil, e
	}
	if e := s.authorize(ctx, c.p); e != nil {
		return nil, e
	}
	var e *apiError
	if c.plan, e = s.resolve(&ctx.Request.Header); e != nil {
		return nil, e
	}
	switch c.failed = s.failNow(c, string(ctx.Request.Header.Peek(HeaderFailKey))); c.failed {
	case Fail500:
		return nil, s.statusError(c, fasthttp.StatusInternalServerError, probe)
	case Fail429:
		return nil, s.statusError(c, fasthttp.StatusTooManyRequests, probe)
	case FailReset:
		return nil, nil
	case FailTimeout:
		s.hold(c.plan.fail.Delay)
		c.waited += c.plan.fail.Delay
	case FailResetAfterFirst:
		c.plan.ResetAfter = 1 // a stream; handle cuts a non-streaming body
	}
	if c.plan.Latency > 0 {
		time.Sleep(c.plan.Latency)
		c.waited += c.plan.Latency
	}
	if c.plan.Status >= 400 {
		return nil, s.statusError(c, c.plan.Status, probe)
	}
	if c.plan.replay != "" {
		return s.serveReplay(ctx, c)
	}
	switch c.ep {
	case epChat:
		return s.chat(ctx, c)
	case epCompletions:
		return s.completions(ctx, c)
	case epEmbeddings:
		return nil, s.embeddings(ctx, c)
	case epModels:
		writeJSON(ctx, modelList())
		return nil, nil
	case epMessages:
		return s.messages(ctx, c)
	case epCountTokens:
		return nil, s.countTokens(ctx, c)
	case epResponses:
		return s.createResponse(ctx, c)
	case epResponseGet, epResponseDelete, epResponseInputItems:
		return nil, s.storedResponse(ctx, c)
	default:
		return nil, serveModel(ctx, c.target)
	}
}

// statusError is the error a provider answers with status, in the endpoint's dialect.
func (s *Server) statusError(c *call, status int, probe bodyProbe) *apiError {
	if c.p == providerAnthropic {
		return anthropicStatusError(status)
	}
	return statusError(c.p, status, c.modelFor(probe.Model))
}

// route sets c.p, c.ep and c.target from the method and path.
func (s *Server) route(ctx *fasthttp.RequestCtx, c *call) *apiError {
	method, path := string(ctx.Method()), string(ctx.Path())
	if rest, ok := strings.CutPrefix(path, "/openai/"); ok {
		c.p = providerAzure
		dep, op, ok := strings.Cut(strings.TrimPrefix(rest, "deployments/"), "/")
		ep, found := azureOperation(op)
		// Azure answers a missing api-version, like any path it does not serve, with its generic 404.
		if !ok || !strings.HasPrefix(rest, "deployments/") || dep == "" || !found || method != fasthttp.MethodPost ||
			len(ctx.QueryArgs().Peek("api-version")) == 0 {
			return &apiError{status: fasthttp.StatusNotFound, body: []byte(azureResourceNotFound)}
		}
		c.ep, c.target = ep, dep
		return nil
	}
	c.p = providerOpenAI
	if rest, ok := strings.CutPrefix(path, "/v1/responses/"); ok {
		id, sub, nested := strings.Cut(rest, "/")
		switch {
		case id == "":
		case method == fasthttp.MethodGet && !nested:
			c.ep, c.target = epResponseGet, id
			return nil
		case method == fasthttp.MethodDelete && !nested:
			c.ep, c.target = epResponseDelete, id
			return nil
		case method == fasthttp.MethodGet && sub == "input_items":
			c.ep, c.target = epResponseInputItems, id
			return nil
		}
		return invalidURL(method, path)
	}
	switch {
	case method == fasthttp.MethodPost && path == "/v1/messages":
		c.p, c.ep = providerAnthropic, epMessages
	case method == fasthttp.MethodPost && path == "/v1/messages/count_tokens":
		c.p, c.ep = providerAnthropic, epCountTokens
	case method == fasthttp.MethodPost && path == "/v1/responses":
		c.ep = epResponses
	case method == fasthttp.MethodPost && path == "/v1/chat/completions":
		c.ep = epChat
	case method == fasthttp.MethodPost && path == "/v1/completions":
		c.ep = epCompletions
	case method == fasthttp.MethodPost && path == "/v1/embeddings":
		c.ep = epEmbeddings
	case method == fasthttp.MethodGet && path == "/v1/models":
		c.ep = epModels
	case method == fasthttp.MethodGet && strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		c.ep, c.target = epModel, strings.TrimPrefix(path, "/v1/models/")
	default:
		return invalidURL(method, path)
	}
	return nil
}

func azureOperation(op string) (endpoint, bool) {
	switch op {
	case "chat/completions":
		return epChat, true
	case "completions":
		return epCompletions, true
	case "embeddings":
		return epEmbeddings, true
	}
	return 0, false
}

func (s *Server) authorize(ctx *fasthttp.RequestCtx, p provider) *apiError {
	if p == providerAnthropic {
		return s.authorizeAnthropic(&ctx.Request.Header)
	}
	if s.cfg.APIKey == "" {
		return nil
	}
	var got string
	if p == providerAzure {
		got = string(ctx.Request.Header.Peek("api-key"))
	} else {
		auth := string(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
		got, _ = strings.CutPrefix(auth, "Bearer ")
	}
	if got != s.cfg.APIKey {
		return authError(p, got)
	}
	return nil
}

// authorizeAnthropic checks what Anthropic checks first: a key (any, when Config.APIKey is empty) in
// x-api-key or, as anthropic-sdk-go v2's WithAPIKey sends it, as a Bearer token; and an anthropic-version.
func (s *Server) authorizeAnthropic(h *fasthttp.RequestHeader) *apiError {
	key := h.Peek("x-api-key")
	if len(key) == 0 {
		key, _ = bytes.CutPrefix(h.Peek(fasthttp.HeaderAuthorization), []byte("Bearer "))
	}
	switch {
	case len(key) == 0:
		return anthropicErr(fasthttp.StatusUnauthorized, "authentication_error", "x-api-key header is required")
	case s.cfg.APIKey != "" && string(key) != s.cfg.APIKey:
		return anthropicErr(fasthttp.StatusUnauthorized, "authentication_error", "invalid x-api-key")
	case len(h.Peek("anthropic-version")) == 0:
		return anthropicErr(fasthttp.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
	}
	return nil
}

// setHeaders adds the headers a real provider sends on every response, including openai-organization,
// which a gateway must not pass on to its own clients.
func (s *Server) setHeaders(ctx *fasthttp.RequestCtx, c *call, probe bodyProbe, elapsed time.Duration) {
	h := &ctx.Response.Header
	seq := strconv.FormatInt(c.seq, 10)
	h.Set(HeaderServiceMS, strconv.FormatFloat(float64(c.waited)/float64(time.Millisecond), 'f', -1, 64))
	if c.p == providerAnthropic {
		// Anthropic's names: request-id rather than x-request-id, anthropic-ratelimit-* rather than x-ratelimit-*.
		h.Set("request-id", "req_mock_"+seq)
		h.Set("anthropic-organization-id", "00000000-0000-4000-8000-000000000000")
		h.Set("anthropic-ratelimit-requests-limit", "4000")
		remaining := "3999"
		if ctx.Response.StatusCode() == fasthttp.StatusTooManyRequests {
			remaining = "0"
		}
		h.Set("anthropic-ratelimit-requests-remaining", remaining)
		h.Set("anthropic-ratelimit-tokens-limit", "480000")
		h.Set("anthropic-ratelimit-tokens-remaining", strconv.Itoa(max(480000-probe.estimatedTokens, 0)))
		return
	}
	h.Set("x-request-id", "req_mock_"+seq)
	h.Set("openai-organization", "mock-org")
	h.Set("openai-version", "2020-10-01")
	h.Set("openai-processing-ms", strconv.FormatInt(elapsed.Milliseconds(), 10))
	if h.Peek("x-ratelimit-remaining-requests") == nil { // a 429 has set it to 0
		h.Set("x-ratelimit-remaining-requests", "9999")
	}
	const tokenLimit = 30_000_000
	h.Set("x-ratelimit-limit-requests", "10000")
	h.Set("x-ratelimit-reset-requests", "6ms")
	h.Set("x-ratelimit-limit-tokens", strconv.Itoa(tokenLimit))
	h.Set("x-ratelimit-remaining-tokens", strconv.Itoa(tokenLimit-probe.estimatedTokens))
	h.Set("x-ratelimit-reset-tokens", "0s")
	if c.p == providerAzure {
		h.Set("apim-request-id", fmt.Sprintf("00000000-0000-4000-8000-%012d", c.seq))
		h.Set("x-ms-region", "East US 2")
	}
}

// bodyProbe is the little every request needs from its body before routing decides how to read the rest.
// A body that does not parse leaves it zero; the endpoint's own parse reports the error.
type bodyProbe struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	estimatedTokens int
}

func (p bodyProbe) includeUsage() bool { return p.StreamOptions != nil && p.StreamOptions.IncludeUsage }

func probeBody(body []byte) bodyProbe {
	var p bodyProbe
	if len(body) > 0 {
		_ = json.Unmarshal(body, &p) // errors are the endpoint parser's to report
	}
	p.estimatedTokens = max(len(body)/4, 1)
	return p
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	ctx.SetContentType("application/json")
	ctx.SetBody(mustJSON(v))
}

func newInstanceID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil { // crypto/rand does not fail on supported platforms
		panic(err)
	}
	return "mock" + hex.EncodeToString(b[:])
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// replayCache keeps parsed replay files: a benchmark replays the same few files thousands of times.
type replayCache struct {
	mu    sync.Mutex
	files map[string]*replayFile
}
