package server

import (
	"context"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/budget"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// The headers on every budgeted answer: the tightest budget of the call's
// key and tenant (the least remaining), in the price catalog's currency,
// and when its period ends.
const (
	HeaderBudgetLimit     = "x-loom-budget-limit"
	HeaderBudgetRemaining = "x-loom-budget-remaining"
	HeaderBudgetReset     = "x-loom-budget-reset"
)

// reserveBudget reserves the most the call can cost against its key's and
// tenant's budgets (see budget.Budgets.Reserve). False means a budget is
// spent and the call was answered 429 insufficient_quota. A call with no
// price (no catalog entry for its model) is not budgeted: the log says so
// once per model.
func (s *Server) reserveBudget(ctx *fasthttp.RequestCtx, ex *exchange, key *tenant.Key, rt *tenant.Route, bodyLen int) bool {
	subjects := budget.Subjects{Tenant: &key.Tenant.Budget, Key: &key.Budget}
	if len(subjects.Tenant.Rules) == 0 && len(subjects.Key.Rules) == 0 {
		return true
	}
	if ex.ep != nil && ex.ep.countTokens {
		return true // counting tokens costs nothing
	}
	est, ok := s.estimateCost(ex, rt, bodyLen)
	if !ok {
		s.unpriced(rt.Model)
		return true
	}
	var err error
	ex.budget, ex.budgetDecision, err = s.opts.Budgets.Reserve(ctx, subjects, est)
	if err != nil {
		s.budgetTrouble(err)
	}
	d := &ex.budgetDecision
	if d.OK {
		return true
	}
	ex.rec.Outcome, ex.rec.ErrorType = call.OutcomeRateLimited, "insufficient_quota"
	s.reject(ctx, ex, quotaExceeded(key, d, est))
	return false
}

// maxOutput is what the call may generate: max_tokens (or
// max_completion_tokens, max_output_tokens) for each of its n choices, or
// the gateway's default_output_tokens when it sets none; embeddings
// generate nothing.
func maxOutput(ex *exchange) int64 {
	if ex.req.Op == call.OpEmbeddings {
		return 0
	}
	p := &ex.req.Params
	n := int64(1)
	if p.N != nil && *p.N > 1 {
		n = *p.N
	}
	if p.MaxTokens != nil {
		return *p.MaxTokens * n
	}
	return int64(ex.live.cfg.DefaultOutputTokens) * n
}

// budgetActual is what the call cost, for Settle: its price when its usage
// is known and priced; nothing when the upstream never answered or
// refused (providers do not bill errors); and when the cost cannot be
// known (a success without usage, or served by a deployment the catalog
// does not price), what was reserved: the safe side for a budget.
func budgetActual(ex *exchange) price.Amount {
	rec := &ex.rec
	switch {
	case rec.UsageSource != call.UsageNone:
		if c, ok := recordCost(rec); ok {
			return c
		}
	case rec.UsageSource == call.UsageNone && (rec.UpstreamStatus < 200 || rec.UpstreamStatus >= 300):
		return 0
	}
	return ex.budget.Amount()
}

// settleBudget replaces the call's reservation with its real cost.
func (s *Server) settleBudget(ex *exchange) {
	if !ex.budget.Held() {
		return
	}
	if err := s.opts.Budgets.Settle(context.Background(), ex.budget, budgetActual(ex)); err != nil {
		s.budgetTrouble(err)
	}
	ex.budget = budget.Reservation{}
}

// unpricedModels are the models a budgeted call was made to without a
// price, logged once each.
type unpricedModels struct {
	mu   sync.RWMutex
	seen map[string]struct{}
}

func (s *Server) unpriced(model string) {
	u := &s.unpricedModels
	u.mu.RLock()
	_, seen := u.seen[model]
	u.mu.RUnlock()
	if seen {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, seen := u.seen[model]; seen {
		return
	}
	if u.seen == nil {
		u.seen = map[string]struct{}{}
	}
	if len(u.seen) < maxUnpricedLogged {
		u.seen[model] = struct{}{}
		s.log.Warn("calls to this model are not budgeted: the price catalog has no entry for it", "model", model)
	}
}

// maxUnpricedLogged bounds the models remembered as logged (model names
// come from the configuration, so this is generous).
const maxUnpricedLogged = 4096

// budgetTrouble logs a budget store failure once per distinct error: the
// budgets fail open (or count on this replica), so traffic goes on, but
// someone must know.
func (s *Server) budgetTrouble(err error) {
	msg := err.Error()
	if last := s.lastBudgetErr.Swap(&msg); last == nil || *last != msg {
		s.log.Error("budget store failing; budgets are counted locally (or not at all) until it recovers", "error", err)
	}
}

// quotaExceeded is OpenAI's 429 insufficient_quota, naming the budget,
// what is left of it against what the call could cost (est), and when it
// resets; Retry-After is the time until then. A budget with plenty left can
// still refuse one call whose max_tokens could cost more than that: the
// message says so, rather than that the budget is spent.
func quotaExceeded(key *tenant.Key, d *budget.Decision, est price.Amount) *apierror.Error {
	who := "tenant " + key.Tenant.ID
	if d.Scope == budget.ScopeKey {
		who = "API key " + key.ID
	}
	period := "daily"
	if d.Period == budget.Month {
		period = "monthly"
	}
	var buf [32]byte
	msg := "You exceeded your current quota: the " + period + " budget of " + who + " (" +
		string(d.Limit.AppendDecimal(buf[:0])) + " for " + d.Start.Format(periodLayout(d.Period)) + ") "
	if d.Remaining <= 0 {
		msg += "is spent."
	} else {
		// Two buffers: a concatenation's string(b) operands may share
		// their bytes until the result is made.
		var buf2 [32]byte
		msg += "has " + string(d.Remaining.AppendDecimal(buf[:0])) + " left, less than this request could cost (up to " +
			string(est.AppendDecimal(buf2[:0])) + " for its input and max_tokens); a lower max_tokens may fit."
	}
	msg += " It resets at " + d.Reset.Format(time.RFC3339) + "."
	e := apierror.New(fasthttp.StatusTooManyRequests, "insufficient_quota", "insufficient_quota", "", msg)
	e.RetryAfter = max(int((time.Until(d.Reset)+time.Second-1)/time.Second), 1)
	return e
}

func periodLayout(p budget.Period) string {
	if p == budget.Month {
		return "2006-01"
	}
	return time.DateOnly
}

// setBudgetHeaders writes the x-loom-budget-* headers of a budgeted call.
func setBudgetHeaders(h *fasthttp.ResponseHeader, d *budget.Decision) {
	if !d.Budgeted {
		return
	}
	var buf [40]byte
	h.SetBytesV(HeaderBudgetLimit, d.Limit.AppendDecimal(buf[:0]))
	h.SetBytesV(HeaderBudgetRemaining, d.Remaining.AppendDecimal(buf[:0]))
	h.SetBytesV(HeaderBudgetReset, d.Reset.AppendFormat(buf[:0], time.RFC3339))
}

// appendBudgetMetrics appends loom_budget_alerts_total.
func (s *Server) appendBudgetMetrics(dst []byte) []byte {
	return s.opts.Budgets.AppendMetrics(dst)
}
