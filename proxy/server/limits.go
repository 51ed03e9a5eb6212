package server

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/limit"
	"github.com/loom-gateway/loom/proxy/request"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// admit asks the limiter for one call of key, reserving an estimate of its
// tokens (see reservation). False means the call was refused and answered
// with 429.
func (s *Server) admit(ctx *fasthttp.RequestCtx, ex *exchange, key *tenant.Key, body []byte) bool {
	est := reservation(&ex.req, len(body), int64(ex.live.cfg.DefaultOutputTokens), tightestTPM(key))
	if ex.ep != nil && ex.ep.countTokens {
		est = 0 // counting tokens generates none
	}
	ex.ticket, ex.decision = s.opts.Limiter.Admit(ctx, &key.Limit, &key.Tenant.Limit, est, ex.req.Stream)
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

// reservation is what a call reserves against TPM: the whole body counted
// by call.EstimateTokens plus what it may generate for each of its n
// choices, max_tokens (or max_completion_tokens), as OpenAI reserves. Without one
// the call may generate as much as the model allows, so it reserves
// defaultOutput per choice: reserving the prompt alone let five concurrent
// calls under a TPM of 1,000 use 4,500 tokens. That guessed budget is
// capped at what tpm (the tightest TPM that applies; 0 = none) leaves after
// the prompt, so a tenant whose TPM is below the default can still make a
// call, reserving the whole minute, rather than none ever. A max_tokens the
// client chose is not capped: a call that may use more than a minute's
// allowance is refused, as OpenAI refuses it. Embeddings generate nothing.
func reservation(req *request.Request, bodyLen int, defaultOutput, tpm int64) int64 {
	prompt := call.EstimateTokens(bodyLen)
	if req.Op == call.OpEmbeddings {
		return prompt
	}
	p := &req.Params
	n := int64(1)
	if p.N != nil && *p.N > 1 {
		n = *p.N
	}
	if p.MaxTokens != nil {
		return prompt + *p.MaxTokens*n
	}
	out := defaultOutput * n
	if tpm > 0 {
		out = min(out, max(tpm-prompt, 0))
	}
	return prompt + out
}

// tightestTPM is the smallest TPM of key and its tenant; 0 when neither has
// one.
func tightestTPM(key *tenant.Key) int64 {
	k, t := key.Limit.Rule.TPM, key.Tenant.Limit.Rule.TPM
	switch {
	case k == 0:
		return t
	case t == 0:
		return k
	}
	return min(k, t)
}

// limitTrouble logs a limiter store failure once per distinct error: the
// limiter fails open, so traffic goes on, but someone must know.
func (s *Server) limitTrouble(err error) {
	msg := err.Error()
	if last := s.lastLimitErr.Swap(&msg); last == nil || *last != msg {
		s.log.Error("rate-limit store failing; limits are counted locally until it recovers", "error", err)
	}
}

// rateLimited is the 429 OpenAI sends: type "requests" or "tokens", code
// rate_limit_exceeded, and a message that says which limit and when.
func rateLimited(key *tenant.Key, d *limit.Decision) *apierror.Error {
	who := "key " + key.ID
	if d.Scope == limit.ScopeTenant {
		who = "tenant " + key.Tenant.ID
	}
	wait := strconv.FormatFloat(d.RetryAfter.Seconds(), 'f', -1, 64) + "s"
	var msg, typ string
	switch d.Limited {
	case limit.LimitedTokens:
		typ = "tokens"
		msg = "Rate limit reached for tokens per minute (TPM) on " + who + ": Limit " + strconv.FormatInt(d.LimitTokens, 10) +
			". Please try again in " + wait + "."
	case limit.LimitedStreams:
		typ = "requests"
		msg = "Too many concurrent streams on " + who + ". Please try again in " + wait + "."
	default:
		typ = "requests"
		msg = "Rate limit reached for requests per minute (RPM) on " + who + ": Limit " + strconv.FormatInt(d.LimitRequests, 10) +
			". Please try again in " + wait + "."
	}
	e := apierror.New(fasthttp.StatusTooManyRequests, typ, "rate_limit_exceeded", "", msg)
	e.RetryAfter = int((d.RetryAfter + time.Second - 1) / time.Second)
	return e
}

// setRateHeaders writes the x-ratelimit-* headers OpenAI sends, for each
// kind of limit that applies. They replace any an upstream sent: the client
// is bound by Loom's limits, not by the gateway's own provider account.
func setRateHeaders(h *fasthttp.ResponseHeader, d *limit.Decision) {
	var buf [32]byte
	if d.LimitRequests > 0 {
		h.SetBytesV("x-ratelimit-limit-requests", strconv.AppendInt(buf[:0], d.LimitRequests, 10))
		h.SetBytesV("x-ratelimit-remaining-requests", strconv.AppendInt(buf[:0], d.RemainingRequests, 10))
		h.SetBytesV("x-ratelimit-reset-requests", limit.AppendReset(buf[:0], d.ResetRequests))
	}
	if d.LimitTokens > 0 {
		h.SetBytesV("x-ratelimit-limit-tokens", strconv.AppendInt(buf[:0], d.LimitTokens, 10))
		h.SetBytesV("x-ratelimit-remaining-tokens", strconv.AppendInt(buf[:0], d.RemainingTokens, 10))
		h.SetBytesV("x-ratelimit-reset-tokens", limit.AppendReset(buf[:0], d.ResetTokens))
	}
}
