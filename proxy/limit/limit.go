// Package limit enforces the rate limits of tenants and their API keys:
// requests per minute, tokens per minute and concurrent streams. Counts
// live in a Store: Memory when one replica serves, Redis when several share
// the limits, and Fallback(Redis, Memory) so that an outage of the shared
// store degrades to per-replica counting instead of stopping traffic.
//
// Windows are fixed minutes aligned to the clock: a count belongs to window
// unix-seconds/60 and resets at the next minute. A client may therefore
// spend a whole minute's allowance at 12:00:59 and another at 12:01:00,
// twice the rate across one boundary. That burst is accepted on purpose:
// fixed windows are what OpenAI's x-ratelimit-* headers describe (a limit,
// what remains, when it resets), their counts are exact rather than a
// sliding estimate, and each check is one atomic operation on one key in
// Redis, so replicas never together pass a limit.
//
// It must never refuse traffic because a store failed: what it cannot count
// it admits, and says so in Decision.Err (under Fallback it counts on this
// replica instead). And a refused request must cost nothing: whatever Admit
// took before a later check refused is given back.
package limit

import (
	"context"
	"errors"
	"time"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

// Rule is one subject's limits; 0 = unlimited.
type Rule struct{ RPM, TPM, Streams int64 }

// RuleOf converts a tenant's or key's limits. Negative values, which
// tenancy.Validate should have refused, mean no limit.
func RuleOf(l tenancy.Limits) Rule {
	return Rule{
		RPM:     int64(max(l.RequestsPerMinute, 0)),
		TPM:     int64(max(l.TokensPerMinute, 0)),
		Streams: int64(max(l.ConcurrentStreams, 0)),
	}
}

// Subject is what a rule limits: a key or a tenant. ID is stable across
// config reloads ("k:<key id>", "t:<tenant id>", chosen by the caller), so
// counters survive a reload; IDs of keys and tenants must not collide.
type Subject struct {
	ID   string
	Rule Rule
}

// Store keeps the counts: Memory (one replica) or Redis (shared by
// replicas). Implementations are safe for concurrent use.
type Store interface {
	// Take adds n to key's count for window (a minute number: unix
	// seconds / 60) unless the result would exceed limit; it returns the
	// count after taking (or, refused, the count that refused it, unchanged)
	// and whether it took.
	Take(ctx context.Context, key string, window int64, n, limit int64) (count int64, ok bool, err error)
	// Add adds n (may be negative) without a check: settling a token
	// reservation, or undoing a Take. A count never goes below zero.
	Add(ctx context.Context, key string, window int64, n int64) error
	// Acquire takes one of limit concurrent slots; Release gives one back.
	// count is the number held after acquiring (refused: the number held).
	Acquire(ctx context.Context, key string, limit int64) (count int64, ok bool, err error)
	Release(ctx context.Context, key string) error
}

// ErrDegraded marks a Store answer given from this replica's own counts
// because the shared store failed (see Fallback): its count and verdict are
// valid, and errors.Unwrap gives the shared store's error.
var ErrDegraded = errors.New("shared limit store failed; counting on this replica alone")

// What Decision.Limited and Decision.Scope say.
const (
	LimitedRequests = "requests"
	LimitedTokens   = "tokens"
	LimitedStreams  = "streams"
	ScopeKey        = "key"
	ScopeTenant     = "tenant"
)

// streamRetry is Retry-After for a refused stream: slots free up when
// other streams end, not at a window boundary.
const streamRetry = time.Second

// Decision is Admit's verdict, with what the x-ratelimit-* headers need.
type Decision struct {
	OK bool
	// Limited says, when !OK, which limit refused: "requests", "tokens" or
	// "streams"; Scope says whose: "key" or "tenant".
	Limited string
	Scope   string
	// For the x-ratelimit-* headers, as OpenAI sends them: the most
	// constraining of key and tenant for each kind (a 0 limit means no
	// limit of that kind, so no header).
	LimitRequests, RemainingRequests int64
	ResetRequests                    time.Duration // until the window ends
	LimitTokens, RemainingTokens     int64
	ResetTokens                      time.Duration
	// RetryAfter is, when !OK, the time until the refusing window resets
	// (streams: 1s).
	RetryAfter time.Duration
	// Err is set when the store failed. The decision then admitted what it
	// could not count (fail open) or, with Fallback, counted on this replica
	// alone (errors.Is(Err, ErrDegraded)). The caller logs it; Fallback
	// returns the same error value for the whole of one outage, so logging
	// when it changes is enough.
	Err error
}

// Ticket is what one admitted call holds, for Settle: its token
// reservations and stream slots. It is a value; the zero Ticket holds
// nothing.
type Ticket struct {
	keys   [2]*subjectKeys // key, tenant
	window int64           // the window the reservation was made in (see Settle)
	tokens int64           // tokens reserved for each subject with tokensHeld
	held   uint8           // tokensHeld and slotHeld, shifted by subject
}

// Ticket.held bits, for the key; shifted left by one for the tenant.
const (
	tokensHeld    uint8 = 1 << 0
	slotHeld      uint8 = 1 << 2
	requestsTaken uint8 = 1 << 4 // during Admit only, so a refusal can give it back
)

// Limiter checks and counts requests against subjects' rules. It is safe
// for concurrent use.
type Limiter struct {
	store Store
	now   func() time.Time
	keys  keyCache
}

// New returns a Limiter counting in store; now nil means time.Now.
func New(store Store, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{store: store, now: now}
	l.keys.init()
	return l
}

// limited reports whether s has a limit that applies to this request.
func limited(s *Subject, stream bool) bool {
	return s != nil && (s.Rule.RPM > 0 || s.Rule.TPM > 0 || stream && s.Rule.Streams > 0)
}

// Admit checks one request of key (and its tenant): one request against
// RPM, est tokens reserved against TPM (an est below 1 reserves 1, so an
// exhausted allowance refuses), and, for a stream, a concurrent slot. It
// checks the key first, then the tenant, and undoes what it took when a
// later check refuses, so a refused request costs nothing. A nil subject or
// a zero rule field means no limit of that kind. An admitted request must
// be settled once, with the Ticket, when it ends.
func (l *Limiter) Admit(ctx context.Context, key, tenant *Subject, est int64, stream bool) (Ticket, Decision) {
	if !limited(key, stream) && !limited(tenant, stream) {
		return Ticket{}, Decision{OK: true}
	}
	ns := l.now().UnixNano()
	window := ns / int64(60*time.Second)
	reset := time.Duration((window+1)*int64(60*time.Second) - ns)
	est = max(est, 1)
	t := Ticket{window: window, tokens: est}
	var (
		d      Decision
		report [2]headers // per subject, for the most constraining
	)
	for i, s := range [2]*Subject{key, tenant} {
		if !limited(s, stream) {
			continue
		}
		r, h := s.Rule, &report[i]
		k := l.keys.get(s.ID, window)
		t.keys[i] = k
		if r.RPM > 0 {
			c, ok, err := l.store.Take(ctx, k.requests, window, 1, r.RPM)
			if counted(err, &d) {
				h.requestsLimit, h.requestsLeft = r.RPM, r.RPM-c
				if !ok {
					return l.refuse(ctx, &t, &d, report, LimitedRequests, i, reset)
				}
				t.held |= requestsTaken << i
			}
		}
		if r.TPM > 0 {
			c, ok, err := l.store.Take(ctx, k.tokens, window, est, r.TPM)
			if counted(err, &d) {
				h.tokensLimit, h.tokensLeft = r.TPM, r.TPM-c
				if !ok {
					return l.refuse(ctx, &t, &d, report, LimitedTokens, i, reset)
				}
				t.held |= tokensHeld << i
			}
		}
		if stream && r.Streams > 0 {
			_, ok, err := l.store.Acquire(ctx, k.streams, r.Streams)
			if counted(err, &d) {
				if !ok {
					return l.refuse(ctx, &t, &d, report, LimitedStreams, i, reset)
				}
				t.held |= slotHeld << i
			}
		}
	}
	t.held &^= requestsTaken | requestsTaken<<1 // requests are never settled
	d.OK = true
	d.fill(report, reset)
	return t, d
}

// refuse gives back what Admit took and fills a refusing Decision.
func (l *Limiter) refuse(ctx context.Context, t *Ticket, d *Decision, report [2]headers, kind string, subject int, reset time.Duration) (Ticket, Decision) {
	for i, k := range t.keys {
		if t.held&(requestsTaken<<i) != 0 {
			note(d, l.store.Add(ctx, k.requests, t.window, -1))
			report[i].requestsLeft++
		}
		if t.held&(tokensHeld<<i) != 0 {
			note(d, l.store.Add(ctx, k.tokens, t.window, -t.tokens))
			report[i].tokensLeft += t.tokens
		}
		if t.held&(slotHeld<<i) != 0 {
			note(d, l.store.Release(ctx, k.streams))
		}
	}
	d.OK = false
	d.Limited = kind
	d.Scope = ScopeKey
	if subject == 1 {
		d.Scope = ScopeTenant
	}
	d.RetryAfter = reset
	if kind == LimitedStreams {
		d.RetryAfter = streamRetry
	}
	d.fill(report, reset)
	return Ticket{}, *d
}

// counted reports whether a store answer can be used: no error, or an
// answer from local counts (ErrDegraded). The first error goes to d.Err; an
// unusable answer admits without counting (fail open).
func counted(err error, d *Decision) bool {
	if err == nil {
		return true
	}
	note(d, err)
	return errors.Is(err, ErrDegraded)
}

func note(d *Decision, err error) {
	if err != nil && d.Err == nil {
		d.Err = err
	}
}

// headers is one subject's limits and what remains of them; a zero limit
// means not known or not limited.
type headers struct {
	requestsLimit, requestsLeft int64
	tokensLimit, tokensLeft     int64
}

// fill sets d's headers to the most constraining subject of each kind: the
// least remaining, then the smaller limit.
func (d *Decision) fill(report [2]headers, reset time.Duration) {
	for _, h := range report {
		if h.requestsLimit > 0 && (d.LimitRequests == 0 || tighter(h.requestsLeft, h.requestsLimit, d.RemainingRequests, d.LimitRequests)) {
			d.LimitRequests, d.RemainingRequests, d.ResetRequests = h.requestsLimit, max(h.requestsLeft, 0), reset
		}
		if h.tokensLimit > 0 && (d.LimitTokens == 0 || tighter(h.tokensLeft, h.tokensLimit, d.RemainingTokens, d.LimitTokens)) {
			d.LimitTokens, d.RemainingTokens, d.ResetTokens = h.tokensLimit, max(h.tokensLeft, 0), reset
		}
	}
}

func tighter(left, limit, bestLeft, bestLimit int64) bool {
	left = max(left, 0)
	return left < bestLeft || left == bestLeft && limit < bestLimit
}

// Settle is called once when the call ends: it replaces the token
// reservation with the real usage (actual; -1 = unknown: keep the
// reservation) and releases the stream slot. The difference is charged to
// the window current now, not the one the call was admitted in: a call
// admitted at 12:00:59 that runs past the minute and uses more than it
// reserved spends the minute it used it in, or a stream of such calls could
// walk past every minute's limit. What a call did not use is given back to
// the window it was reserved in only while that window is still current;
// once it has ended, giving back would admit nothing. A cancelled ctx (the
// client went away) is not honoured, so that the settling still happens.
// Store errors are dropped: a lost Add leaves the reservation counted until
// its window ends, a lost Release leaves a Redis slot to lapse with its
// lease.
func (l *Limiter) Settle(ctx context.Context, t Ticket, actual int64) {
	if t.held == 0 {
		return
	}
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	diff := int64(0)
	if actual >= 0 {
		diff = actual - t.tokens
	}
	window := t.window
	if diff != 0 {
		if now := l.now().UnixNano() / int64(60*time.Second); now != t.window {
			window = now
			diff = max(diff, 0)
		}
	}
	for i, k := range t.keys {
		if t.held&(tokensHeld<<i) != 0 && diff != 0 {
			_ = l.store.Add(ctx, k.tokens, window, diff)
		}
		if t.held&(slotHeld<<i) != 0 {
			_ = l.store.Release(ctx, k.streams)
		}
	}
}
