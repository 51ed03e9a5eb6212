package console

import (
	"sync"
	"time"
)

// throttle limits login attempts per client address and in total, with
// token buckets: a guesser is slowed to a trickle, and a swarm of
// addresses together to the overall rate. Its memory is bounded: at most
// maxIPs addresses are tracked; past that, full buckets are forgotten, and
// if none is, new addresses share one bucket.
type throttle struct {
	mu        sync.Mutex
	perIP     map[string]*bucket
	overflow  bucket
	all       bucket
	ip, total rate
	maxIPs    int
}

// rate refills burst attempts over per.
type rate struct {
	burst float64
	per   time.Duration
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newThrottle(ip, total rate, maxIPs int) *throttle {
	now := time.Now()
	return &throttle{perIP: map[string]*bucket{}, ip: ip, total: total, maxIPs: maxIPs,
		all: bucket{tokens: total.burst, last: now}, overflow: bucket{tokens: ip.burst, last: now}}
}

// refill brings b up to date at now.
func (b *bucket) refill(r rate, now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(r.burst, b.tokens+r.burst*float64(el)/float64(r.per))
		b.last = now
	}
}

// allow takes one attempt for addr, or reports how long until one is free.
func (t *throttle) allow(addr string, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.perIP[addr]
	if !ok {
		if len(t.perIP) >= t.maxIPs {
			t.forgetFull(now)
		}
		if len(t.perIP) < t.maxIPs {
			b = &bucket{tokens: t.ip.burst, last: now}
			t.perIP[addr] = b
		} else {
			b = &t.overflow
		}
	}
	b.refill(t.ip, now)
	t.all.refill(t.total, now)
	switch {
	case b.tokens < 1:
		return false, wait(b, t.ip)
	case t.all.tokens < 1:
		return false, wait(&t.all, t.total)
	}
	b.tokens--
	t.all.tokens--
	return true, 0
}

// forgetFull drops the addresses whose buckets have refilled: they are no
// different from addresses never seen.
func (t *throttle) forgetFull(now time.Time) {
	for a, b := range t.perIP {
		if b.refill(t.ip, now); b.tokens >= t.ip.burst {
			delete(t.perIP, a)
		}
	}
}

func wait(b *bucket, r rate) time.Duration {
	return time.Duration((1 - b.tokens) * float64(r.per) / r.burst)
}
