package server

import (
	"bytes"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/relay"
	"github.com/loom-gateway/loom/proxy/tap"
	"github.com/loom-gateway/loom/proxy/tenant"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// dialect is the API a call speaks, which decides how its body is read,
// where it goes upstream and how its answer is tapped.
type dialect uint8

const (
	// dialectOpenAI: chat completions, completions, embeddings.
	dialectOpenAI dialect = iota
	// dialectResponses: POST /v1/responses, tapped by tap.ObserveResponse
	// and tap.ObserveResponseEvent; its response id is remembered so that
	// lookups of it go to the deployment that made it.
	dialectResponses
	// dialectLookup: GET, DELETE, cancel and input items of a stored
	// response. Their answers repeat the response's usage, which was
	// counted when it was made: nothing is tapped.
	dialectLookup
)

// endpoint is an inbound route that post serves.
type endpoint struct {
	op      call.Operation
	route   string
	dialect dialect
}

// The routes post serves. The Responses API's operation is chat, as the
// GenAI conventions' OpenAI page names inference (it tells the two APIs
// apart with openai.api.type, "responses"); the route says which it was.
var (
	epChat        = &endpoint{op: call.OpChat, route: "/v1/chat/completions"}
	epCompletions = &endpoint{op: call.OpTextCompletion, route: "/v1/completions"}
	epEmbeddings  = &endpoint{op: call.OpEmbeddings, route: "/v1/embeddings"}
	epResponses   = &endpoint{op: call.OpChat, route: "/v1/responses", dialect: dialectResponses}
)

// parse reads the client's body as the call's endpoint expects it.
func (ex *exchange) parse(body []byte) error {
	switch {
	case ex.ep.dialect == dialectResponses:
		return ex.req.ParseResponses(body)
	case ex.pathModel != nil:
		return ex.req.ParseNamed(ex.ep.op, ex.pathModel, body)
	}
	return ex.req.Parse(ex.ep.op, body)
}

// upstreamPath is where the call goes on t's deployment.
func (ex *exchange) upstreamPath(t *tenant.Target) string {
	if ex.ep.dialect == dialectResponses {
		return t.Upstream.ResponsesPath("")
	}
	return t.Path(ex.ep.op)
}

// observe taps a unary answer of the upstream's status.
func (ex *exchange) observe(rec *call.Record, status int, body []byte) {
	if ex.observeTranslated(rec, status, body) {
		return
	}
	switch ex.kind() {
	case dialectResponses:
		tap.ObserveResponse(rec, body)
	case dialectLookup:
	default:
		tap.Observe(rec, body)
	}
}

func (ex *exchange) kind() dialect {
	if ex.ep == nil {
		return dialectOpenAI
	}
	return ex.ep.dialect
}

// observeNothing taps a relayed lookup stream (GET /v1/responses/{id}
// ?stream=true replays a stored response's events): its usage was counted
// when the response was made.
func observeNothing(*call.Record, []byte) tap.Chunk { return tap.Chunk{Valid: true} }

func noContent(*call.Content, []byte) {}

// setDialect points a relayed stream at the call's own tap, or its
// translator.
func (ex *exchange) setDialect(o *relay.Options) {
	if ex.setTranslator(o) {
		return
	}
	switch ex.kind() {
	case dialectResponses:
		o.Observe, o.ObserveContent = tap.ObserveResponseEvent, tap.ObserveResponseContent
	case dialectLookup:
		o.Observe, o.ObserveContent = observeNothing, noContent
	}
}

// responseOwner is who made a stored response, and where.
type responseOwner struct {
	tenant, model, deployment string
}

// responseIndex maps the ids of responses made through this gateway to
// their tenant and deployment, so that GET, DELETE, cancel and input items
// go where the response lives, and never to another tenant. It is bounded:
// at most maxResponseIDs ids of at most maxResponseIDBytes each (a longer
// id is not remembered); past that, the oldest id is forgotten first.
//
// An id it does not know (made before a restart, through another replica,
// or forgotten) is answered 404, never tried on the tenant's deployments:
// two tenants that share a deployment and the gateway's credential would
// otherwise read each other's responses by id.
type responseIndex struct {
	mu    sync.Mutex
	owner map[string]responseOwner
	ring  []string // ids in the order remembered; next is the oldest
	next  int
}

const (
	maxResponseIDs     = 1 << 16
	maxResponseIDBytes = 128
)

func (x *responseIndex) remember(id []byte, o responseOwner) {
	if len(id) == 0 || len(id) > maxResponseIDBytes {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.owner == nil {
		x.owner = make(map[string]responseOwner)
	}
	if _, ok := x.owner[string(id)]; ok {
		return
	}
	key := string(id)
	if len(x.ring) < maxResponseIDs {
		x.ring = append(x.ring, key)
	} else {
		delete(x.owner, x.ring[x.next])
		x.ring[x.next] = key
		x.next = (x.next + 1) % maxResponseIDs
	}
	x.owner[key] = o
}

func (x *responseIndex) lookup(id []byte) (responseOwner, bool) {
	x.mu.Lock()
	o, ok := x.owner[string(id)]
	x.mu.Unlock()
	return o, ok
}

// forget drops a deleted response's id (its place in the ring stays until
// reused).
func (x *responseIndex) forget(id []byte) {
	x.mu.Lock()
	delete(x.owner, string(id))
	x.mu.Unlock()
}

// rememberResponse notes who made the response a finished call created.
func (s *Server) rememberResponse(ex *exchange) {
	rec := &ex.rec
	if ex.kind() != dialectResponses || rec.UpstreamStatus != fasthttp.StatusOK || len(rec.ResponseID) == 0 {
		return
	}
	s.responseIDs.remember(rec.ResponseID, responseOwner{tenant: rec.TenantID, model: rec.Model, deployment: rec.Deployment})
}

// Lookup routes, by what follows the response id.
var (
	epRetrieve   = &endpoint{op: call.OpRetrieveResponse, route: "/v1/responses/{response_id}", dialect: dialectLookup}
	epDelete     = &endpoint{op: call.OpDeleteResponse, route: "/v1/responses/{response_id}", dialect: dialectLookup}
	epInputItems = &endpoint{op: call.OpListResponseInputs, route: "/v1/responses/{response_id}/input_items", dialect: dialectLookup}
	epCancel     = &endpoint{op: call.OpCancelResponse, route: "/v1/responses/{response_id}/cancel", dialect: dialectLookup}
)

// responseLookup serves GET and DELETE /v1/responses/{id}, GET
// /v1/responses/{id}/input_items and POST /v1/responses/{id}/cancel: rest
// is what follows "/v1/responses/". The call goes to the deployment that
// made the response, with the query string as the client sent it.
func (s *Server) responseLookup(ctx *fasthttp.RequestCtx, rest []byte) {
	id, sub, _ := bytes.Cut(rest, []byte("/"))
	var ep *endpoint
	allow := ""
	switch string(sub) {
	case "":
		allow = "GET, DELETE"
		ep = epRetrieve
		if ctx.IsDelete() {
			ep = epDelete
		} else if !ctx.IsGet() {
			ep = nil
		}
	case "input_items":
		allow = "GET"
		if ctx.IsGet() {
			ep = epInputItems
		}
	case "cancel":
		allow = "POST"
		if ctx.IsPost() {
			ep = epCancel
		}
	default:
		s.unknownURL(ctx)
		return
	}
	if len(id) == 0 {
		s.unknownURL(ctx)
		return
	}
	if ep == nil {
		ex := s.begin(ctx, "", "")
		ctx.Response.Header.Set("Allow", allow)
		s.attribute(ctx, ex)
		s.reject(ctx, ex, methodNotAllowed(ctx))
		return
	}
	ex := s.begin(ctx, ep.op, ep.route)
	ex.ep = ep
	rec := &ex.rec
	key, err := s.authenticate(ctx, ex.live.dir)
	if err != nil {
		s.reject(ctx, ex, clientError(err))
		return
	}
	rec.TenantID, rec.KeyID = key.Tenant.ID, key.ID
	rec.ResponseID = append(rec.ResponseID[:0], call.CleanBytes(id, maxResponseIDBytes)...)
	own, ok := s.responseIDs.lookup(id)
	if !ok || own.tenant != key.Tenant.ID {
		s.reject(ctx, ex, responseNotFound(id))
		return
	}
	rt, ok := key.Route([]byte(own.model))
	if !ok {
		s.reject(ctx, ex, responseNotFound(id))
		return
	}
	dep, auth := rt.Upstream, rt.Auth
	if dep.Name != own.deployment {
		// The model has moved since: the response still lives where it
		// was made, reached with the gateway's own credential.
		if dep, ok = ex.live.deployments[own.deployment]; !ok {
			s.reject(ctx, ex, responseNotFound(id))
			return
		}
		auth = upstream.Auth{}
	}
	rec.Model, rec.UpstreamModel = rt.Model, rt.UpstreamModel
	rec.Deployment, rec.Provider = dep.Name, dep.Provider
	rec.ServerAddress, rec.ServerPort = dep.Host, dep.Port
	rec.Stream = ctx.IsGet() && string(sub) == "" && bytes.Equal(ctx.QueryArgs().Peek("stream"), []byte("true"))
	if s.opts.Recording != nil && !s.opts.Recording() {
		s.reject(ctx, ex, errNotRecording)
		return
	}
	if !s.admitLookup(ctx, ex, key) {
		return
	}
	if aerr := s.takeSlot(ex, dep); aerr != nil {
		s.reject(ctx, ex, aerr)
		return
	}
	ureq := fasthttp.AcquireRequest()
	path := dep.ResponsesPath("/" + string(rest))
	if q := upstreamQuery(ctx.QueryArgs()); len(q) > 0 {
		path += "?" + string(q)
	}
	dep.Prepare(ureq, path, auth)
	ureq.Header.SetMethodBytes(ctx.Method())
	connection := ctx.Request.Header.Peek(fasthttp.HeaderConnection)
	for k, v := range ctx.Request.Header.All() {
		if dep.ForwardRequestHeader(k) && !upstream.NamedByConnection(connection, k) {
			ureq.Header.AddBytesKV(k, v)
		}
	}
	uresp := fasthttp.AcquireResponse()
	uresp.StreamBody = rec.Stream
	rec.UpstreamStart = time.Now()
	err = dep.Do(ureq, uresp)
	fasthttp.ReleaseRequest(ureq)
	if err != nil {
		fasthttp.ReleaseResponse(uresp)
		s.upstreamFailed(ctx, ex, err)
		return
	}
	rec.UpstreamHeader = time.Now()
	rec.UpstreamStatus = uresp.StatusCode()
	if ep == epDelete && uresp.StatusCode() == fasthttp.StatusOK {
		s.responseIDs.forget(id)
	}
	if rec.Stream && uresp.StatusCode() == fasthttp.StatusOK && isEventStream(uresp.Header.ContentType()) {
		if body, ok := uresp.BodyStream().(relay.Body); ok {
			ex.stream.Reset(body, rec, relayOptions(ex, ctx.Conn()))
			s.stream(ctx, ex, dep, uresp)
			return
		}
	}
	s.unary(ctx, ex, dep, uresp)
}

// upstreamQuery is the client's query string less api-version, which an
// Azure client sends on Azure's dated paths: what goes upstream is the
// deployment's own path (Azure's v1 API refuses dated versions).
func upstreamQuery(args *fasthttp.Args) []byte {
	var q []byte
	for k, v := range args.All() {
		if string(k) == "api-version" {
			continue
		}
		if len(q) > 0 {
			q = append(q, '&')
		}
		q = fasthttp.AppendQuotedArg(q, k)
		q = append(q, '=')
		q = fasthttp.AppendQuotedArg(q, v)
	}
	return q
}

// admitLookup counts a lookup against the key's and tenant's request
// limits; it reserves no tokens (it generates none).
func (s *Server) admitLookup(ctx *fasthttp.RequestCtx, ex *exchange, key *tenant.Key) bool {
	ex.ticket, ex.decision = s.opts.Limiter.Admit(ctx, &key.Limit, &key.Tenant.Limit, 0, false)
	d := &ex.decision
	if d.Err != nil {
		s.limitTrouble(d.Err)
	}
	if d.OK {
		ex.admitted = true
		return true
	}
	setRateHeaders(&ctx.Response.Header, d)
	ex.rec.Outcome, ex.rec.ErrorType = call.OutcomeRateLimited, "rate_limit_exceeded"
	s.reject(ctx, ex, rateLimited(key, d))
	return false
}

// responseNotFound is OpenAI's answer to an id it does not hold: Loom
// gives the same to an id of another tenant, so that one tenant cannot
// learn whether another's id exists.
func responseNotFound(id []byte) *apierror.Error {
	return apierror.New(fasthttp.StatusNotFound, apierror.TypeInvalidRequest, "", "",
		"Response with id '"+clip(id, 128)+"' not found.")
}

func (s *Server) unknownURL(ctx *fasthttp.RequestCtx) {
	ex := s.begin(ctx, "", "")
	s.attribute(ctx, ex)
	s.reject(ctx, ex, apierror.New(fasthttp.StatusNotFound, apierror.TypeInvalidRequest, "unknown_url", "",
		"Invalid URL ("+clip(ctx.Method(), 16)+" "+clip(ctx.Path(), 256)+")"))
}

// routeResponses serves the Responses API's paths below /v1/responses/.
func (s *Server) routeResponses(ctx *fasthttp.RequestCtx, path []byte) bool {
	rest, ok := bytes.CutPrefix(path, []byte("/v1/responses/"))
	if !ok {
		return false
	}
	s.responseLookup(ctx, rest)
	return true
}
