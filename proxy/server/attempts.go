package server

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/relay"
	"github.com/loom-gateway/loom/proxy/tenant"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// Routing: a call tries its route's candidates (tenant.Route.Candidates:
// the model's deployments by priority tier, weighted within a tier, then
// its fallbacks') one at a time, and moves to the next only while nothing
// has reached the client. A unary answer is read whole before anything is
// written, so any attempt can fail over; a stream is committed to only
// once its upstream produced its first real event (relay.Stream.Prime), so
// a stream never mixes two upstreams: a failure after that ends it with an
// error event, as before. Each failed attempt is kept on the record
// (call.Record.Attempts) and becomes its own CLIENT span; the attempt that
// served is the record's own. Usage, limits and cost count that one alone.

// errFirstEvent ends a stream attempt whose upstream sent its head but no
// event within timeouts.first_byte (or the call's budget).
var errFirstEvent = fmt.Errorf("%w: no event within timeouts.first_byte of the request", upstream.ErrTimeout)

// errRetired closes the body of a stream attempt the call moved on from.
var errRetired = errors.New("the call moved to another deployment")

// maxKeptCandidates is the room kept in each pooled exchange for a call's
// candidates; a route with more allocates for that call.
const maxKeptCandidates = 16

// failure is a failed attempt's state, kept until the call either moves
// on (retire) or has nothing left to try (answerFailure).
type failure struct {
	// resp and body are the upstream's error answer (429, 5xx), to relay
	// as it is when no other attempt serves; err is a transport failure.
	resp *fasthttp.Response
	body []byte
	// primed is the body of a stream whose first event was an error worth
	// another upstream (relay.FirstEventError): ex.stream holds it,
	// primed, to relay as it is when no other attempt serves.
	primed relay.Body
	dep    *upstream.Deployment
	err    error
	// errorType and reason describe it on the attempt's span.
	errorType, reason string
}

// forward sends the call to its route's candidates until one serves, and
// answers. ex.rec names the route's first deployment on entry; each
// attempt sets its own.
func (s *Server) forward(ctx *fasthttp.RequestCtx, ex *exchange, key *tenant.Key, rt *tenant.Route, op call.Operation, body []byte) {
	rec := &ex.rec
	rc := &ex.live.cfg.Routing
	pol := rc.Policy(rt.Routing)
	var budgetEnd time.Time
	if pol.Budget > 0 {
		budgetEnd = rec.Start.Add(pol.Budget)
	}
	ex.cands = rt.Candidates(ex.cands[:0], rand.IntN)
	var (
		attempts             int
		slotErr              slotFailure
		skippedOpen, cooling bool
		until                time.Time // the earliest a skipped candidate comes back
	)
	for _, t := range ex.cands {
		if attempts == pol.MaxAttempts {
			break
		}
		now := time.Now()
		if attempts > 0 && !budgetEnd.IsZero() && !now.Before(budgetEnd) {
			break
		}
		// A lone deployment is never skipped: there is nothing to route
		// around, and its own answer (a 429 with its Retry-After, a 5xx)
		// tells the client what Loom would.
		probe, skip, back := false, upstream.NotSkipped, time.Time{}
		if len(ex.cands) > 1 {
			probe, skip, back = t.Upstream.Admit(now, rc.CircuitCooldown)
		}
		if skip != upstream.NotSkipped {
			s.routing.skipped[skip].Add(1)
			skippedOpen, cooling = skippedOpen || skip == upstream.SkipOpen, cooling || skip == upstream.SkipCooling
			if until.IsZero() || back.Before(until) {
				until = back
			}
			continue
		}
		prev := ex.slot
		ex.slot = upstream.Slot{}
		if sf := s.slotFor(ex, t.Upstream); sf.err != nil {
			ex.slot = prev
			slotErr = sf
			continue
		}
		if attempts > 0 {
			prev.Release()
			s.retire(ex)
		}
		attempts++
		if s.try(ctx, ex, key, t, op, body, probe, budgetEnd) {
			if attempts > 1 {
				s.routing.failovers.Add(1)
			}
			return
		}
	}
	switch {
	case attempts > 0:
		s.routing.attempts[outcomeFailed].Add(1)
		s.answerFailure(ctx, ex)
	case slotErr.err != nil:
		if slotErr.outcome != "" {
			rec.Outcome = slotErr.outcome
		}
		rec.ErrorType, rec.ErrorMessage = slotErr.errorType, slotErr.message
		s.reject(ctx, ex, slotErr.err)
	default:
		s.reject(ctx, ex, unavailable(rec, cooling && !skippedOpen, until))
	}
}

// unavailable is the answer when every candidate is skipped: 429 when
// their upstreams asked for a pause, 503 when their circuits are open,
// with Retry-After saying when the first comes back.
func unavailable(rec *call.Record, cooling bool, until time.Time) *apierror.Error {
	var e *apierror.Error
	rec.Outcome = call.OutcomeUpstreamFailed
	if cooling {
		rec.ErrorType = "upstream_rate_limited"
		e = apierror.New(fasthttp.StatusTooManyRequests, "requests", "upstream_rate_limited", "",
			"Every deployment of this model asked for a pause (Retry-After). Please try again after it.")
	} else {
		rec.ErrorType = "circuit_open"
		e = apierror.New(fasthttp.StatusServiceUnavailable, apierror.TypeServer, "upstream_unavailable", "",
			"Every deployment of this model is failing; the gateway is giving them a rest. Please try again shortly.")
	}
	rec.ErrorMessage = e.Message
	e.RetryAfter = max(1, int((time.Until(until)+time.Second-1)/time.Second))
	return e
}

// try makes one attempt on t. It reports true when the call is answered
// (served, or an answer that is not worth another attempt); false leaves
// the failure in ex.fail for forward to retire or answer with.
func (s *Server) try(ctx *fasthttp.RequestCtx, ex *exchange, key *tenant.Key, t *tenant.Target, op call.Operation,
	body []byte, probe bool, budgetEnd time.Time) bool {
	rec := &ex.rec
	dep := t.Upstream
	rec.Deployment, rec.Provider = dep.Name, dep.Provider
	rec.ServerAddress, rec.ServerPort = dep.Host, dep.Port
	rec.UpstreamModel = t.UpstreamModel
	rec.FallbackModel = ""
	if t.Fallback {
		rec.FallbackModel = t.Model
	}

	// Each attempt is translated for its own deployment: a model's
	// deployments (and its fallbacks') may speak different dialects.
	if aerr := ex.prepare(dep, t.Model); aerr != nil {
		s.reject(ctx, ex, aerr)
		return true
	}
	ureq := fasthttp.AcquireRequest()
	dep.Prepare(ureq, ex.upstreamPath(t), t.Auth)
	connection := ctx.Request.Header.Peek(fasthttp.HeaderConnection)
	for k, v := range ctx.Request.Header.All() {
		if dep.ForwardRequestHeader(k) && !upstream.NamedByConnection(connection, k) {
			ureq.Header.AddBytesKV(k, v)
		}
	}
	ureq.Header.SetContentType("application/json")
	var err error
	if ex.body, err = ex.upstreamBody(body, t.UpstreamModel, dep); err != nil {
		// The request cannot be put in this deployment's terms: the
		// client's to fix, whichever deployment would take it.
		fasthttp.ReleaseRequest(ureq)
		s.reject(ctx, ex, clientError(err))
		return true
	}
	if p := key.Tenant.Content; p.Capture {
		// ex.body lives until the exchange is reused, after the sink ran.
		rec.Content.Capture, rec.Content.Max, rec.Content.Request = true, p.MaxBytes, ex.body
	}
	ureq.SetBodyRaw(ex.body)
	uresp := fasthttp.AcquireResponse()
	uresp.StreamBody = ex.req.Stream
	rec.UpstreamStart = time.Now()
	err = dep.Do(ureq, uresp)
	fasthttp.ReleaseRequest(ureq)
	if err != nil {
		fasthttp.ReleaseResponse(uresp)
		return s.transportFailed(ctx, ex, dep, probe, err)
	}
	rec.UpstreamHeader = time.Now()
	rec.UpstreamStatus = uresp.StatusCode()
	if ex.req.Stream && uresp.StatusCode() == fasthttp.StatusOK && isEventStream(uresp.Header.ContentType()) {
		if sbody, ok := uresp.BodyStream().(relay.Body); ok {
			ex.stream.Reset(sbody, rec, relayOptions(ex, ctx.Conn()))
			deadline := rec.UpstreamStart.Add(dep.Timeouts.FirstByte)
			if !budgetEnd.IsZero() && budgetEnd.Before(deadline) {
				deadline = budgetEnd
			}
			err := s.prime(ex, sbody, time.Until(deadline))
			var first *relay.FirstEventError
			if errors.As(err, &first) {
				// Nothing reached the client yet: worth another
				// deployment, as the 5xx or 429 this error stands for
				// would be. A rate limit says nothing of the
				// deployment's health.
				rec.UpstreamEnd = time.Now()
				if first.Type != "rate_limit_exceeded" && first.Type != "rate_limit_error" {
					s.report(ex, dep, false, probe)
				}
				ex.fail = failure{resp: uresp, primed: sbody, dep: dep, errorType: first.Type, reason: first.Error()}
				return false
			}
			if err != nil {
				_ = sbody.CloseWithError(err)
				if !errors.Is(err, errFirstEvent) {
					err = upstream.Classify(err)
				}
				fasthttp.ReleaseResponse(uresp)
				rec.UpstreamEnd = time.Now()
				return s.transportFailed(ctx, ex, dep, probe, err)
			}
			s.report(ex, dep, true, probe)
			s.routing.attempts[outcomeServed].Add(1)
			s.stream(ctx, ex, dep, uresp)
			return true
		}
	}
	ubody, err := dep.ReadAnswer(uresp)
	rec.UpstreamEnd = time.Now()
	rec.UpstreamBytes = int64(len(ubody))
	if err != nil {
		fasthttp.ReleaseResponse(uresp)
		return s.transportFailed(ctx, ex, dep, probe, err)
	}
	status := uresp.StatusCode()
	if status == fasthttp.StatusTooManyRequests || status >= 500 {
		// Worth another deployment. A 429 says nothing about the
		// deployment's health, only its load: it pauses the deployment
		// for as long as it asks, and never opens its circuit.
		pause := upstream.RetryAfter(&uresp.Header, rec.UpstreamEnd, ex.live.cfg.Routing.MaxRetryAfter)
		if pause > 0 {
			dep.CoolUntil(rec.UpstreamEnd.Add(pause))
		}
		if status != fasthttp.StatusTooManyRequests {
			s.report(ex, dep, false, probe)
		}
		reason := "upstream answered " + strconv.Itoa(status)
		if pause > 0 {
			reason += " (Retry-After " + pause.String() + ")"
		}
		ex.fail = failure{resp: uresp, body: ubody, dep: dep, errorType: strconv.Itoa(status), reason: reason}
		return false
	}
	s.report(ex, dep, true, probe)
	s.routing.attempts[outcomeServed].Add(1)
	s.answer(ctx, ex, dep, uresp, ubody)
	return true
}

// transportFailed keeps an attempt that got no usable answer. An answer
// too large is not the deployment's fault and would be as large from the
// next: it is answered at once.
func (s *Server) transportFailed(ctx *fasthttp.RequestCtx, ex *exchange, dep *upstream.Deployment, probe bool, err error) bool {
	rec := &ex.rec
	if rec.UpstreamEnd.IsZero() {
		rec.UpstreamEnd = time.Now()
	}
	if errors.Is(err, upstream.ErrTooLarge) {
		s.report(ex, dep, true, probe)
		s.routing.attempts[outcomeFailed].Add(1)
		s.upstreamFailed(ctx, ex, err)
		return true
	}
	s.report(ex, dep, false, probe)
	f := failure{dep: dep, err: err, reason: err.Error()}
	switch {
	case errors.Is(err, upstream.ErrTimeout):
		f.errorType = "timeout"
	case errors.Is(err, upstream.ErrSaturated):
		f.errorType = "deployment_saturated"
	case errors.Is(err, upstream.ErrConnect):
		f.errorType = "connect"
	default:
		f.errorType = "upstream_reset"
	}
	ex.fail = f
	return false
}

// report tells the deployment's circuit breaker how the attempt went.
func (s *Server) report(ex *exchange, dep *upstream.Deployment, ok, probe bool) {
	rc := &ex.live.cfg.Routing
	if dep.Report(ok, probe, rc.CircuitFailures, rc.CircuitCooldown, time.Now()) {
		s.routing.circuitsOpened.Add(1)
		s.log.Warn("deployment circuit opened: calls skip it for the cooldown, then one probe goes",
			"deployment", dep.Name, "failures", rc.CircuitFailures, "cooldown", rc.CircuitCooldown)
	}
}

// retire files the failed attempt the record describes under
// rec.Attempts and readies the record for the next one.
func (s *Server) retire(ex *exchange) {
	rec := &ex.rec
	f := &ex.fail
	rec.AddAttempt(call.Attempt{
		FallbackModel: rec.FallbackModel, Deployment: rec.Deployment, Provider: rec.Provider,
		UpstreamModel: rec.UpstreamModel, ServerAddress: rec.ServerAddress, ServerPort: rec.ServerPort,
		Start: rec.UpstreamStart, End: rec.UpstreamEnd, Status: rec.UpstreamStatus,
		ErrorType: f.errorType, Reason: f.reason,
	})
	s.routing.attempts[outcomeRetried].Add(1)
	ex.waited += rec.UpstreamEnd.Sub(rec.UpstreamStart)
	if f.primed != nil {
		_ = f.primed.CloseWithError(errRetired)
	}
	if f.resp != nil {
		fasthttp.ReleaseResponse(f.resp)
	}
	ex.fail = failure{}
	rec.UpstreamStart, rec.UpstreamHeader, rec.UpstreamEnd, rec.FirstChunk = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	rec.UpstreamStatus, rec.UpstreamBytes, rec.Chunks, rec.ChunksSent, rec.OutputPieces = 0, 0, 0, 0, 0
	rec.Outcome, rec.ErrorType, rec.ErrorMessage = "", "", ""
}

// answerFailure answers with the last attempt's failure: the upstream's
// own error answer (or stream that began with an error event), relayed as
// it is, or Loom's for a transport failure.
func (s *Server) answerFailure(ctx *fasthttp.RequestCtx, ex *exchange) {
	f := ex.fail
	ex.fail = failure{}
	if f.primed != nil {
		s.stream(ctx, ex, f.dep, f.resp)
		return
	}
	if f.resp != nil {
		s.answer(ctx, ex, f.dep, f.resp, f.body)
		return
	}
	s.upstreamFailed(ctx, ex, f.err)
}

// prime reads the stream ex.stream relays up to its first real event,
// within d: an upstream that sent its head but no event in time is cut
// off (errFirstEvent) while the call can still move on.
func (s *Server) prime(ex *exchange, body relay.Body, d time.Duration) error {
	if d <= 0 {
		return errFirstEvent
	}
	ex.firstMu.Lock()
	ex.firstBody, ex.firstFired = body, false
	ex.firstMu.Unlock()
	if ex.firstTimer == nil {
		ex.firstRan = make(chan struct{}, 1)
		ex.firstTimer = time.AfterFunc(d, ex.firstEventLate)
	} else {
		ex.firstTimer.Reset(d)
	}
	err := ex.stream.Prime()
	if !ex.firstTimer.Stop() {
		// It fired: its func has started (or is about to) and must be
		// done before the exchange serves another call.
		<-ex.firstRan
	}
	ex.firstMu.Lock()
	fired := ex.firstFired
	ex.firstBody = nil
	ex.firstMu.Unlock()
	if fired {
		return errFirstEvent
	}
	return err
}

// firstEventLate runs when a stream's first event is late (see prime).
func (ex *exchange) firstEventLate() {
	ex.firstMu.Lock()
	if ex.firstBody != nil {
		ex.firstFired = true
		_ = ex.firstBody.CloseWithError(errFirstEvent)
	}
	ex.firstMu.Unlock()
	ex.firstRan <- struct{}{}
}

// Attempt outcomes, the labels of loom_upstream_attempts_total.
const (
	outcomeServed  = iota // its answer went to the client
	outcomeRetried        // it failed and the call moved on
	outcomeFailed         // it failed and was the call's last
)

var attemptOutcomes = [...]string{"served", "retried", "failed"}

// routingCounts are the routing metrics; every label set is fixed.
type routingCounts struct {
	attempts       [len(attemptOutcomes)]atomic.Uint64
	failovers      atomic.Uint64
	skipped        [3]atomic.Uint64 // by upstream.Skip
	circuitsOpened atomic.Uint64
}

// appendRoutingMetrics appends the routing counters in the Prometheus text
// format.
func (s *Server) appendRoutingMetrics(dst []byte) []byte {
	c := &s.routing
	dst = append(dst, "# HELP loom_upstream_attempts_total Upstream attempts, by outcome: served (its answer reached the client), retried (failed before anything reached the client; the call moved on), failed (failed, and the call had nothing left to try).\n"+
		"# TYPE loom_upstream_attempts_total counter\n"...)
	for i, o := range attemptOutcomes {
		dst = append(dst, `loom_upstream_attempts_total{outcome="`...)
		dst = append(dst, o...)
		dst = append(dst, `"} `...)
		dst = strconv.AppendUint(dst, c.attempts[i].Load(), 10)
		dst = append(dst, '\n')
	}
	dst = append(dst, "# HELP loom_upstream_failovers_total Calls served by an attempt other than their first.\n"+
		"# TYPE loom_upstream_failovers_total counter\nloom_upstream_failovers_total "...)
	dst = strconv.AppendUint(dst, c.failovers.Load(), 10)
	dst = append(dst, "\n# HELP loom_upstream_skipped_total Candidate deployments a call skipped, by reason.\n"+
		"# TYPE loom_upstream_skipped_total counter\n"...)
	for _, r := range []struct {
		skip  upstream.Skip
		label string
	}{{upstream.SkipOpen, "circuit_open"}, {upstream.SkipCooling, "retry_after"}} {
		dst = append(dst, `loom_upstream_skipped_total{reason="`...)
		dst = append(dst, r.label...)
		dst = append(dst, `"} `...)
		dst = strconv.AppendUint(dst, c.skipped[r.skip].Load(), 10)
		dst = append(dst, '\n')
	}
	dst = append(dst, "# HELP loom_upstream_circuits_opened_total Times a deployment's circuit opened after consecutive failures.\n"+
		"# TYPE loom_upstream_circuits_opened_total counter\nloom_upstream_circuits_opened_total "...)
	dst = strconv.AppendUint(dst, c.circuitsOpened.Load(), 10)
	return append(dst, '\n')
}
