// Package budget caps what tenants and their API keys spend per period (a
// UTC day or month): before a call it reserves an estimate of the call's
// cost against every budget that applies, and refuses the call when a
// budget's spend, plus what calls in flight have reserved, plus this
// estimate would pass its limit; when the call ends it settles, replacing
// the reservation with the real cost. Counts live in a Store: Memory when
// one replica serves, Redis when several share the budgets, and
// Fallback(Redis, Memory) so that an outage of the shared store degrades to
// per-replica counting instead of stopping traffic.
//
// Amounts are price.Amount, int64 counts of 1e-12 of the catalog's
// currency, exact: sums never drift. Stores count them as plain int64.
//
// It must never refuse traffic because a store failed: what it cannot
// count it admits, and says so in Reserve's error (under Fallback it counts
// on this replica instead). A refused call reserves nothing. The real cost
// is recorded whatever it is, so spend may pass a limit by what a call cost
// beyond its estimate; the next reservation is refused.
package budget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// Period is the span of time one budget counts: a UTC day or month.
type Period uint8

// Periods.
const (
	Day Period = iota + 1
	Month
)

func (p Period) String() string {
	switch p {
	case Day:
		return tenancy.PeriodDay
	case Month:
		return tenancy.PeriodMonth
	}
	return "period(" + strconv.Itoa(int(p)) + ")"
}

// Bounds returns the start and end (Unix seconds, UTC) of the period that
// holds t. It allocates nothing.
func (p Period) Bounds(t time.Time) (start, end int64) {
	if p == Month {
		y, m, _ := t.UTC().Date()
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC).Unix()
	}
	s := t.Unix()
	s -= ((s % 86400) + 86400) % 86400
	return s, s + 86400
}

// Key names the period that starts at start: its start date, "2026-12-05"
// (a month's is its first day, "2026-12-01").
func Key(start int64) string {
	return time.Unix(start, 0).UTC().Format(time.DateOnly)
}

// Rule is one budget of a subject.
type Rule struct {
	Period Period
	// Limit is the most the subject may spend in one period.
	Limit price.Amount
	// AlertAt is the spend (plus reservations) at which the period's one
	// alert is raised; 0 means none.
	AlertAt price.Amount
}

// RuleOf converts a validated tenancy budget.
func RuleOf(b tenancy.Budget) (Rule, error) {
	r := Rule{Period: Day}
	switch b.Period {
	case tenancy.PeriodDay:
	case tenancy.PeriodMonth:
		r.Period = Month
	default:
		return Rule{}, fmt.Errorf("budget period %q: not day or month", b.Period)
	}
	limit, err := tenancy.ParseAmount(b.Limit)
	if err != nil {
		return Rule{}, fmt.Errorf("budget limit %q: %w", b.Limit, err)
	}
	r.Limit = price.Amount(limit)
	at := b.AlertAt
	if at <= 0 || at > 1 {
		at = tenancy.DefaultAlertAt
	}
	// float64 has 53 bits: the threshold is exact to well below a cent.
	r.AlertAt = price.Amount(max(int64(float64(limit)*at), 1))
	return r, nil
}

// RulesOf converts a subject's validated budgets; nil when it has none.
func RulesOf(bs []tenancy.Budget) ([]Rule, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	out := make([]Rule, 0, len(bs))
	for _, b := range bs {
		r, err := RuleOf(b)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Subject is what budgets cap: a tenant (KeyID empty) or one of its keys.
// ID is stable across config reloads and unique across subjects
// ("t:<tenant id>", "k:<key id>"), so spend survives a reload.
type Subject struct {
	ID       string
	TenantID string
	KeyID    string
	// Rules are the subject's budgets, at most one per period.
	Rules []Rule
}

// Subjects are the budgets one call answers to: its tenant's and its
// key's. Either may be nil.
type Subjects struct {
	Tenant, Key *Subject
}

// MaxCounters is the most budgets one call answers to: a day and a month
// each for its tenant and its key.
const MaxCounters = 4

// Counter is one budget in one period, as a Store counts it.
type Counter struct {
	// Subject is the Subject's ID.
	Subject string
	Period  Period
	// Start and End bound the period (Unix seconds, UTC); a store may
	// forget the counter some time after End.
	Start, End int64
	Limit      int64
	// AlertAt is the spend plus reservations at which the counter's alert
	// is raised, once per period; 0 means none.
	AlertAt int64
}

// Counters are the budgets one operation touches, all of one tenant (so a
// store can keep them together: one lock, one Redis hash slot). It is
// passed by value so that an in-memory operation allocates nothing.
type Counters struct {
	Tenant string
	N      int
	C      [MaxCounters]Counter
	// Local is set by Fallback on a Result whose reservation was made in
	// its local store; a Reservation carries it back to Settle, so that
	// what was reserved there is settled there.
	Local bool
}

// Result is a Store's answer: each counter's spend and reservations after
// the operation (or, refused, as they were).
type Result struct {
	// Refused is the index of the first counter that refused; -1 when the
	// operation took.
	Refused  int
	Spent    [MaxCounters]int64
	Reserved [MaxCounters]int64
	// Alerted says the operation crossed a counter's AlertAt: the first
	// one to in the period, across every replica sharing the store.
	Alerted [MaxCounters]bool
	Local   bool
}

// Store keeps the counters: Memory (one replica) or Redis (shared by
// replicas). Implementations are safe for concurrent use, and each
// operation is atomic over all its counters.
type Store interface {
	// Reserve adds estimate to every counter's reservations unless, for
	// some counter, spent + reserved + estimate > Limit; then it changes
	// nothing and reports the first that refused.
	Reserve(ctx context.Context, cs Counters, estimate int64) (Result, error)
	// Settle removes reserved from every counter's reservations (never
	// below zero) and adds actual to its spend, unchecked. Counters the
	// store has forgotten (long after their period) are left alone.
	Settle(ctx context.Context, cs Counters, reserved, actual int64) (Result, error)
}

// ErrDegraded marks a Store answer given from this replica's own counts
// because the shared store failed (see Fallback): its result is valid, and
// errors.Unwrap gives the shared store's error.
var ErrDegraded = errors.New("shared budget store failed; counting on this replica alone")

// Scopes, for Decision.Scope.
const (
	ScopeTenant = "tenant"
	ScopeKey    = "key"
)

// Decision is Reserve's verdict, with what the x-loom-budget-* headers
// need: the tightest budget (the least remaining, then the smallest limit)
// or, refused, the budget that refused.
type Decision struct {
	OK bool
	// Budgeted says a budget applied and was counted: the fields below
	// are set.
	Budgeted bool
	Scope    string // ScopeTenant or ScopeKey
	Period   Period
	// Limit and Remaining (never below zero); Reset is when the period
	// ends.
	Limit, Remaining price.Amount
	Reset            time.Time
	// Start is when the period began (its key is its date).
	Start time.Time
}

// Reservation is what one admitted call holds, for Settle. It is a value;
// the zero Reservation holds nothing.
type Reservation struct {
	cs       Counters
	subjects [MaxCounters]*Subject
	amount   price.Amount
}

// Amount is what the reservation holds against each of its budgets.
func (r *Reservation) Amount() price.Amount { return r.amount }

// Held reports whether the reservation holds anything to settle.
func (r *Reservation) Held() bool { return r.cs.N > 0 }

// Budgets checks and counts calls against subjects' budgets. It is safe
// for concurrent use.
type Budgets struct {
	store  Store
	now    func() time.Time
	log    *slog.Logger
	alerts atomic.Uint64
}

// New returns Budgets counting in store; now nil means time.Now, log nil
// discards the alerts' lines (the metric still counts them).
func New(store Store, now func() time.Time, log *slog.Logger) *Budgets {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Budgets{store: store, now: now, log: log}
}

func budgeted(s *Subject) bool { return s != nil && len(s.Rules) > 0 }

// Reserve checks one call of s's key (and tenant) against their budgets
// for the periods that hold now, and reserves estimate against each,
// atomically for all of them: either every budget takes it or none does.
// The error is the store's: with it the decision admitted what it could
// not count (Budgeted false), or, with Fallback, counted on this replica
// alone (errors.Is(err, ErrDegraded)). An admitted call that holds a
// reservation (Held) must be settled once, when it ends.
func (b *Budgets) Reserve(ctx context.Context, s Subjects, estimate price.Amount) (Reservation, Decision, error) {
	if !budgeted(s.Tenant) && !budgeted(s.Key) {
		return Reservation{}, Decision{OK: true}, nil
	}
	estimate = max(estimate, 0)
	var r Reservation
	now := b.now()
	var bounds [Month + 1][2]int64
	for _, sub := range [2]*Subject{s.Tenant, s.Key} {
		if !budgeted(sub) {
			continue
		}
		r.cs.Tenant = sub.TenantID
		for _, rule := range sub.Rules {
			if r.cs.N == MaxCounters || rule.Period > Month || rule.Period == 0 {
				continue // validation allows one per period
			}
			bd := &bounds[rule.Period]
			if bd[1] == 0 {
				bd[0], bd[1] = rule.Period.Bounds(now)
			}
			r.cs.C[r.cs.N] = Counter{Subject: sub.ID, Period: rule.Period, Start: bd[0], End: bd[1], Limit: int64(rule.Limit), AlertAt: int64(rule.AlertAt)}
			r.subjects[r.cs.N] = sub
			r.cs.N++
		}
	}
	if r.cs.N == 0 {
		return Reservation{}, Decision{OK: true}, nil
	}
	res, err := b.store.Reserve(ctx, r.cs, int64(estimate))
	if err != nil && !errors.Is(err, ErrDegraded) {
		return Reservation{}, Decision{OK: true}, err
	}
	b.alert(&r, &res)
	d := decide(&r, &res, estimate)
	if !d.OK {
		return Reservation{}, d, err
	}
	r.cs.Local = res.Local
	r.amount = estimate
	return r, d, err
}

// decide reports the refusing counter or the tightest one.
func decide(r *Reservation, res *Result, estimate price.Amount) Decision {
	d := Decision{OK: res.Refused < 0, Budgeted: true}
	best := res.Refused
	if best < 0 {
		for i := range r.cs.N {
			if best < 0 || tighter(r, res, i, best) {
				best = i
			}
		}
	}
	c := &r.cs.C[best]
	d.Period, d.Limit = c.Period, price.Amount(c.Limit)
	d.Remaining = remaining(c, res, best)
	if !d.OK && d.Remaining >= estimate {
		d.Remaining = 0 // cannot happen with a consistent store; never tell a refused client it has room
	}
	d.Scope = ScopeTenant
	if r.subjects[best].KeyID != "" {
		d.Scope = ScopeKey
	}
	d.Start, d.Reset = time.Unix(c.Start, 0).UTC(), time.Unix(c.End, 0).UTC()
	return d
}

func remaining(c *Counter, res *Result, i int) price.Amount {
	return price.Amount(max(c.Limit-res.Spent[i]-res.Reserved[i], 0))
}

func tighter(r *Reservation, res *Result, i, j int) bool {
	ri, rj := remaining(&r.cs.C[i], res, i), remaining(&r.cs.C[j], res, j)
	return ri < rj || ri == rj && r.cs.C[i].Limit < r.cs.C[j].Limit
}

// Settle is called once when the call ends, with its real cost: it
// releases the reservation and records actual, whatever it is (a call that
// cost more than its estimate is recorded in full; a failed call usually
// costs 0). Both count in the period the call was reserved in. A cancelled
// ctx (the client went away) is not honoured, so that the settling still
// happens. The error is the store's: the reservation then stays counted
// until its period ends.
func (b *Budgets) Settle(ctx context.Context, r Reservation, actual price.Amount) error {
	if r.cs.N == 0 {
		return nil
	}
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	res, err := b.store.Settle(ctx, r.cs, int64(r.amount), int64(max(actual, 0)))
	if err != nil && !errors.Is(err, ErrDegraded) {
		return err
	}
	b.alert(&r, &res)
	return err
}

// alert logs and counts the counters res says crossed their threshold.
func (b *Budgets) alert(r *Reservation, res *Result) {
	for i := range r.cs.N {
		if !res.Alerted[i] {
			continue
		}
		b.alerts.Add(1)
		c, s := &r.cs.C[i], r.subjects[i]
		b.log.Warn("budget alert: spend reached the alert threshold",
			"tenant", s.TenantID, "key_id", s.KeyID, "period", c.Period.String()+" "+Key(c.Start),
			"spent", price.Amount(res.Spent[i]).String(), "reserved", price.Amount(res.Reserved[i]).String(),
			"limit", price.Amount(c.Limit).String())
	}
}

// Alerts is the number of alerts raised so far by this replica.
func (b *Budgets) Alerts() uint64 { return b.alerts.Load() }

// AppendMetrics appends loom_budget_alerts_total in the Prometheus text
// format.
func (b *Budgets) AppendMetrics(dst []byte) []byte {
	dst = append(dst, "# HELP loom_budget_alerts_total Budgets whose spend reached their alert threshold (alert_at), once per budget and period.\n"+
		"# TYPE loom_budget_alerts_total counter\nloom_budget_alerts_total "...)
	dst = strconv.AppendUint(dst, b.alerts.Load(), 10)
	return append(dst, '\n')
}
