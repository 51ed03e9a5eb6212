package upstream

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Skip says why a call may not try a deployment now.
type Skip uint8

// Reasons to skip a deployment.
const (
	NotSkipped Skip = iota
	// SkipCooling: the upstream asked for a pause (Retry-After).
	SkipCooling
	// SkipOpen: its circuit is open after consecutive failures, or its
	// one half-open probe is under way.
	SkipOpen
)

// Circuit states.
const (
	closed uint32 = iota
	open
	halfOpen
)

// breaker is a deployment's health as every call to it sees it: a circuit
// breaker over consecutive failures, and the pause an upstream asked for.
// It is lock-free: a healthy deployment's calls read two atomics and write
// nothing.
type breaker struct {
	state    atomic.Uint32
	failures atomic.Int32 // consecutive
	// until is, while open, when a probe may go; while half-open, when a
	// probe that never reported is given up and another may go.
	until atomic.Int64 // Unix ns
	// coolUntil is the end of the pause the upstream's Retry-After asked for.
	coolUntil atomic.Int64 // Unix ns
}

// Admit says whether a call may try the deployment now. A call let
// through a half-open circuit is its probe: its Report decides whether the
// circuit closes or opens again. A skipped call learns until when.
// cooldown bounds how long a probe may take before another is let through.
func (d *Deployment) Admit(now time.Time, cooldown time.Duration) (probe bool, skip Skip, until time.Time) {
	b := &d.health
	ns := now.UnixNano()
	if cu := b.coolUntil.Load(); cu > ns {
		return false, SkipCooling, time.Unix(0, cu)
	}
	switch b.state.Load() {
	case closed:
		return false, NotSkipped, time.Time{}
	case open:
		if u := b.until.Load(); u > ns {
			return false, SkipOpen, time.Unix(0, u)
		}
		if b.state.CompareAndSwap(open, halfOpen) {
			b.until.Store(ns + int64(cooldown))
			return true, NotSkipped, time.Time{}
		}
	}
	// Half-open: one probe is under way; another goes only when it has
	// been silent for cooldown.
	u := b.until.Load()
	if u <= ns && b.state.Load() == halfOpen && b.until.CompareAndSwap(u, ns+int64(cooldown)) {
		return true, NotSkipped, time.Time{}
	}
	return false, SkipOpen, time.Unix(0, max(u, ns))
}

// Report records how an attempt on the deployment went: ok is an answer
// (any status but a 5xx or 429), !ok a connect error, timeout, reset or
// 5xx. failures consecutive failures open a closed circuit for cooldown;
// a probe's failure opens it again at once, and any success closes it. It
// reports whether this failure opened the circuit.
func (d *Deployment) Report(ok, probe bool, failures int, cooldown time.Duration, now time.Time) (opened bool) {
	b := &d.health
	if ok {
		if b.failures.Load() != 0 {
			b.failures.Store(0)
		}
		if b.state.Load() != closed {
			b.state.Store(closed)
		}
		return false
	}
	n := b.failures.Add(1)
	switch st := b.state.Load(); {
	case probe && st == halfOpen:
		b.until.Store(now.UnixNano() + int64(cooldown))
		return b.state.CompareAndSwap(halfOpen, open)
	case st == closed && int(n) >= failures:
		b.until.Store(now.UnixNano() + int64(cooldown))
		return b.state.CompareAndSwap(closed, open)
	}
	return false
}

// CoolUntil makes calls skip the deployment until t, as its upstream asked
// (Retry-After); a later pause already asked for stands.
func (d *Deployment) CoolUntil(t time.Time) {
	b := &d.health
	ns := t.UnixNano()
	for {
		cur := b.coolUntil.Load()
		if cur >= ns || b.coolUntil.CompareAndSwap(cur, ns) {
			return
		}
	}
}

// CircuitOpen reports whether the deployment's circuit is open or
// half-open (for tests and status pages).
func (d *Deployment) CircuitOpen() bool { return d.health.state.Load() != closed }

// RetryAfter is how long resp asks its client to wait: retry-after-ms
// (OpenAI's and Azure's), else Retry-After in seconds or as an HTTP date;
// 0 when it asks nothing (or nonsense), at most limit.
func RetryAfter(resp *fasthttp.ResponseHeader, now time.Time, limit time.Duration) time.Duration {
	var d time.Duration
	if v := resp.Peek("retry-after-ms"); len(v) > 0 {
		if ms, err := strconv.ParseFloat(string(v), 64); err == nil && ms > 0 && ms < 1e12 {
			d = time.Duration(ms * float64(time.Millisecond))
		}
	} else if v := resp.Peek("retry-after"); len(v) > 0 {
		if s, err := strconv.ParseFloat(string(v), 64); err == nil {
			if s > 0 && s < 1e9 {
				d = time.Duration(s * float64(time.Second))
			}
		} else if t, err := fasthttp.ParseHTTPDate(v); err == nil {
			d = t.Sub(now)
		}
	}
	return min(max(d, 0), limit)
}
