package server

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/relay"
	"github.com/loom-gateway/loom/proxy/tenant"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// HeaderOverhead carries Loom's own time for a call, in milliseconds: the
// whole time in Loom minus the time spent waiting on the upstream (for a
// stream, up to the response head).
const HeaderOverhead = "X-Loom-Overhead-Ms"

// Handle is the gateway's fasthttp handler.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	if len(ctx.Request.Header.Peek(overLimitHeader)) > 0 {
		s.refuseOverLimit(ctx)
		return
	}
	path := ctx.Path()
	switch string(path) {
	case "/v1/chat/completions":
		s.post(ctx, epChat, nil)
	case "/v1/completions":
		s.post(ctx, epCompletions, nil)
	case "/v1/embeddings":
		s.post(ctx, epEmbeddings, nil)
	case "/v1/responses":
		s.post(ctx, epResponses, nil)
	case "/v1/messages":
		s.post(ctx, epMessages, nil)
	case "/v1/messages/count_tokens":
		s.post(ctx, epCountTokens, nil)
	case "/v1/models":
		s.models(ctx, nil)
	case "/healthz":
		s.health(ctx, true, false)
	case "/readyz":
		s.health(ctx, !s.draining.Load(), true)
	default:
		if name, ok := bytes.CutPrefix(path, []byte("/v1/models/")); ok && len(name) > 0 {
			s.models(ctx, name)
			return
		}
		if s.routeResponses(ctx, path) || s.routeAzure(ctx, path) {
			return
		}
		ex := s.begin(ctx, "", "")
		s.attribute(ctx, ex)
		s.reject(ctx, ex, apierror.New(fasthttp.StatusNotFound, apierror.TypeInvalidRequest, "unknown_url", "",
			"Invalid URL ("+clip(ctx.Method(), 16)+" "+clip(path, 256)+")"))
	}
}

// clip bounds what an error message echoes of a client's input.
func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func (s *Server) begin(ctx *fasthttp.RequestCtx, op call.Operation, route string) *exchange {
	ex := s.acquire()
	rec := &ex.rec
	rec.Start = time.Now()
	rec.Operation = op
	rec.HTTPRoute = route
	rec.HTTPMethod = methodName(ctx.Method())
	if tp := ctx.Request.Header.Peek("traceparent"); len(tp) <= 128 {
		rec.TraceParent = append(rec.TraceParent, tp...)
	}
	return ex
}

func methodName(m []byte) string {
	switch string(m) {
	case fasthttp.MethodGet:
		return fasthttp.MethodGet
	case fasthttp.MethodPost:
		return fasthttp.MethodPost
	case fasthttp.MethodDelete:
		return fasthttp.MethodDelete
	}
	return "_OTHER"
}

// health answers /healthz and /readyz. A degraded gateway (its tenant store
// unreachable, serving the last snapshot) is still ready: taking it out of
// a load balancer would turn a store outage into a traffic outage.
func (s *Server) health(ctx *fasthttp.RequestCtx, ok, ready bool) {
	ctx.SetContentType("application/json")
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		writeError(ctx, methodNotAllowed(ctx))
		return
	}
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"status":"draining"}`)
		return
	}
	if reason := s.degraded.Load(); ready && reason != nil {
		b := append([]byte(`{"status":"degraded","reason":`), json.AppendQuote(nil, *reason)...)
		ctx.SetBody(append(b, '}'))
		return
	}
	ctx.SetBodyString(`{"status":"ok"}`)
}

func methodNotAllowed(ctx *fasthttp.RequestCtx) *apierror.Error {
	return apierror.New(fasthttp.StatusMethodNotAllowed, apierror.TypeInvalidRequest, "method_not_allowed", "",
		"Method "+clip(ctx.Method(), 16)+" is not allowed for "+clip(ctx.Path(), 256)+".")
}

// attribute gives a request Loom refuses before authenticating it (an
// unknown URL, a wrong method) to the tenant of its key, when it carries a
// valid one: a tenant's own mistakes stay in its record, while requests
// without a valid key are only counted (see unauthCounts).
func (s *Server) attribute(ctx *fasthttp.RequestCtx, ex *exchange) {
	if k, err := s.authenticate(ctx, ex.live.dir); err == nil {
		ex.rec.TenantID, ex.rec.KeyID = k.Tenant.ID, k.ID
	}
}

// authenticate resolves the request's key: "Authorization: Bearer KEY", the
// "api-key" header that Azure SDKs send, or the "x-api-key" header that
// Anthropic SDKs send. Its error carries the *apierror.Error (a 401) to
// answer with.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, dir *tenant.Directory) (*tenant.Key, error) {
	var key []byte
	if auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); len(auth) > 0 {
		const bearer = "Bearer "
		if len(auth) <= len(bearer) || !bytes.EqualFold(auth[:len(bearer)], []byte(bearer)) {
			return nil, apierror.New(fasthttp.StatusUnauthorized, apierror.TypeInvalidRequest, "invalid_api_key", "",
				"The Authorization header must be 'Bearer <API key>'.")
		}
		key = bytes.TrimSpace(auth[len(bearer):])
	} else if key = bytes.TrimSpace(ctx.Request.Header.Peek("api-key")); len(key) == 0 {
		key = bytes.TrimSpace(ctx.Request.Header.Peek("x-api-key"))
	}
	if len(key) == 0 {
		return nil, apierror.New(fasthttp.StatusUnauthorized, apierror.TypeInvalidRequest, "missing_api_key", "",
			"You didn't provide an API key. Provide it in an Authorization header (Bearer auth) or an api-key header.")
	}
	k, ok := dir.Authenticate(key)
	if !ok {
		// Never echo the key, not even masked: error bodies end up in logs.
		return nil, apierror.New(fasthttp.StatusUnauthorized, apierror.TypeInvalidRequest, "invalid_api_key", "",
			"Incorrect API key provided.")
	}
	return k, nil
}

func (s *Server) models(ctx *fasthttp.RequestCtx, name []byte) {
	ex := s.begin(ctx, call.OpModels, "/v1/models")
	if name != nil {
		ex.rec.HTTPRoute = "/v1/models/{model}"
	}
	if !ctx.IsGet() {
		ctx.Response.Header.Set("Allow", "GET")
		s.attribute(ctx, ex)
		s.reject(ctx, ex, methodNotAllowed(ctx))
		return
	}
	key, err := s.authenticate(ctx, ex.live.dir)
	if err != nil {
		s.reject(ctx, ex, clientError(err))
		return
	}
	ex.rec.TenantID, ex.rec.KeyID = key.Tenant.ID, key.ID
	body := key.ModelsJSON()
	if name != nil {
		ex.rec.Model = recordedModel(name)
		var ok bool
		if body, ok = key.ModelJSON(name); !ok {
			s.reject(ctx, ex, modelNotFound(name))
			return
		}
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	ex.rec.Status = fasthttp.StatusOK
	ex.rec.ClientBytes = int64(len(body))
	s.finish(ex)
}

// maxRecordedModel bounds a client's model name on the call's record: the
// body may hold a 6 MiB name, and the record goes on a span.
const maxRecordedModel = 256

// recordedModel is a model name the client sent, as the record keeps it:
// valid UTF-8 (invalid bytes become U+FFFD), at most maxRecordedModel bytes.
func recordedModel(b []byte) string { return call.CleanBytes(b, maxRecordedModel) }

func modelNotFound(model []byte) *apierror.Error {
	return apierror.New(fasthttp.StatusNotFound, apierror.TypeInvalidRequest, "model_not_found", "model",
		"The model `"+clip(model, 256)+"` does not exist or you do not have access to it.")
}

// clientError is the *apierror.Error that err carries, to answer with. An
// error without one is a bug in Loom, answered as a 500 rather than
// relayed: its text was never written for a client.
func clientError(err error) *apierror.Error {
	if e, ok := errors.AsType[*apierror.Error](err); ok {
		return e
	}
	return apierror.New(fasthttp.StatusInternalServerError, apierror.TypeServer, "internal_error", "",
		"The gateway failed to handle the request.")
}

// reject answers with an error Loom made and completes the call's record;
// one without a tenant is counted rather than recorded (see finish).
func (s *Server) reject(ctx *fasthttp.RequestCtx, ex *exchange, e *apierror.Error) {
	setBudgetHeaders(&ctx.Response.Header, &ex.budgetDecision)
	status := ex.writeError(ctx, e)
	rec := &ex.rec
	rec.Status = status
	if rec.Outcome == "" {
		rec.Outcome = call.OutcomeRejected
	}
	if rec.ErrorType == "" {
		rec.ErrorType = e.Code
		if rec.ErrorType == "" {
			rec.ErrorType = strconv.Itoa(e.Status)
		}
	}
	if rec.ErrorMessage == "" {
		rec.ErrorMessage = e.Message
	}
	s.finish(ex)
}

// errNotRecording refuses a call that could not be recorded: a gateway
// whose numbers are billed from serves nothing off the books.
var errNotRecording = &apierror.Error{Status: fasthttp.StatusServiceUnavailable, Type: apierror.TypeServer,
	Code: "recording_unavailable", RetryAfter: 1,
	Message: "Loom cannot record calls right now (its trace spool is full while the collector catches up); retry shortly."}

func writeError(ctx *fasthttp.RequestCtx, e *apierror.Error) {
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	if e.RetryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	ctx.Response.SetBodyRaw(e.AppendJSON(nil))
}

// handleTransportError answers requests fasthttp could not read: bodies over
// the limit, broken framing, oversized headers. The record gets no route:
// the raw path of a request that could not even be read is the client's
// bytes (POST /%FF made a span name that was not UTF-8), so the span is
// named by its method alone and error.type says what went wrong.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	if nothingRead(ctx, err) {
		// A new connection that sent not one byte before client_read (an
		// HTTP client's spare connection, a port scan) made no call: no
		// record, and no answer, which a client would take for the answer
		// to a request it has not sent yet. fasthttp writes whatever the
		// handler leaves, so the connection is closed under it.
		_ = ctx.Conn().Close()
		return
	}
	ex := s.begin(ctx, "", "")
	var e *apierror.Error
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Headers that did not all arrive in time (a slow or stalled
		// client): a 408, as for a body that stalls.
		e = apierror.New(fasthttp.StatusRequestTimeout, apierror.TypeInvalidRequest, "request_timeout", "",
			"The request did not arrive in time.")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = s.tooLarge()
	case errors.As(err, &small):
		e = apierror.New(fasthttp.StatusRequestHeaderFieldsTooLarge, apierror.TypeInvalidRequest, "headers_too_large", "",
			"The request headers are too large.")
	default:
		e = apierror.New(fasthttp.StatusBadRequest, apierror.TypeInvalidRequest, "malformed_request", "",
			"The HTTP request could not be read.")
	}
	if k, err := s.authenticate(ctx, ex.live.dir); err == nil {
		ex.rec.TenantID, ex.rec.KeyID = k.Tenant.ID, k.ID
	}
	ctx.SetConnectionClose()
	s.reject(ctx, ex, e)
}

// nothingRead tells a connection that closed or timed out before sending a
// byte: fasthttp passes the first read's own error on, unwrapped, and has
// parsed no header (on a kept-alive connection it closes such a one itself).
func nothingRead(ctx *fasthttp.RequestCtx, err error) bool {
	// Unwrapped on purpose: fasthttp wraps every error of a request it
	// began to read; only the first read's is passed on bare.
	_, raw := err.(*net.OpError) //nolint:errorlint // the bare error is the signal

	return raw && len(ctx.Request.Header.RawHeaders()) == 0
}

func (s *Server) tooLarge() *apierror.Error {
	return apierror.New(fasthttp.StatusRequestEntityTooLarge, apierror.TypeInvalidRequest, "request_too_large", "",
		"The request body is larger than this gateway accepts ("+strconv.Itoa(s.cfg.MaxBodyBytes)+" bytes).")
}

// post relays one completion, embeddings or Responses call of ep; model,
// when set, names the model in the URL (Azure's deployment path).
func (s *Server) post(ctx *fasthttp.RequestCtx, ep *endpoint, model []byte) {
	ex := s.begin(ctx, ep.op, ep.route)
	ex.ep, ex.pathModel = ep, model
	rec := &ex.rec
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		s.attribute(ctx, ex)
		s.reject(ctx, ex, methodNotAllowed(ctx))
		return
	}
	key, err := s.authenticate(ctx, ex.live.dir)
	if err != nil {
		s.reject(ctx, ex, clientError(err))
		return
	}
	rec.TenantID, rec.KeyID = key.Tenant.ID, key.ID
	body, err := s.readBody(ctx, ex)
	if err != nil {
		// The rest of the body is unread: the connection cannot carry
		// another request, and lingers so the client reads the answer.
		ctx.SetConnectionClose()
		lingerAfter(ctx)
		if errors.Is(err, errBodyTooLarge) {
			s.reject(ctx, ex, s.tooLarge())
		} else {
			s.reject(ctx, ex, bodyUnreadable(err))
		}
		return
	}
	// What the client asked for, recorded before anything can refuse the
	// call: a streamed request refused for its model is still a streamed
	// call (the console said "Stream: no" for a streamed 404).
	err = ex.parse(body)
	rec.Stream = ex.req.Stream
	if err != nil {
		s.reject(ctx, ex, clientError(err))
		return
	}
	rt, ok := key.Route(ex.req.Model)
	if !ok {
		rec.Model = recordedModel(ex.req.Model)
		s.reject(ctx, ex, modelNotFound(ex.req.Model))
		return
	}
	dep := rt.Upstream
	if aerr := ex.prepare(dep, rt.Model); aerr != nil {
		rec.Model = rt.Model
		s.reject(ctx, ex, aerr)
		return
	}
	rec.Model, rec.UpstreamModel = rt.Model, rt.UpstreamModel
	// Where the call would go first; forward sets each attempt's own.
	rec.Deployment, rec.Provider = dep.Name, dep.Provider
	rec.ServerAddress, rec.ServerPort = dep.Host, dep.Port
	rec.Stream, rec.Params, rec.UsageRequested = ex.req.Stream, ex.req.Params, ex.req.AddsUsage()
	if s.opts.Recording != nil && !s.opts.Recording() {
		s.reject(ctx, ex, errNotRecording)
		return
	}
	if !s.admit(ctx, ex, key, body) {
		return
	}
	if !s.reserveBudget(ctx, ex, key, rt, len(body)) {
		return
	}
	if s.opts.AddedLatency > 0 {
		time.Sleep(s.opts.AddedLatency)
	}
	s.forward(ctx, ex, key, rt, ep.op, body)
}

// takeSlot waits (at most timeouts.pool_wait) for the call's place in its
// deployment's pool, within its tenant's share. finish gives it back.
func (s *Server) takeSlot(ex *exchange, dep *upstream.Deployment) *apierror.Error {
	sf := s.slotFor(ex, dep)
	if sf.err != nil {
		rec := &ex.rec
		if sf.outcome != "" {
			rec.Outcome = sf.outcome
		}
		rec.ErrorType, rec.ErrorMessage = sf.errorType, sf.message
	}
	return sf.err
}

// slotFailure is why a call got no place in a deployment's pool: the
// answer, and what the record says, applied only when no other deployment
// serves the call.
type slotFailure struct {
	err                *apierror.Error
	outcome            call.Outcome
	errorType, message string
}

// slotFor is takeSlot without touching the record.
func (s *Server) slotFor(ex *exchange, dep *upstream.Deployment) slotFailure {
	slot, err := dep.Acquire(ex.rec.TenantID, ex.live.cfg.Timeouts.PoolWait)
	if err == nil {
		ex.slot = slot
		return slotFailure{}
	}
	f := slotFailure{message: err.Error()}
	if errors.Is(err, upstream.ErrShareExceeded) {
		// The tenant's own doing, and it clears as its calls finish: a
		// rate limit, as OpenAI would send it.
		f.outcome, f.errorType = call.OutcomeRateLimited, "deployment_share_exceeded"
		f.err = apierror.New(fasthttp.StatusTooManyRequests, "requests", "deployment_share_exceeded", "",
			"Too many concurrent requests from tenant "+ex.rec.TenantID+" to this model's deployment (at most "+
				strconv.Itoa(dep.TenantShare())+" at once). Please try again shortly.")
	} else {
		f.errorType = "deployment_saturated"
		f.err = saturated()
	}
	f.err.RetryAfter = 1
	return f
}

func saturated() *apierror.Error {
	e := apierror.New(fasthttp.StatusServiceUnavailable, apierror.TypeServer, "deployment_saturated", "",
		"Every connection to this model's deployment is in use. Please try again shortly.")
	e.RetryAfter = 1
	return e
}

func isEventStream(ct []byte) bool {
	return bytes.HasPrefix(ct, []byte("text/event-stream"))
}

func (s *Server) upstreamFailed(ctx *fasthttp.RequestCtx, ex *exchange, err error) {
	rec := &ex.rec
	rec.UpstreamEnd = time.Now()
	rec.Outcome = call.OutcomeUpstreamFailed
	var e *apierror.Error
	switch {
	case errors.Is(err, upstream.ErrTimeout):
		rec.ErrorType = "timeout"
		e = apierror.New(fasthttp.StatusGatewayTimeout, apierror.TypeServer, "upstream_timeout", "",
			"The upstream provider did not answer in time.")
	case errors.Is(err, upstream.ErrSaturated):
		rec.ErrorType = "deployment_saturated"
		e = saturated()
	case errors.Is(err, upstream.ErrTooLarge):
		rec.ErrorType = "response_too_large"
		e = apierror.New(fasthttp.StatusBadGateway, apierror.TypeServer, "upstream_response_too_large", "",
			"The upstream provider's answer was larger than this gateway accepts ("+strconv.Itoa(ex.live.cfg.MaxResponseBytes)+" bytes).")
	case errors.Is(err, upstream.ErrConnect):
		rec.ErrorType = "connect"
		e = apierror.New(fasthttp.StatusBadGateway, apierror.TypeServer, "upstream_unreachable", "",
			"The upstream provider could not be reached.")
	default:
		rec.ErrorType = "upstream_reset"
		e = apierror.New(fasthttp.StatusBadGateway, apierror.TypeServer, "upstream_reset", "",
			"The upstream provider closed the connection without an answer.")
	}
	rec.ErrorMessage = err.Error()
	s.log.Warn("upstream failed", "deployment", rec.Deployment, "tenant", rec.TenantID, "error", err)
	s.reject(ctx, ex, e)
}

// copyHeaders passes the upstream's useful response headers to the client.
// The upstream's x-ratelimit-* headers never pass (ForwardResponseHeader):
// they describe the gateway's provider account, shared by every tenant, not
// the caller. Loom's own, when it limits the caller, are set here.
func copyHeaders(ctx *fasthttp.RequestCtx, ex *exchange, dep *upstream.Deployment, uresp *fasthttp.Response) {
	connection := uresp.Header.Peek(fasthttp.HeaderConnection)
	for k, v := range uresp.Header.All() {
		if dep.ForwardResponseHeader(k) && !upstream.NamedByConnection(connection, k) {
			ctx.Response.Header.SetBytesKV(k, v)
		}
	}
	setRateHeaders(&ctx.Response.Header, &ex.decision)
	setBudgetHeaders(&ctx.Response.Header, &ex.budgetDecision)
}

func setOverhead(ctx *fasthttp.RequestCtx, rec *call.Record, upstreamWait time.Duration) {
	rec.Overhead = time.Since(rec.Start) - upstreamWait
	var buf [24]byte
	ctx.Response.Header.SetBytesV(HeaderOverhead,
		strconv.AppendFloat(buf[:0], float64(rec.Overhead)/float64(time.Millisecond), 'f', 3, 64))
}

// unary relays a whole (non-streamed) answer: status, useful headers and body
// unchanged.
func (s *Server) unary(ctx *fasthttp.RequestCtx, ex *exchange, dep *upstream.Deployment, uresp *fasthttp.Response) {
	rec := &ex.rec
	body, err := dep.ReadAnswer(uresp)
	rec.UpstreamEnd = time.Now()
	rec.UpstreamBytes = int64(len(body))
	if err != nil {
		fasthttp.ReleaseResponse(uresp)
		s.upstreamFailed(ctx, ex, err)
		return
	}
	s.answer(ctx, ex, dep, uresp, body)
}

// answer relays an upstream's whole answer, body read (valid until uresp
// is released, which answer does).
func (s *Server) answer(ctx *fasthttp.RequestCtx, ex *exchange, dep *upstream.Deployment, uresp *fasthttp.Response, body []byte) {
	rec := &ex.rec
	status := uresp.StatusCode()
	if status == fasthttp.StatusUnauthorized || status == fasthttp.StatusForbidden {
		fasthttp.ReleaseResponse(uresp)
		s.credentialRefused(ctx, ex, status)
		return
	}
	ex.observe(rec, status, body)
	if rec.Content.Capture {
		rec.Content.Response = append(rec.Content.Response[:0], body...)
	}
	if status >= 400 {
		rec.Outcome = call.OutcomeUpstreamError
		rec.ErrorType = strconv.Itoa(status)
	}
	status, body = ex.answer(rec, status, body)
	copyHeaders(ctx, ex, dep, uresp)
	s.setCostHeaders(&ctx.Response.Header, rec)
	ctx.SetStatusCode(status)
	ctx.SetBody(body)
	fasthttp.ReleaseResponse(uresp)
	rec.Status = status
	rec.ClientBytes = int64(len(body))
	setOverhead(ctx, rec, ex.waited+rec.UpstreamEnd.Sub(rec.UpstreamStart))
	s.finish(ex)
}

// credentialRefused answers an upstream 401 or 403 with Loom's own 502: the
// deployment's credential failed, which is the operator's to fix, not the
// tenant's. The upstream's body never reaches the tenant, nor the record
// (it can echo the credential, masked), and the record keeps its status.
func (s *Server) credentialRefused(ctx *fasthttp.RequestCtx, ex *exchange, status int) {
	rec := &ex.rec
	rec.Outcome, rec.ErrorType = call.OutcomeUpstreamError, "upstream_auth_failed"
	now := time.Now().Unix()
	if last := s.lastAuthLog.Load(); now-last >= 60 && s.lastAuthLog.CompareAndSwap(last, now) {
		s.log.Error("upstream refused the deployment's credential (logged once a minute)",
			"deployment", rec.Deployment, "tenant", rec.TenantID, "status", status)
	}
	s.reject(ctx, ex, apierror.New(fasthttp.StatusBadGateway, apierror.TypeServer, "upstream_auth_failed", "",
		"The upstream provider refused the credential this gateway holds for the model's deployment ("+
			strconv.Itoa(status)+"). This is not a problem with your API key; the gateway's operator has to fix it."))
}

// stream hands the upstream's event stream, which ex.stream was Reset for
// and primed with its first event (see forward), to the relay, which
// fasthttp reads after this handler returns. From here on only the relay
// and its Done callback own ex and uresp.
func (s *Server) stream(ctx *fasthttp.RequestCtx, ex *exchange, dep *upstream.Deployment, uresp *fasthttp.Response) {
	rec := &ex.rec
	copyHeaders(ctx, ex, dep, uresp)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	// The head goes out at once, with the first event the relay holds
	// (the stream was committed to when it arrived), not after it.
	ctx.Response.ImmediateHeaderFlush = true
	rec.Status = fasthttp.StatusOK
	// Everything since the request went upstream was the wait for its head
	// and first event.
	setOverhead(ctx, rec, ex.waited+time.Since(rec.UpstreamStart))
	ex.uresp = uresp
	// The stream sets the client's write deadline per event (see
	// relay.Options.WriteTimeout). Setting it through ctx first tells
	// fasthttp that the handler owns the deadline: its WriteTimeout (one
	// deadline for the whole response) then does not cut a long stream,
	// and it clears the deadline once the response is written.
	_ = ctx.SetWriteDeadline(time.Now().Add(ex.live.cfg.Timeouts.StreamWrite))
	s.track(&ex.stream)
	ctx.SetBodyStream(&ex.stream, -1)
}

// fasthttp writes a stream with its WriteTo, straight from the relay's
// buffer (see relay.Stream.WriteTo).
var _ fasthttp.BodyWriterTo = (*relay.Stream)(nil)
